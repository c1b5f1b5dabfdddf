package upstream

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

func hashPool(t testing.TB, sc []ServerConfig, clk *fakeClock) *Pool {
	return testPool(t, Config{Name: "u", Balancer: BalancerHash, HashKey: "header:X-User", Servers: sc}, clk)
}

func keyN(i int) string { return fmt.Sprintf("user-%d", i) }

// owners maps n keys to the address of the server they pick.
func owners(p *Pool, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = p.Pick(keyN(i), nil).Addr()
	}
	return out
}

func TestHashSendsAKeyToTheSameServer(t *testing.T) {
	p := hashPool(t, servers(5), nil)
	first := owners(p, 1000)
	for round := range 3 {
		if again := owners(p, 1000); !slices.Equal(first, again) {
			t.Fatalf("round %d: keys changed servers with nothing changed", round)
		}
	}
	// Another process with the same servers, listed in another order.
	sc := servers(5)
	slices.Reverse(sc)
	if other := owners(hashPool(t, sc, nil), 1000); !slices.Equal(first, other) {
		t.Errorf("a pool of the same servers in another order maps keys differently")
	}
}

func TestHashMapsKeysAsInEveryRelease(t *testing.T) {
	// The ring is part of the product's behaviour: sessions pinned by a
	// cookie must stay pinned across an upgrade. Changing hash64 or the
	// point names breaks this test on purpose.
	p := hashPool(t, servers(4), nil)
	got := map[string]string{}
	for _, k := range []string{"alice", "bob", "carol", "dave", "10.1.2.3", "/index.html"} {
		got[k] = p.Pick(k, nil).Addr()
	}
	want := map[string]string{
		"alice": "10.0.0.3:80", "bob": "10.0.0.2:80", "carol": "10.0.0.4:80", "dave": "10.0.0.3:80",
		"10.1.2.3": "10.0.0.1:80", "/index.html": "10.0.0.3:80",
	}
	if !maps.Equal(got, want) {
		t.Errorf("keys map to %v, releases before mapped them to %v", got, want)
	}
}

func TestHashRemovingAServerMovesOnlyItsKeys(t *testing.T) {
	const n, keys = 10, 20000
	p := hashPool(t, servers(n), nil)
	before := owners(p, keys)
	gone := "10.0.0.4:80"
	if err := p.RemoveServer(byAddr(t, p, gone).ID()); err != nil {
		t.Fatal(err)
	}
	after := owners(p, keys)
	moved := 0
	for i := range before {
		if before[i] != gone && after[i] != before[i] {
			t.Fatalf("key %q moved from %s to %s though its server stayed", keyN(i), before[i], after[i])
		}
		if before[i] != after[i] {
			moved++
		}
	}
	if share := float64(moved) / keys; math.Abs(share-1.0/n) > 0.03 {
		t.Errorf("removing 1 of %d servers moved %.3f of the keys, want about %.2f", n, share, 1.0/n)
	}
}

func TestHashSpreadsKeysByWeight(t *testing.T) {
	p := hashPool(t, servers(3, 2, 1, 1), nil)
	got := count(p, 40000, keyN)
	for addr, w := range map[string]float64{"10.0.0.1:80": 0.5, "10.0.0.2:80": 0.25, "10.0.0.3:80": 0.25} {
		if share := float64(got[addr]) / 40000; math.Abs(share-w)/w > 0.15 {
			t.Errorf("%s holds %.3f of the keys, want about %.2f: %v", addr, share, w, got)
		}
	}
}

func TestHashMovesTheKeysOfAFailedServerAndBringsThemBack(t *testing.T) {
	clk := newFakeClock()
	p := hashPool(t, servers(5), clk)
	before := owners(p, 2000)
	victim := byAddr(t, p, "10.0.0.2:80")
	fail(victim, 1)
	during := owners(p, 2000)
	for i := range before {
		if during[i] == victim.Addr() {
			t.Fatalf("key %q still went to the failed server", keyN(i))
		}
		if before[i] != victim.Addr() && during[i] != before[i] {
			t.Fatalf("key %q moved off a healthy server while another failed", keyN(i))
		}
	}
	clk.Add(10 * time.Second)
	if after := owners(p, 2000); !slices.Equal(before, after) {
		t.Errorf("keys did not return to their server after fail_timeout")
	}
}

func TestHashDownAndUpMovesNoOtherKey(t *testing.T) {
	p := hashPool(t, servers(5), nil)
	before := owners(p, 2000)
	if _, err := p.UpdateServer(byAddr(t, p, "10.0.0.3:80").ID(), func(s *ServerConfig) { s.Down = true }); err != nil {
		t.Fatal(err)
	}
	during := owners(p, 2000)
	for i := range before {
		if before[i] != "10.0.0.3:80" && during[i] != before[i] {
			t.Fatalf("marking another server down moved key %q", keyN(i))
		}
		if during[i] == "10.0.0.3:80" {
			t.Fatalf("key %q went to a down server", keyN(i))
		}
	}
	if _, err := p.UpdateServer(byAddr(t, p, "10.0.0.3:80").ID(), func(s *ServerConfig) { s.Down = false }); err != nil {
		t.Fatal(err)
	}
	if after := owners(p, 2000); !slices.Equal(before, after) {
		t.Errorf("keys did not return after the server came back up")
	}
}

func TestHashWithoutAKeyGoesRoundRobin(t *testing.T) {
	p := hashPool(t, servers(4), nil)
	got := count(p, 400, nil)
	for _, s := range p.Servers() {
		if got[s.Addr()] != 100 {
			t.Errorf("requests without the header: %v, want 100 each", got)
			break
		}
	}
}
