package bpf_test

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l4"
)

// A backend behind another interface than the one the packet came in on is
// reached through the redirect map, the frame's source that interface's
// MAC; one behind an interface the map does not hold is dropped (no route).
// The interfaces are a veth pair in a network namespace of the test's own.
func TestOtherEgressRedirectsThroughTheDevmap(t *testing.T) {
	p := loadLB(t)
	type result struct {
		verdict int
		out     []byte
		egress  int
		err     error
	}
	res := make(chan result, 1)
	pkt := tcp4(t, client4, 41000, vip4, 443, 10, false)
	noRoute := tcp4(t, client4, 41000, vip4, 444, 10, false)
	egressMAC := net.HardwareAddr{0x02, 0x1b, 0, 0, 0, 0x22}
	var second result
	go func() {
		// The thread enters a namespace and is never unlocked: it ends with
		// the goroutine instead of going back to the pool.
		runtime.LockOSThread()
		r, r2 := func() (result, result) {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return result{err: err}, result{}
			}
			la := netlink.NewLinkAttrs()
			la.Name = "slrd0"
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "slrd1"}); err != nil {
				return result{err: fmt.Errorf("veth: %w", err)}, result{}
			}
			link, err := netlink.LinkByName("slrd0")
			if err != nil {
				return result{err: err}, result{}
			}
			idx := link.Attrs().Index
			if err := p.lb.SetIface(idx, egressMAC, 1500); err != nil {
				return result{err: err}, result{}
			}
			rec, err := l4.NewReconciler(p.lb, func(a netip.Addr) (l4.NextHop, error) {
				if a.String() == "10.1.0.99" {
					return l4.NextHop{MAC: backendMAC(a), Ifindex: idx + 50}, nil // no such interface in the map
				}
				return l4.NextHop{MAC: backendMAC(a), Ifindex: idx}, nil
			})
			if err != nil {
				return result{err: err}, result{}
			}
			for _, s := range []l4.Service{service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11"), service("lost", vip4, 444, l4.ModeDSRIPIP, "10.1.0.99")} {
				if err := rec.Set(s); err != nil {
					return result{err: err}, result{}
				}
			}
			run := func(in []byte) result {
				opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
				v, err := p.objs.SluiceXdp.Run(opts)
				return result{verdict: int(v), out: opts.DataOut, egress: idx, err: err}
			}
			return run(pkt), run(noRoute)
		}()
		second = r2
		res <- r
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.verdict != xdpRedirect {
		t.Fatalf("verdict %d, want XDP_REDIRECT (%d) to interface %d", r.verdict, xdpRedirect, r.egress)
	}
	if src := net.HardwareAddr(r.out[6:12]); src.String() != egressMAC.String() {
		t.Errorf("redirected frame's source MAC %s, want the egress interface's %s", src, egressMAC)
	}
	if dst := net.HardwareAddr(r.out[0:6]); dst.String() != backendMAC(netip.MustParseAddr("10.1.0.11")).String() {
		t.Errorf("redirected frame's destination MAC %s, want the backend's", dst)
	}
	if second.err != nil {
		t.Fatal(second.err)
	}
	if second.verdict != xdpDrop {
		t.Errorf("a backend behind an interface the redirect map lacks: verdict %d, want XDP_DROP", second.verdict)
	}
}
