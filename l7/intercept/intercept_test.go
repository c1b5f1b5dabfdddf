package intercept_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l7/intercept"
)

const dialTimeout = 2 * time.Second

// proxy is the test's stand-in for the L7 proxy: it accepts on every
// listener of the interceptor and answers each line with which listener
// took the connection and the connection's local address.
type proxy struct {
	wg sync.WaitGroup
}

func serve(t *testing.T, icpt *intercept.Interceptor) *proxy {
	p := &proxy{}
	for n, ln := range icpt.Listeners() {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("accept on listener %d: %v", n, err)
					}
					return
				}
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					r := bufio.NewReader(c)
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "listener=%d local=%s got=%s", n, c.LocalAddr(), line)
				}()
			}
		}()
	}
	return p
}

// dial connects from the client namespace and exchanges one line; it
// returns the proxy's answer.
func (l *lab) dial(t *testing.T, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	in(t, l.client, func() {
		c, err = net.DialTimeout("tcp", addr, dialTimeout)
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := fmt.Fprintf(c, "hello %s\n", addr); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// expectSteered checks that a connection to addr lands on listener n
// with addr as its local address, and that bytes flow both ways.
func (l *lab) expectSteered(t *testing.T, addr string, n int) {
	t.Helper()
	got, err := l.dial(t, addr)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return
	}
	want := fmt.Sprintf("listener=%d local=%s got=hello %s\n", n, addr, addr)
	if got != want {
		t.Errorf("dial %s: proxy answered %q, want %q", addr, got, want)
	}
}

// expectRefused checks that a connection to addr is refused: the address
// is local but nothing steers or listens on the port.
func (l *lab) expectRefused(t *testing.T, addr string) {
	t.Helper()
	got, err := l.dial(t, addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: got %q, %v; want connection refused", addr, got, err)
	}
}

// expectNotReached checks that a connection to addr does not reach the
// proxy at all (the address is not local there any more).
func (l *lab) expectNotReached(t *testing.T, addr string) {
	t.Helper()
	got, err := l.dial(t, addr)
	if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: got %q, %v; want no answer (unreachable or timeout)", addr, got, err)
		return
	}
	t.Logf("dial %s: %v, as it should", addr, err)
}

func newInterceptor(t *testing.T, l *lab) *intercept.Interceptor {
	t.Helper()
	var icpt *intercept.Interceptor
	var err error
	in(t, l.proxy, func() {
		icpt, err = intercept.New(intercept.Options{})
	})
	if err != nil {
		t.Fatalf("new interceptor: %v", err)
	}
	t.Cleanup(func() { icpt.Close() })
	return icpt
}

// ourRoutes lists the local routes with the interceptor's protocol in the
// proxy namespace.
func (l *lab) ourRoutes(t *testing.T) []string {
	t.Helper()
	h := handleAt(t, l.proxy)
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Table: intercept.DefaultRouteTable, Protocol: intercept.DefaultRouteProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		// IPv6 routes have no scope: the kernel reports universe.
		if r.Type != unix.RTN_LOCAL || (r.Dst.IP.To4() != nil && r.Scope != netlink.SCOPE_HOST) {
			t.Errorf("route %v: want type local, scope host", r)
		}
		out = append(out, r.Dst.String())
	}
	slices.Sort(out)
	return out
}

// attached counts the sk_lookup programs attached to the proxy namespace.
func (l *lab) attached(t *testing.T) int {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(l.proxy), Attach: ebpf.AttachSkLookup})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs)
}

func mustAdd(t *testing.T, icpt *intercept.Interceptor, eps ...string) {
	t.Helper()
	for _, ep := range eps {
		if err := icpt.Add(netip.MustParseAddrPort(ep)); err != nil {
			t.Fatalf("add %s: %v", ep, err)
		}
	}
}

func mustRemove(t *testing.T, icpt *intercept.Interceptor, eps ...string) {
	t.Helper()
	for _, ep := range eps {
		if err := icpt.Remove(netip.MustParseAddrPort(ep)); err != nil {
			t.Fatalf("remove %s: %v", ep, err)
		}
	}
}

func TestConnectionsToVIPsLandOnTheProxyWithTheDialledAddress(t *testing.T) {
	l := newLab(t)
	icpt := newInterceptor(t, l)
	if n := len(icpt.Listeners()); n != 2 {
		t.Fatalf("%d listeners, want 2 (IPv4 and IPv6)", n)
	}
	p := serve(t, icpt)
	t.Cleanup(p.wg.Wait)
	t.Cleanup(func() { icpt.Close() })

	mustAdd(t, icpt, "10.77.100.1:80", "10.77.100.1:443", "10.77.100.2:0", "[fd77:100::1]:80")
	mustAdd(t, icpt, "10.77.100.1:80") // twice: no error, no change

	l.expectSteered(t, "10.77.100.1:80", 0)
	l.expectSteered(t, "10.77.100.1:443", 0)
	l.expectSteered(t, "10.77.100.2:80", 0)
	l.expectSteered(t, "10.77.100.2:5000", 0)
	l.expectSteered(t, "[fd77:100::1]:80", 1)
	l.expectRefused(t, "10.77.100.1:8080")
	l.expectRefused(t, "[fd77:100::1]:443")

	if got, err := icpt.Steered(); err != nil || got != 5 {
		t.Errorf("Steered() = %d, %v; want 5", got, err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.77.100.1:80"), netip.MustParseAddrPort("10.77.100.1:443"),
		netip.MustParseAddrPort("10.77.100.2:0"), netip.MustParseAddrPort("[fd77:100::1]:80"),
	}
	if got := icpt.Endpoints(); !slices.Equal(got, want) {
		t.Errorf("Endpoints() = %v, want %v", got, want)
	}
	if got, want := l.ourRoutes(t), []string{"10.77.100.1/32", "10.77.100.2/32", "fd77:100::1/128"}; !slices.Equal(got, want) {
		t.Errorf("local routes %v, want %v", got, want)
	}
	if n := l.attached(t); n != 1 {
		t.Errorf("%d sk_lookup programs attached to the proxy namespace, want 1", n)
	}
}

func TestRemovedEndpointIsNoLongerSteered(t *testing.T) {
	l := newLab(t)
	icpt := newInterceptor(t, l)
	p := serve(t, icpt)
	t.Cleanup(p.wg.Wait)
	t.Cleanup(func() { icpt.Close() })

	mustAdd(t, icpt, "10.77.100.1:80", "10.77.100.1:443", "[fd77:100::1]:80")
	l.expectSteered(t, "10.77.100.1:80", 0)

	// The address still has a steered port: its route stays.
	mustRemove(t, icpt, "10.77.100.1:80", "10.77.100.1:80")
	l.expectRefused(t, "10.77.100.1:80")
	l.expectSteered(t, "10.77.100.1:443", 0)
	if got, want := l.ourRoutes(t), []string{"10.77.100.1/32", "fd77:100::1/128"}; !slices.Equal(got, want) {
		t.Errorf("local routes %v, want %v", got, want)
	}

	// Its last port: the route goes, and the address with it.
	mustRemove(t, icpt, "10.77.100.1:443", "[fd77:100::1]:80")
	l.expectNotReached(t, "10.77.100.1:443")
	l.expectNotReached(t, "[fd77:100::1]:80")
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("local routes %v left after the last endpoint went", got)
	}
	if got := icpt.Endpoints(); len(got) != 0 {
		t.Errorf("Endpoints() = %v after removing all", got)
	}

	// Back again.
	mustAdd(t, icpt, "10.77.100.1:443")
	l.expectSteered(t, "10.77.100.1:443", 0)
}

func TestAddressAlreadyLocalKeepsItsOwnRoute(t *testing.T) {
	l := newLab(t)
	icpt := newInterceptor(t, l)
	p := serve(t, icpt)
	t.Cleanup(p.wg.Wait)
	t.Cleanup(func() { icpt.Close() })

	ep := proxyAddr4 + ":8443" // the proxy namespace's own address
	mustAdd(t, icpt, ep)
	l.expectSteered(t, ep, 0)
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("local routes %v added for an address that was local already", got)
	}
	mustRemove(t, icpt, ep)
	l.expectRefused(t, ep) // still local: the interface's address is untouched
}

func TestCloseDetachesAndRemovesRoutes(t *testing.T) {
	l := newLab(t)
	icpt := newInterceptor(t, l)
	p := serve(t, icpt)

	mustAdd(t, icpt, "10.77.100.1:80", "10.77.100.2:0", "[fd77:100::1]:80", proxyAddr4+":8443")
	l.expectSteered(t, "10.77.100.2:22", 0)
	if err := icpt.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	p.wg.Wait() // the listeners are closed: the accept loops end
	if err := icpt.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("local routes %v left after Close", got)
	}
	if n := l.attached(t); n != 0 {
		t.Errorf("%d sk_lookup programs still attached after Close", n)
	}
	l.expectNotReached(t, "10.77.100.1:80")
	l.expectRefused(t, proxyAddr4+":8443")
	if err := icpt.Add(netip.MustParseAddrPort("10.77.100.1:80")); !errors.Is(err, intercept.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
}

func TestNewRemovesRoutesAnEarlierRunLeft(t *testing.T) {
	l := newLab(t)
	h := handleAt(t, l.proxy)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.77.100.7/32")
	if err := h.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst, Type: unix.RTN_LOCAL,
		Table: intercept.DefaultRouteTable, Scope: netlink.SCOPE_HOST, Protocol: intercept.DefaultRouteProtocol}); err != nil {
		t.Fatal(err)
	}
	newInterceptor(t, l)
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("local routes %v survived New", got)
	}
}

func TestAddRefusesEndpointsItCannotSteer(t *testing.T) {
	l := newLab(t)
	icpt := newInterceptor(t, l)
	for _, ep := range []netip.AddrPort{
		{},
		netip.MustParseAddrPort("0.0.0.0:80"),
		netip.MustParseAddrPort("[::]:80"),
		netip.MustParseAddrPort("224.0.0.1:80"),
		netip.AddrPortFrom(netip.MustParseAddr("fe80::1%px0"), 80),
	} {
		if err := icpt.Add(ep); !errors.Is(err, intercept.ErrInvalidEndpoint) {
			t.Errorf("Add(%v) = %v, want ErrInvalidEndpoint", ep, err)
		}
	}
	// A v4-mapped address is the IPv4 endpoint.
	mustAdd(t, icpt, "[::ffff:10.77.100.1]:80")
	if got := icpt.Endpoints(); len(got) != 1 || got[0].String() != "10.77.100.1:80" {
		t.Errorf("Endpoints() = %v, want [10.77.100.1:80]", got)
	}
}

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "the intercept tests make network namespaces and load BPF: run them as root")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestWithoutIPv6OnlyIPv4IsSteered(t *testing.T) {
	l := newLab(t)
	in(t, l.proxy, func() {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6", []byte("1"), 0o644); err != nil {
			t.Fatalf("disable IPv6 on lo: %v", err)
		}
	})
	icpt := newInterceptor(t, l)
	if n := len(icpt.Listeners()); n != 1 {
		t.Fatalf("%d listeners without ::1, want 1", n)
	}
	p := serve(t, icpt)
	t.Cleanup(p.wg.Wait)
	t.Cleanup(func() { icpt.Close() })
	if err := icpt.Add(netip.MustParseAddrPort("[fd77:100::1]:80")); !errors.Is(err, intercept.ErrNoIPv6) {
		t.Errorf("Add of an IPv6 endpoint: %v, want ErrNoIPv6", err)
	}
	mustAdd(t, icpt, "10.77.100.1:80")
	l.expectSteered(t, "10.77.100.1:80", 0)
}
