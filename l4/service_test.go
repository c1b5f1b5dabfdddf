package l4

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func web() Service {
	return Service{Name: "web", VIP: netip.MustParseAddr("203.0.113.10"), Port: 443, Proto: TCP, Mode: ModeDSRIPIP,
		Backends: []Backend{{Addr: netip.MustParseAddr("10.1.0.11"), Weight: 100}, {Addr: netip.MustParseAddr("10.1.0.12"), Weight: 200, State: Drain}}}
}

func TestServiceValidation(t *testing.T) {
	ok := web()
	ok.Normalize()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if ok.TableSize != DefaultTableSize || ok.HashInput != Hash5Tuple || ok.Backends[0].State != Active {
		t.Fatalf("defaults not filled: %+v", ok)
	}
	for _, c := range []struct {
		field string
		edit  func(*Service)
	}{
		{"name", func(s *Service) { s.Name = "no spaces" }},
		{"vip", func(s *Service) { s.VIP = netip.Addr{} }},
		{"vip", func(s *Service) { s.VIP = netip.MustParseAddr("224.0.0.1") }},
		{"proto", func(s *Service) { s.Proto = "sctp" }},
		{"mode", func(s *Service) { s.Mode = "nat" }},
		{"hash_input", func(s *Service) { s.HashInput = "dst-ip" }},
		{"table_size", func(s *Service) { s.TableSize = 65536 }},
		{"table_size", func(s *Service) { s.TableSize = 7 }},
		{"backends[1]", func(s *Service) { s.Backends[1].Addr = netip.MustParseAddr("2001:db8::1") }},
		{"backends[1]", func(s *Service) { s.Backends[1].Addr = s.Backends[0].Addr }},
		{"backends[0].state", func(s *Service) { s.Backends[0].State = "sleepy" }},
	} {
		s := web()
		c.edit(&s)
		err := s.Validate()
		if !errors.Is(err, ErrInvalidService) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: err = %v, want ErrInvalidService naming %s", c.field, err, c.field)
		}
	}
}

func TestVIPClashes(t *testing.T) {
	a, b := web(), web()
	b.Name = "web2"
	if err := ValidateSet([]Service{a, b}); !errors.Is(err, ErrVIPClash) {
		t.Fatalf("same VIP, port and proto: %v", err)
	}
	b.Proto = UDP
	if err := ValidateSet([]Service{a, b}); err != nil {
		t.Fatalf("same VIP and port, other proto: %v", err)
	}
	b.Proto, b.Port = TCP, 0
	if err := ValidateSet([]Service{a, b}); err != nil {
		t.Fatalf("a port-0 service beside a port service: %v", err)
	}
	c := b
	c.Name = "web3"
	if err := ValidateSet([]Service{a, b, c}); !errors.Is(err, ErrVIPClash) {
		t.Fatalf("two port-0 services on one VIP: %v", err)
	}
	b.Name = "web"
	if err := ValidateSet([]Service{a, b}); !errors.Is(err, ErrInvalidService) {
		t.Fatalf("a name used twice: %v", err)
	}
}

func TestServiceJSONAndMaglevBackends(t *testing.T) {
	s := web()
	s.Backends = append(s.Backends, Backend{Addr: netip.MustParseAddr("10.1.0.13"), Weight: 50, State: Down})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"mode":"dsr-ipip"`) || !strings.Contains(string(b), `"state":"drain"`) {
		t.Fatalf("json %s", b)
	}
	var back Service
	if err := json.Unmarshal(b, &back); err != nil || back.VIP != s.VIP || len(back.Backends) != 3 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	mb := s.MaglevBackends()
	if len(mb) != 1 || mb[0].Addr != s.Backends[0].Addr {
		t.Fatalf("maglev backends %+v, want only the active one", mb)
	}
	if got := s.Endpoint(); got != "203.0.113.10:443/tcp" {
		t.Fatalf("endpoint %s", got)
	}
}
