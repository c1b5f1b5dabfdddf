package lab

import (
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// attachXDPPass attaches a program that passes every frame to an interface
// in a namespace, for as long as the test runs. A veth receives frames that
// its peer sent with XDP_TX or XDP_REDIRECT only when it has NAPI; GRO gives
// it NAPI, but the kernel flushes the peer's XDP ring right away only when
// the receiving side runs an XDP program, so without one the frames wait
// until the next ordinary packet.
func (l *Lab) attachXDPPass(ns, ifname string) {
	l.t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "lab_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		l.t.Fatalf("load the pass program: %v", err)
	}
	l.t.Cleanup(func() { prog.Close() })
	err = InNS(ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return err
		}
		l.t.Cleanup(func() { lk.Close() })
		return nil
	})
	if err != nil {
		l.t.Fatalf("attach the pass program to %s in %s: %v", ifname, ns, err)
	}
}
