package l4

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/sluicelb/sluice/maps"
)

func fakeResolver(a netip.Addr) (NextHop, error) {
	return NextHop{MAC: net.HardwareAddr{2, 0, 0, 0, 0, a.AsSlice()[a.BitLen()/8-1]}}, nil
}

// TestVIPStaysWhileAServiceUsesIt: the datapath skips every packet whose
// destination is not in the VIP map, so a VIP must never leave it while a
// service still has it: not when the service is replaced, not when one of
// two services on it goes.
func TestVIPStaysWhileAServiceUsesIt(t *testing.T) {
	lb := maps.NewFakeLB()
	r, err := NewReconciler(lb, fakeResolver)
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("203.0.113.10")
	svc := func(name string, port uint16, backends ...string) Service {
		s := Service{Name: name, VIP: vip, Port: port, Proto: TCP, Mode: ModeDSRIPIP}
		for _, b := range backends {
			s.Backends = append(s.Backends, Backend{Addr: netip.MustParseAddr(b), Weight: 1})
		}
		return s
	}
	for _, step := range []struct {
		what string
		do   func() error
		want bool
	}{
		{"set", func() error { return r.Set(svc("web", 443, "10.1.0.1")) }, true},
		{"replace", func() error { return r.Set(svc("web", 443, "10.1.0.1", "10.1.0.2")) }, true},
		{"a second service", func() error { return r.Set(svc("dns", 53, "10.1.0.3")) }, true},
		{"delete one", func() error { return r.Delete("web") }, true},
		{"delete the last", func() error { return r.Delete("dns") }, false},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		if got := lb.VIPs[vip]; got != step.want {
			t.Fatalf("after %s the VIP is in the map: %v, want %v", step.what, got, step.want)
		}
	}
}

// A neighbour entry that lapses (probed again, flushed) must not take a
// backend out: its flows would move to the others for good. The backend
// keeps its last next hop until a new one resolves; one the operator takes
// down goes.
func TestRefreshKeepsTheLastNextHopThroughALapse(t *testing.T) {
	lb := maps.NewFakeLB()
	var lapsed atomic.Bool
	moved := net.HardwareAddr{2, 0, 0, 0, 9, 9}
	var newMAC atomic.Bool
	b2 := netip.MustParseAddr("10.1.0.2")
	r, err := NewReconciler(lb, func(a netip.Addr) (NextHop, error) {
		if a == b2 && lapsed.Load() {
			return NextHop{}, errors.New("neighbour FAILED")
		}
		if a == b2 && newMAC.Load() {
			return NextHop{MAC: moved}, nil
		}
		return fakeResolver(a)
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := Service{Name: "web", VIP: netip.MustParseAddr("203.0.113.10"), Port: 443, Proto: TCP, Mode: ModeDSRIPIP,
		Backends: []Backend{{Addr: netip.MustParseAddr("10.1.0.1"), Weight: 1}, {Addr: b2, Weight: 1}}}
	if err := r.Set(svc); err != nil {
		t.Fatal(err)
	}
	entry := func() maps.BackendEntry {
		t.Helper()
		bs, _ := lb.Backends()
		for _, e := range bs {
			if e.Addr == b2 {
				return e
			}
		}
		t.Fatal("backend 10.1.0.2 is not in the map")
		return maps.BackendEntry{}
	}
	want := entry().MAC.String()

	lapsed.Store(true)
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if e := entry(); e.Down || e.MAC.String() != want {
		t.Errorf("after a lapse the backend is %+v, want up with MAC %s", e, want)
	}
	// An API write meanwhile keeps it too.
	svc.Backends[0].Weight = 2
	if err := r.Set(svc); err != nil {
		t.Fatal(err)
	}
	if e := entry(); e.Down || e.MAC.String() != want {
		t.Errorf("after a Set during the lapse the backend is %+v, want up with MAC %s", e, want)
	}
	// A MAC that moved is taken.
	lapsed.Store(false)
	newMAC.Store(true)
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if e := entry(); e.Down || e.MAC.String() != moved.String() {
		t.Errorf("after the MAC moved the backend is %+v, want MAC %s", e, moved)
	}
	// Down by the operator: out, whatever its neighbour says.
	lapsed.Store(true)
	svc.Backends[1].State = Down
	if err := r.Set(svc); err != nil {
		t.Fatal(err)
	}
	if e := entry(); !e.Down {
		t.Errorf("a backend set down is %+v, want down", e)
	}
}

// A configured router MAC resolves dsr-ipip backends; dsr-l2 ones still
// need their own MAC from the neighbour resolver.
func TestTunnelResolverServesDSRIPIPOnly(t *testing.T) {
	lb := maps.NewFakeLB()
	r, err := NewReconciler(lb, fakeResolver)
	if err != nil {
		t.Fatal(err)
	}
	router := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 1}
	r.ResolveTunnel = func(netip.Addr) (NextHop, error) { return NextHop{MAC: router, Ifindex: 7}, nil }
	vip := netip.MustParseAddr("203.0.113.10")
	for _, s := range []Service{
		{Name: "tunnel", VIP: vip, Port: 443, Proto: TCP, Mode: ModeDSRIPIP, Backends: []Backend{{Addr: netip.MustParseAddr("10.1.0.1"), Weight: 1}}},
		{Name: "l2", VIP: vip, Port: 80, Proto: TCP, Mode: ModeDSRL2, Backends: []Backend{{Addr: netip.MustParseAddr("10.1.0.2"), Weight: 1}}},
	} {
		if err := r.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	bs, _ := lb.Backends()
	for _, e := range bs {
		want, _ := fakeResolver(e.Addr)
		if e.Addr == netip.MustParseAddr("10.1.0.1") {
			want = NextHop{MAC: router, Ifindex: 7}
		}
		if e.MAC.String() != want.MAC.String() || e.Ifindex != uint32(want.Ifindex) {
			t.Errorf("backend %s: MAC %s ifindex %d, want %s %d", e.Addr, e.MAC, e.Ifindex, want.MAC, want.Ifindex)
		}
	}
	if len(bs) != 2 {
		t.Fatalf("%d backends in the map, want 2", len(bs))
	}
}

// The static resolver sends to the configured MAC on the route's interface.
func TestStaticMACResolverTakesTheRoutesInterface(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 1}
	h, err := StaticMACResolver(mac)(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if h.MAC.String() != mac.String() || h.Ifindex != lo.Index {
		t.Errorf("127.0.0.1 resolves to %s on %d, want %s on lo (%d)", h.MAC, h.Ifindex, mac, lo.Index)
	}
}
