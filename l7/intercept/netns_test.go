package intercept_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var nsSeq atomic.Int32

// lab is two namespaces joined by a veth pair: the client (10.77.0.1,
// fd77::1) and the proxy (10.77.0.2, fd77::2), where the interceptor runs.
// The client routes 10.77.100.0/24 and fd77:100::/64 to the proxy.
type lab struct {
	client, proxy netns.NsHandle
}

const (
	proxyAddr4 = "10.77.0.2"
	vipNet4    = "10.77.100.0/24"
	vipNet6    = "fd77:100::/64"
)

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{client: newNS(t), proxy: newNS(t)}
	hc := handleAt(t, l.client)
	hp := handleAt(t, l.proxy)

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "px0"}, PeerName: "cl0"}
	if err := hp.LinkAdd(veth); err != nil {
		t.Fatalf("add veth in the proxy namespace: %v", err)
	}
	peer, err := hp.LinkByName("cl0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hp.LinkSetNsFd(peer, int(l.client)); err != nil {
		t.Fatalf("move the veth peer to the client namespace: %v", err)
	}
	setup(t, hp, "px0", "10.77.0.2/24", "fd77::2/64")
	setup(t, hc, "cl0", "10.77.0.1/24", "fd77::1/64")
	cl0, err := hc.LinkByName("cl0")
	if err != nil {
		t.Fatal(err)
	}
	for dst, gw := range map[string]string{vipNet4: proxyAddr4, vipNet6: "fd77::2"} {
		_, n, _ := net.ParseCIDR(dst)
		if err := hc.RouteAdd(&netlink.Route{LinkIndex: cl0.Attrs().Index, Dst: n, Gw: net.ParseIP(gw)}); err != nil {
			t.Fatalf("route %s via %s in the client namespace: %v", dst, gw, err)
		}
	}
	return l
}

// newNS makes a uniquely named namespace, removed when the test ends.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	name := fmt.Sprintf("slix-%d-%d", os.Getpid(), nsSeq.Add(1))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // also moves this thread into it
	if serr := netns.Set(orig); serr != nil {
		// The thread stays locked and dies with the goroutine: it must
		// not run anything else in the wrong namespace.
		t.Fatalf("back to the original namespace: %v", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return ns
}

// in runs fn on a thread in ns; sockets fn makes stay in ns.
func in(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter namespace: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the original namespace: %v", err) // thread stays locked
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

func handleAt(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// setup brings lo and ifname up with the addresses (IPv6 without DAD, so
// they are usable at once).
func setup(t *testing.T, h *netlink.Handle, ifname string, addrs ...string) {
	t.Helper()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	ifc, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range addrs {
		a, err := netlink.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		if a.IP.To4() == nil {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(ifc, a); err != nil {
			t.Fatalf("add %s to %s: %v", s, ifname, err)
		}
	}
	if err := h.LinkSetUp(ifc); err != nil {
		t.Fatal(err)
	}
}
