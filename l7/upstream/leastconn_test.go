package upstream

import "testing"

func TestLeastConnPrefersTheIdleServer(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerLeastConn, Servers: servers(3)}, nil)
	busy1, busy3 := byAddr(t, p, "10.0.0.1:80"), byAddr(t, p, "10.0.0.3:80")
	busy1.Acquire()
	busy1.Acquire()
	busy3.Acquire()
	for range 10 {
		if s := p.Pick("", nil); s.Addr() != "10.0.0.2:80" {
			t.Fatalf("picked %s (active %d) over the idle 10.0.0.2", s.Addr(), s.Active())
		}
	}
	// Held requests pile onto the least loaded until they even out.
	var held []*Server
	for range 3 {
		s := p.Pick("", nil)
		s.Acquire()
		held = append(held, s)
	}
	for _, s := range p.Servers() {
		if s.Active() != 2 {
			t.Errorf("%s has %d active after 3 more held picks, want every server at 2", s.Addr(), s.Active())
		}
	}
	for _, s := range held {
		s.Release()
	}
}

func TestLeastConnWeighsActiveByWeight(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerLeastConn, Servers: servers(2, 3, 1)}, nil)
	// Hold 8 requests: the weight-3 server should carry 6, the other 2.
	for range 8 {
		p.Pick("", nil).Acquire()
	}
	if a, b := byAddr(t, p, "10.0.0.1:80").Active(), byAddr(t, p, "10.0.0.2:80").Active(); a != 6 || b != 2 {
		t.Errorf("8 held requests over weights 3:1 went %d:%d, want 6:2", a, b)
	}
}

func TestLeastConnBreaksTiesRoundRobin(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerLeastConn, Servers: servers(4)}, nil)
	got := count(p, 4000, nil)
	for _, s := range p.Servers() {
		if got[s.Addr()] != 1000 {
			t.Errorf("idle servers: %v, want 1000 each", got)
			break
		}
	}
}
