package upstream

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testPool returns a pool of cfg on clk, failing the test on error.
func testPool(t testing.TB, cfg Config, clk *fakeClock) *Pool {
	t.Helper()
	now := time.Now
	if clk != nil {
		now = clk.Now
	}
	p, err := newPool(cfg, now)
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	return p
}

// servers returns n servers 10.0.0.1:80, 10.0.0.2:80, … with the weights
// given (1 for the rest).
func servers(n int, weights ...int) []ServerConfig {
	out := make([]ServerConfig, n)
	for i := range out {
		out[i].Addr = fmt.Sprintf("10.0.0.%d:80", i+1)
		if i < len(weights) {
			out[i].Weight = weights[i]
		}
	}
	return out
}

// byAddr returns the pool's server with addr.
func byAddr(t testing.TB, p *Pool, addr string) *Server {
	t.Helper()
	for _, s := range p.Servers() {
		if s.Addr() == addr {
			return s
		}
	}
	t.Fatalf("no server %s", addr)
	return nil
}

// count picks n times (releasing at once) and counts the picks by address.
func count(p *Pool, n int, key func(i int) string) map[string]int {
	got := map[string]int{}
	for i := range n {
		k := ""
		if key != nil {
			k = key(i)
		}
		if s := p.Pick(k, nil); s != nil {
			got[s.Addr()]++
		} else {
			got[""]++
		}
	}
	return got
}

// fail reports n failures of s.
func fail(s *Server, n int) {
	for range n {
		s.Report(false)
	}
}
