package bpf_test

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf"
)

// tunnel4 and tunnel6 wrap the IP packet of frame (untagged Ethernet) in
// an outer IPv4 / IPv6 header to be, as dsr-ipip sends it.
func tunnel4(t testing.TB, frame []byte, be netip.Addr) []byte {
	outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4, SrcIP: encap4.Addr().AsSlice(), DstIP: be.AsSlice()}
	return serialize(t, ether(layers.EthernetTypeIPv4), outer, gopacket.Payload(frame[14:]))
}

func tunnel6(t testing.TB, frame []byte, be netip.Addr) []byte {
	outer := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6, SrcIP: encap6.Addr().AsSlice(), DstIP: be.AsSlice()}
	return serialize(t, ether(layers.EthernetTypeIPv6), outer, gopacket.Payload(frame[14:]))
}

// Without VIPs (the zero key, `sluice decap` without --vip), a tunnel is
// stripped when the kernel would not route its inner packet on: one to an
// address of the host, or to one it has no route for; one to another
// host's network stays a tunnel while the host forwards, so decap never
// makes a router of the backend. Run in a network namespace of the test's
// own: a VIP on its loopback, a veth whose subnet it routes to.
func TestDecapWithoutVIPsStripsWhatTheHostWouldNotRouteOn(t *testing.T) {
	var objs bpf.DecapObjects
	must(t, bpf.LoadDecapObjects(&objs, nil))
	defer objs.Close()
	must(t, objs.DecapVips.Put(bpf.XDPSvcKey{}, uint32(1)))

	be4, be6 := netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("2001:db8:1::11")
	local4, local6 := netip.MustParseAddr("10.99.100.10"), netip.MustParseAddr("fd00:99::10")
	routed4, routed6 := netip.MustParseAddr("10.9.1.5"), netip.MustParseAddr("2001:db8:9::5")
	noRoute4, noRoute6 := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8:77::7")
	type frame struct {
		name          string
		inner, tunnel []byte
	}
	var frames []frame
	for _, dst := range []netip.Addr{local4, routed4, noRoute4} {
		in := tcp4(t, client4, 41000, dst, 443, 10, false)
		frames = append(frames, frame{"to " + dst.String(), in, tunnel4(t, in, be4)})
	}
	for _, dst := range []netip.Addr{local6, routed6, noRoute6} {
		in := tcp6(t, client6, 41000, dst, 443, 10)
		frames = append(frames, frame{"to " + dst.String(), in, tunnel6(t, in, be6)})
	}
	stripped := func(f frame) []byte { return append(append([]byte(nil), f.tunnel[:14]...), f.inner[14:]...) }

	type run struct {
		verdict int
		out     []byte
	}
	type result struct {
		forwarding, notForwarding []run
		err                       error
	}
	res := make(chan result, 1)
	go func() {
		// The thread enters a namespace and is never unlocked: it ends with
		// the goroutine instead of going back to the pool.
		runtime.LockOSThread()
		r, err := func() (r result, err error) {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return r, err
			}
			if err := routedNamespace(local4, local6); err != nil {
				return r, err
			}
			runAll := func() ([]run, error) {
				var runs []run
				for _, f := range frames {
					opts := &ebpf.RunOptions{Data: f.tunnel, DataOut: make([]byte, len(f.tunnel)+256)}
					v, err := objs.SluiceDecap.Run(opts)
					if err != nil {
						return nil, err
					}
					runs = append(runs, run{int(v), opts.DataOut})
				}
				return runs, nil
			}
			if err := setForwarding("1"); err != nil {
				return r, err
			}
			if r.forwarding, err = runAll(); err != nil {
				return r, err
			}
			if err := setForwarding("0"); err != nil {
				return r, err
			}
			r.notForwarding, err = runAll()
			return r, err
		}()
		r.err = err
		res <- r
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, f := range frames {
		want := stripped(f)
		if i%3 == 1 { // the routed destination
			want = f.tunnel
		}
		expectFrame(t, "forwarding on, "+f.name, r.forwarding[i].verdict, xdpPass, r.forwarding[i].out, want)
		expectFrame(t, "forwarding off, "+f.name, r.notForwarding[i].verdict, xdpPass, r.notForwarding[i].out, stripped(f))
	}
}

// routedNamespace readies the thread's (new) network namespace: local4
// and local6 on the loopback, and a veth pair with 10.9.1.1/24 and
// 2001:db8:9::1/64, so those subnets are routed to it.
func routedNamespace(local4, local6 netip.Addr) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = "sldc0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "sldc1"}); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	veth, err := netlink.LinkByName("sldc0")
	if err != nil {
		return err
	}
	peer, err := netlink.LinkByName("sldc1")
	if err != nil {
		return err
	}
	for _, a := range []struct {
		link netlink.Link
		cidr string
	}{{lo, local4.String() + "/32"}, {lo, local6.String() + "/128"}, {veth, "10.9.1.1/24"}, {veth, "2001:db8:9::1/64"}} {
		addr, err := netlink.ParseAddr(a.cidr)
		if err != nil {
			return err
		}
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(a.link, addr); err != nil {
			return fmt.Errorf("address %s: %w", a.cidr, err)
		}
	}
	for _, l := range []netlink.Link{veth, peer} {
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

// setForwarding turns IPv4 and IPv6 forwarding on ("1") or off ("0") on
// every interface of the thread's network namespace.
func setForwarding(v string) error {
	for _, p := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}
