package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
	testlab "github.com/sluicelb/sluice/test/lab"
)

// The L4 forwarding lab: the generator's namespace (the clients) is linked
// to the load balancer's, which is linked to the backends'. The backends'
// veth counts and drops, in XDP, every frame that reaches it.
//
//	gen ns  genIf 10.98.0.1 ── lbA 10.98.0.2   lb ns   lbB 10.97.0.254 ── beB  be ns
//	                          (Sluice XDP, or nftables DNAT with ip_forward)
var (
	l4VIP    = netip.MustParseAddr("10.96.0.100")
	l4Port   = uint16(9000)
	l4Encap  = netip.MustParsePrefix("10.97.1.0/24")
	backends = flag.Int("backends", 100, "l4: backends behind the VIP")
	srcPorts = flag.Int("ports", 16384, "l4: distinct client source ports (a power of two), one flow each")
	tcpOnly  = flag.Bool("tcp-only", false, "l4: only the TCP comparison")
	flowTab  = flag.Uint("flow-table", 0, "l4: Sluice's connection-table size (0: the default, as sluice serve --flow-table-size)")
	onlyL4   = flag.String("only", "", "l4: comma-separated forwarding contenders to run, and no TCP comparison (to profile one); all when empty")
)

const xdpTXCode = 3

type l4lab struct {
	gen, lb, be          string
	genIf, lbA, lbB, beB string
}

// backendAddr is backend i's address, 10.97.0.(i+1).
func backendAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 97, 0, byte(i + 1)}) }

// runL4 builds the lab, measures the forwarding rates of Sluice (dsr-ipip,
// dsr-l2) and nftables DNAT with the live-frames generator, then the TCP
// comparison with HAProxy (tcp.go), and removes the lab, also when
// interrupted. It returns an error when the lab cannot be built; a
// contender that cannot be set up is printed as not-measured.
func runL4() error {
	if *backends < 1 || *backends > 250 {
		return fmt.Errorf("-backends %d: want 1..250", *backends)
	}
	if *srcPorts < 1 || *srcPorts > 32768 || *srcPorts&(*srcPorts-1) != 0 {
		return fmt.Errorf("-ports %d: want a power of two up to 32768", *srcPorts)
	}
	id := strconv.Itoa(os.Getpid() % 100000)
	l := l4lab{gen: "slvb4-gen-" + id, lb: "slvb4-lb-" + id, be: "slvb4-be-" + id,
		genIf: "v4g" + id, lbA: "v4a" + id, lbB: "v4b" + id, beB: "v4e" + id}
	removeNS := func() {
		stopHAProxy()
		for _, ns := range []string{l.gen, l.lb, l.be} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	defer removeNS()
	defer cleanupOnSignal(removeNS)()
	cmds := [][]string{
		{"ip", "netns", "add", l.gen}, {"ip", "netns", "add", l.lb}, {"ip", "netns", "add", l.be},
		// Made inside the namespaces: nothing of the lab is ever in the host's.
		{"ip", "-n", l.gen, "link", "add", l.genIf, "type", "veth", "peer", "name", l.lbA, "netns", l.lb},
		{"ip", "-n", l.lb, "link", "add", l.lbB, "type", "veth", "peer", "name", l.beB, "netns", l.be},
		{"ip", "-n", l.gen, "addr", "add", "10.98.0.1/24", "dev", l.genIf},
		{"ip", "-n", l.lb, "addr", "add", "10.98.0.2/24", "dev", l.lbA},
		{"ip", "-n", l.lb, "addr", "add", "10.97.0.254/24", "dev", l.lbB},
		{"ip", "-n", l.gen, "link", "set", l.genIf, "up"}, {"ip", "-n", l.lb, "link", "set", l.lbA, "up"},
		{"ip", "-n", l.lb, "link", "set", l.lbB, "up"}, {"ip", "-n", l.be, "link", "set", l.beB, "up"},
		{"ip", "netns", "exec", l.lb, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		// GRO gives lbA a NAPI instance, so the generator's XDP_TX frames
		// reach the kernel's forwarding path when no XDP program runs there.
		{"ip", "netns", "exec", l.lb, "ethtool", "-K", l.lbA, "gro", "on"},
		threadedNAPI(l.lb, l.lbA),
	}
	for _, c := range cmds {
		if err := sh(c...); err != nil {
			return err
		}
	}
	beMAC, err := macOf(l.be, l.beB)
	if err != nil {
		return err
	}
	// The kernel path forwards to the backends without asking ARP: the
	// counting program on beB answers nothing.
	for i := range *backends {
		if err := sh("ip", "-n", l.lb, "neigh", "replace", backendAddr(i).String(), "lladdr", beMAC.String(),
			"dev", l.lbB, "nud", "permanent"); err != nil {
			return err
		}
	}
	if *tcpOnly {
		return l.runTCP(beMAC)
	}
	frame, genIdx, err := l.frame()
	if err != nil {
		return err
	}
	probe := probeLiveFrames(l.gen, genIdx)
	// Without live frames, the frames go round the loop (loop.go) instead.
	var loop *frameLoop
	if se := (setupError{}); errors.As(probe, &se) {
		fmt.Fprintf(os.Stderr, "vethbench: forwarding: %v; frames seeded by a packet socket go round a loop instead\n", probe)
		if loop, err = l.attachLoop(); err != nil {
			return err
		}
		probe = nil
		fmt.Println("forward_generator loop")
	}
	closeTaps := func() {}
	var measure func(name string) (float64, error)
	if loop != nil {
		closeTaps = sync.OnceFunc(loop.close)
		measure = func(name string) (float64, error) {
			if name == "nftables_dnat" {
				unpass, err := l.passOnLBA(loop)
				if err != nil {
					return 0, setupError{err}
				}
				defer unpass()
			}
			return l.measureLoop(loop, frame)
		}
	} else {
		counter, err := l.attachCounter()
		if err != nil {
			return err
		}
		closeTaps = sync.OnceFunc(counter.close)
		gen, closeGen, err := portGenerator(frame, *srcPorts)
		if err != nil {
			closeTaps()
			return err
		}
		defer closeGen()
		g := lab{gen: l.gen, rxIf: l.lbA}
		measure = func(string) (float64, error) { return g.measureWith(gen, frame, genIdx, counter.count) }
	}
	defer closeTaps()
	var cs []contender
	for _, c := range []struct {
		name  string
		setup func() (func(), error)
	}{
		{"sluice_ipip", func() (func(), error) { return l.sluice(l4.ModeDSRIPIP, beMAC) }},
		{"sluice_l2", func() (func(), error) { return l.sluice(l4.ModeDSRL2, beMAC) }},
		{"nftables_dnat", l.nftDNAT},
		{"xdp_redirect_only", l.redirectOnly},
	} {
		if *onlyL4 != "" && !strings.Contains(","+*onlyL4+",", ","+c.name+",") {
			continue
		}
		// Set up anew each run: the contenders share the lab's path.
		cs = append(cs, contender{name: c.name, run: func() (float64, error) {
			if probe != nil {
				return 0, probe
			}
			cleanup, err := c.setup()
			if err != nil {
				return 0, setupError{err}
			}
			defer cleanup()
			return measure(c.name)
		}})
	}
	if err := bestOfRounds(cs); err != nil {
		return err
	}
	closeTaps()
	if *onlyL4 != "" {
		return nil
	}
	return l.runTCP(beMAC)
}

func macOf(ns, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := testlab.InNS(ns, func() error {
		i, err := net.InterfaceByName(ifname)
		if err == nil {
			mac = i.HardwareAddr
		}
		return err
	})
	return mac, err
}

func ifindexOf(ns, ifname string) (int, error) {
	var idx int
	err := testlab.InNS(ns, func() error {
		i, err := net.InterfaceByName(ifname)
		if err == nil {
			idx = i.Index
		}
		return err
	})
	return idx, err
}

// frame builds a UDP frame from 10.98.0.1 to the VIP, addressed to lbA's
// MAC, with no UDP checksum (valid for IPv4), so that the generator may
// rewrite the source port without fixing a checksum.
func (l l4lab) frame() ([]byte, int, error) {
	lbMAC, err := macOf(l.lb, l.lbA)
	if err != nil {
		return nil, 0, err
	}
	genMAC, err := macOf(l.gen, l.genIf)
	if err != nil {
		return nil, 0, err
	}
	genIdx, err := ifindexOf(l.gen, l.genIf)
	if err != nil {
		return nil, 0, err
	}
	f := make([]byte, 60)
	copy(f[0:6], lbMAC)
	copy(f[6:12], genMAC)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:34]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 46, 64, 17
	copy(ip[12:16], []byte{10, 98, 0, 1})
	vip := l4VIP.As4()
	copy(ip[16:20], vip[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := f[34:]
	udp[0], udp[1] = 0x9c, 0x40
	udp[2], udp[3] = byte(l4Port>>8), byte(l4Port)
	udp[5] = 26
	return f, genIdx, nil
}

// portGenerator is the live-frames generator of the L4 runs: it writes the
// first 40 bytes of frame (Ethernet, IPv4, UDP ports) into each frame, gives
// it the next of n source ports (counting per CPU), and sends it with XDP_TX.
// In live-frames mode the kernel recycles a frame's page without restoring
// its bytes, and the contenders rewrite them (MACs, DNAT, the tunnel header
// pushed in front), so every frame is written whole again before it goes.
func portGenerator(frame []byte, n int) (*ebpf.Program, func(), error) {
	const hdr = 40
	tmpl, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vb_gen_tmpl", Type: ebpf.Array, KeySize: 4, ValueSize: hdr, MaxEntries: 1})
	if err != nil {
		return nil, nil, err
	}
	if err := tmpl.Put(uint32(0), frame[:hdr]); err != nil {
		tmpl.Close()
		return nil, nil, err
	}
	seq, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vb_gen_seq", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		tmpl.Close()
		return nil, nil, err
	}
	closeMaps := func() { tmpl.Close(); seq.Close() }
	lookup := func(m *ebpf.Map) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "tx"),
		}
	}
	insns := asm.Instructions{
		asm.LoadMem(asm.R7, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, hdr),
		asm.JGT.Reg(asm.R2, asm.R3, "tx"),
	}
	insns = append(insns, lookup(tmpl)...)
	for off := int16(0); off < hdr; off += 8 {
		insns = append(insns, asm.LoadMem(asm.R1, asm.R0, off, asm.DWord), asm.StoreMem(asm.R7, off, asm.R1, asm.DWord))
	}
	insns = append(insns, lookup(seq)...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.And.Imm(asm.R1, int32(n-1)),
		asm.Add.Imm(asm.R1, 10000),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R7, 34, asm.R1, asm.Half), // the UDP source port
		asm.Mov.Imm(asm.R0, xdpTXCode).WithSymbol("tx"),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vb_gen_ports", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		closeMaps()
		return nil, nil, fmt.Errorf("load the port generator: %w", err)
	}
	return prog, func() { prog.Close(); closeMaps() }, nil
}

// counter counts, in XDP on the backends' veth, the frames that arrive
// there, and drops them.
type counter struct {
	m    *ebpf.Map
	prog *ebpf.Program
	lk   link.Link
}

func (c *counter) close() {
	c.lk.Close()
	c.prog.Close()
	c.m.Close()
}

func (c *counter) count() (uint64, error) {
	var vs []uint64
	if err := c.m.Lookup(uint32(0), &vs); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range vs {
		n += v
	}
	return n, nil
}

func (l l4lab) attachCounter() (*counter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vb_arrived", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vb_count", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1 /* XDP_DROP */).WithSymbol("out"),
			asm.Return(),
		}})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load the counting program: %w", err)
	}
	var lk link.Link
	err = testlab.InNS(l.be, func() error {
		i, err := net.InterfaceByName(l.beB)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: i.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		prog.Close()
		m.Close()
		return nil, fmt.Errorf("attach the counting program: %w", err)
	}
	return &counter{m: m, prog: prog, lk: lk}, nil
}

// sluice attaches Sluice's XDP program to lbA with one UDP service on the VIP.
func (l l4lab) sluice(mode l4.Mode, beMAC net.HardwareAddr) (func(), error) {
	cleanup, _, err := l.sluiceService(l4.Service{Name: "bench", VIP: l4VIP, Port: l4Port, Proto: l4.UDP, Mode: mode}, beMAC)
	return cleanup, err
}

// sluiceService attaches Sluice's XDP program to lbA with svc, whose
// backends (the -backends addresses) are reached through lbB, redirected
// through the program's devmap; provisioned through the real reconciler.
// It returns the attached program too, valid until the cleanup.
func (l l4lab) sluiceService(svc l4.Service, beMAC net.HardwareAddr) (func(), *ebpf.Program, error) {
	mode := svc.Mode
	var objs bpf.XDPObjects
	spec, err := bpf.LoadXDP()
	if err != nil {
		return nil, nil, err
	}
	if *flowTab > 0 {
		bpf.SetFlowTableSize(spec, uint32(*flowTab), uint32(*flowTab))
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, nil, err
	}
	fail := func(err error) (func(), *ebpf.Program, error) { objs.Close(); return nil, nil, err }
	// The ACL's index built, as the daemon has it before it attaches: an
	// index never built sends every source to the host hash and the trie
	// (a hash lookup and a trie lookup per packet the daemon never pays).
	if _, err := maps.NewACLFromObjects(&objs); err != nil {
		return fail(err)
	}
	lb, err := maps.NewLB(&objs)
	if err != nil {
		return fail(err)
	}
	outIdx, err := ifindexOf(l.lb, l.lbB)
	if err != nil {
		return fail(err)
	}
	outMAC, err := macOf(l.lb, l.lbB)
	if err != nil {
		return fail(err)
	}
	rec, err := l4.NewReconciler(lb, func(netip.Addr) (l4.NextHop, error) {
		return l4.NextHop{MAC: beMAC, Ifindex: outIdx}, nil
	})
	if err != nil {
		return fail(err)
	}
	if err := lb.SetSettings(maps.LBSettings{EncapSrc4: l4Encap, UDPTimeout: 30e9}); err != nil {
		return fail(err)
	}
	// The devmap resolves an ifindex in the caller's namespace.
	if err := testlab.InNS(l.lb, func() error { return lb.SetIface(outIdx, outMAC, 1500) }); err != nil {
		return fail(err)
	}
	for i := range *backends {
		svc.Backends = append(svc.Backends, l4.Backend{Addr: backendAddr(i), Weight: 100})
	}
	if err := rec.Set(svc); err != nil {
		return fail(err)
	}
	inIdx, err := ifindexOf(l.lb, l.lbA)
	if err != nil {
		return fail(err)
	}
	var lk link.Link
	err = testlab.InNS(l.lb, func() error {
		lk, err = link.AttachXDP(link.XDPOptions{Program: objs.SluiceXdp, Interface: inIdx, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return fail(err)
	}
	stats := maps.NewStats(objs.StatsIface, objs.StatsDrop, objs.StatsList)
	return func() {
		// What the datapath did with the frames, for a reader of stderr
		// who wonders where the missing ones went.
		if v, err := stats.Iface(inIdx); err == nil {
			fmt.Fprintf(os.Stderr, "vethbench: sluice %s: %d redirected, %d tx, %d passed, %d dropped",
				mode, v[maps.VerdictRedirect].Packets, v[maps.VerdictTX].Packets, v[maps.VerdictPass].Packets, v[maps.VerdictDrop].Packets)
			if d, err := stats.Drops(); err == nil {
				for r, c := range d {
					if c.Packets > 0 {
						fmt.Fprintf(os.Stderr, ", %s %d", maps.DropReason(r), c.Packets)
					}
				}
			}
			fmt.Fprintln(os.Stderr)
		}
		lk.Close()
		objs.Close()
	}, objs.SluiceXdp, nil
}

// redirectOnly is the harness's ceiling, not a contender: an XDP program
// on lbA that redirects every frame to lbB and does nothing else.
func (l l4lab) redirectOnly() (func(), error) {
	outIdx, err := ifindexOf(l.lb, l.lbB)
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vb_redirect", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(outIdx)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		}})
	if err != nil {
		return nil, err
	}
	var lk link.Link
	err = testlab.InNS(l.lb, func() error {
		i, err := net.InterfaceByName(l.lbA)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: i.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		prog.Close()
		return nil, err
	}
	return func() { lk.Close(); prog.Close() }, nil
}

// nftDNAT is what an operator would write without Sluice: nftables DNAT
// round-robin (numgen inc) over the same backends, in the kernel's
// forwarding path.
func (l l4lab) nftDNAT() (func(), error) {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip vbl4 {\n chain pre {\n  type nat hook prerouting priority dstnat;\n")
	fmt.Fprintf(&b, "  ip daddr %s udp dport %d counter dnat to numgen inc mod %d map {", l4VIP, l4Port, *backends)
	for i := range *backends {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %d : %s", i, backendAddr(i))
	}
	b.WriteString(" }\n }\n}\n")
	dir, err := os.MkdirTemp("", "vethbench-dnat-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "dnat.nft")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if err := sh("ip", "netns", "exec", l.lb, "nft", "-f", path); err != nil {
		return nil, err
	}
	return func() { _ = sh("ip", "netns", "exec", l.lb, "nft", "delete", "table", "ip", "vbl4") }, nil
}
