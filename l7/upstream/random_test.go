package upstream

import (
	"math"
	"testing"
)

func TestRandomSharesFollowWeights(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerRandom, Servers: servers(3, 5, 3, 2)}, nil)
	const n = 100000
	got := count(p, n, nil)
	for addr, w := range map[string]float64{"10.0.0.1:80": 0.5, "10.0.0.2:80": 0.3, "10.0.0.3:80": 0.2} {
		share := float64(got[addr]) / n
		if math.Abs(share-w)/w > 0.05 {
			t.Errorf("%s got %.3f of the picks, want %.2f ±5%%: %v", addr, share, w, got)
		}
	}
}

func TestRandomAvoidsTheLoadedServer(t *testing.T) {
	p := testPool(t, Config{Name: "u", Balancer: BalancerRandom, Servers: servers(2)}, nil)
	loaded := byAddr(t, p, "10.0.0.1:80")
	for range 10 {
		loaded.Acquire()
	}
	got := count(p, 1000, nil)
	// The two choices are distinct servers, so with two servers the idle
	// one is always a choice, and always wins.
	if got["10.0.0.2:80"] != 1000 {
		t.Errorf("a server with 10 requests in flight still got %v", got)
	}
}
