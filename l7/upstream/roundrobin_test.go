package upstream

import (
	"strings"
	"testing"
)

func TestRoundRobinSharesFollowWeightsExactly(t *testing.T) {
	p := testPool(t, Config{Name: "u", Servers: servers(3, 5, 3, 2)}, nil)
	got := count(p, 10000, nil)
	want := map[string]int{"10.0.0.1:80": 5000, "10.0.0.2:80": 3000, "10.0.0.3:80": 2000}
	for addr, n := range want {
		if got[addr] != n {
			t.Errorf("%s got %d of 10000 picks, want %d (weights 5:3:2): %v", addr, got[addr], n, got)
		}
	}
}

func TestRoundRobinIsSmoothLikeNginx(t *testing.T) {
	// nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
	cfg := Config{Name: "u", Servers: []ServerConfig{{Addr: "a:80", Weight: 5}, {Addr: "b:80"}, {Addr: "c:80"}}}
	p := testPool(t, cfg, nil)
	var seq []string
	for range 14 {
		seq = append(seq, strings.TrimSuffix(p.Pick("", nil).Addr(), ":80"))
	}
	if got, want := strings.Join(seq, " "), "a a b a c a a a a b a c a a"; got != want {
		t.Errorf("picks %q, want %q", got, want)
	}
}

func TestRoundRobinSkipsAFailedServerAndKeepsTheOthersRatio(t *testing.T) {
	clk := newFakeClock()
	p := testPool(t, Config{Name: "u", Servers: servers(3, 1, 2, 1)}, clk)
	fail(byAddr(t, p, "10.0.0.2:80"), 1)
	got := count(p, 1000, nil)
	if got["10.0.0.2:80"] != 0 || got["10.0.0.1:80"] != 500 || got["10.0.0.3:80"] != 500 {
		t.Errorf("with the weight-2 server failed: %v, want the other two 500 each", got)
	}
}
