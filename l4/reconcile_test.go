package l4

import (
	"net"
	"net/netip"
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
