package bpf_test

import (
	"context"
	"net"
	"net/netip"
	"structs"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l7/intercept"
)

// skLookupCtx mirrors the kernel's struct bpf_sk_lookup, the context
// BPF_PROG_TEST_RUN takes for an sk_lookup program. On the way out Cookie
// is the cookie of the socket the program selected, 0 for none.
type skLookupCtx struct {
	_              structs.HostLayout
	Cookie         uint64
	Family         uint32
	Protocol       uint32
	RemoteIP4      [4]byte
	RemoteIP6      [16]byte
	RemotePort     [2]byte // network order
	_              [2]byte
	LocalIP4       [4]byte
	LocalIP6       [16]byte
	LocalPort      uint32 // host order
	IngressIfindex uint32
	_              [4]byte
}

func lookupCtx(t *testing.T, proto uint32, dst string) *skLookupCtx {
	t.Helper()
	ap := netip.MustParseAddrPort(dst)
	c := &skLookupCtx{Protocol: proto, LocalPort: uint32(ap.Port()), RemotePort: [2]byte{0xc3, 0x50}}
	if ap.Addr().Is4() {
		c.Family = unix.AF_INET
		c.LocalIP4 = ap.Addr().As4()
		c.RemoteIP4 = [4]byte{10, 77, 0, 1}
	} else {
		c.Family = unix.AF_INET6
		c.LocalIP6 = ap.Addr().As16()
		c.RemoteIP6 = netip.MustParseAddr("fd77::1").As16()
	}
	return c
}

// cookie is the kernel's cookie of a socket, what the test run reports for
// the socket the program selected.
func cookie(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	var v uint64
	control(t, c, func(fd int) (err error) {
		v, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
		return err
	})
	return v
}

func sockopt(t *testing.T, c syscall.Conn, opt int) int {
	t.Helper()
	var v int
	control(t, c, func(fd int) (err error) {
		v, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		return err
	})
	return v
}

func control(t *testing.T, c syscall.Conn, fn func(fd int) error) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatalf("getsockopt: %v", ferr)
	}
}

func plainListener(t *testing.T, network, addr string) *net.TCPListener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// TestSkLookupSteersEndpointsToTheirListener runs lookups through the
// program with BPF_PROG_TEST_RUN and checks which listener, if any, each
// one is handed to, and the counters.
func TestSkLookupSteersEndpointsToTheirListener(t *testing.T) {
	var objs bpf.SkLookupObjects
	if err := bpf.LoadSkLookupObjects(&objs, nil); err != nil {
		t.Fatalf("load sk_lookup: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	m := intercept.NewMaps(&objs.SkLookupMaps)

	ln4 := plainListener(t, "tcp4", "127.0.0.1:0")
	ln6 := plainListener(t, "tcp6", "[::1]:0")
	must(t, m.SetListener(intercept.SlotTCP4, ln4))
	must(t, m.SetListener(intercept.SlotTCP6, ln6))
	v4, v6 := cookie(t, ln4), cookie(t, ln6)
	const emptySlot = 7

	for ep, slot := range map[string]uint32{
		"10.77.100.1:80":    intercept.SlotTCP4,
		"10.77.100.1:443":   intercept.SlotTCP4,
		"10.77.100.2:0":     intercept.SlotTCP4,
		"10.77.100.3:80":    intercept.SlotTCP4,
		"10.77.100.3:0":     emptySlot,
		"[fd77:100::1]:80":  intercept.SlotTCP6,
		"[fd77:100::2]:443": intercept.SlotTCP4, // wrong family: refused
	} {
		must(t, m.Steer(netip.MustParseAddrPort(ep), slot))
	}

	cases := []struct {
		name  string
		proto uint32
		dst   string
		want  uint64 // cookie of the selected socket; 0: normal lookup
	}{
		{"v4 exact port", unix.IPPROTO_TCP, "10.77.100.1:80", v4},
		{"v4 second port", unix.IPPROTO_TCP, "10.77.100.1:443", v4},
		{"v4 port not steered", unix.IPPROTO_TCP, "10.77.100.1:8080", 0},
		{"v4 every port", unix.IPPROTO_TCP, "10.77.100.2:12345", v4},
		{"v4 every port, port 1", unix.IPPROTO_TCP, "10.77.100.2:1", v4},
		{"exact port wins over every port", unix.IPPROTO_TCP, "10.77.100.3:80", v4},
		{"every port, empty slot", unix.IPPROTO_TCP, "10.77.100.3:81", 0},
		{"v4 address not steered", unix.IPPROTO_TCP, "10.77.100.9:80", 0},
		{"udp to a tcp endpoint", unix.IPPROTO_UDP, "10.77.100.1:80", 0},
		{"v6 exact port", unix.IPPROTO_TCP, "[fd77:100::1]:80", v6},
		{"v6 port not steered", unix.IPPROTO_TCP, "[fd77:100::1]:81", 0},
		{"v4-mapped v6 is not the v4 endpoint", unix.IPPROTO_TCP, "[::ffff:10.77.100.1]:80", 0},
		{"v6 to a v4 listener", unix.IPPROTO_TCP, "[fd77:100::2]:443", 0},
	}
	for _, c := range cases {
		in := lookupCtx(t, c.proto, c.dst)
		var out skLookupCtx
		ret, err := objs.SluiceSkLookup.Run(&ebpf.RunOptions{Context: in, ContextOut: &out})
		if err != nil {
			t.Fatalf("%s: run: %v", c.name, err)
		}
		if ret != 1 { // SK_PASS
			t.Errorf("%s: returned %d, want SK_PASS (1)", c.name, ret)
		}
		if out.Cookie != c.want {
			t.Errorf("%s: selected socket cookie %d, want %d (v4 listener %d, v6 listener %d)", c.name, out.Cookie, c.want, v4, v6)
		}
	}

	st, err := m.Stats()
	must(t, err)
	if want := (intercept.Stats{Steered: 6, NoSocket: 1, Refused: 1}); st != want {
		t.Errorf("counters %+v, want %+v", st, want)
	}

	// Unsteer takes effect on the next lookup, and is idempotent.
	ep := netip.MustParseAddrPort("10.77.100.1:80")
	must(t, m.Unsteer(ep))
	must(t, m.Unsteer(ep))
	var out skLookupCtx
	if _, err := objs.SluiceSkLookup.Run(&ebpf.RunOptions{Context: lookupCtx(t, unix.IPPROTO_TCP, "10.77.100.1:80"), ContextOut: &out}); err != nil {
		t.Fatal(err)
	}
	if out.Cookie != 0 {
		t.Errorf("unsteered endpoint still selects socket %d", out.Cookie)
	}

	// A closed listener leaves the SOCKMAP: its endpoints fall back to the
	// normal lookup.
	ln4.Close()
	if _, err := objs.SluiceSkLookup.Run(&ebpf.RunOptions{Context: lookupCtx(t, unix.IPPROTO_TCP, "10.77.100.1:443"), ContextOut: &out}); err != nil {
		t.Fatal(err)
	}
	if out.Cookie != 0 {
		t.Errorf("closed listener still selected (cookie %d)", out.Cookie)
	}
}

// TestSkLookupRefusesMPTCPListener is why the intercept makes its
// listeners with SetMultipathTCP(false).
func TestSkLookupRefusesMPTCPListener(t *testing.T) {
	var objs bpf.SkLookupObjects
	if err := bpf.LoadSkLookupObjects(&objs, nil); err != nil {
		t.Fatalf("load sk_lookup: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	m := intercept.NewMaps(&objs.SkLookupMaps)

	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if proto := sockopt(t, ln.(*net.TCPListener), unix.SO_PROTOCOL); proto != unix.IPPROTO_MPTCP {
		t.Skipf("kernel has no MPTCP: the listener is protocol %d", proto)
	}
	if err := m.SetListener(intercept.SlotTCP4, ln.(*net.TCPListener)); err == nil {
		t.Fatal("an MPTCP listener went into the SOCKMAP; the intercept's plain-TCP listeners are not needed then")
	}
}
