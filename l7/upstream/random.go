package upstream

import (
	"math/rand/v2"
	"sort"
)

// Random is the power of two random choices: it draws two servers at
// random, each with a probability proportional to its weight, and takes
// the one with fewer requests in flight relative to its weight (the first
// on a tie). Idle servers therefore share requests by weight, and a slow
// server sheds load without any global view. Pick takes no lock: it draws
// from math/rand/v2's per-thread generator.
type Random struct {
	servers []*Server
	cum     []int64 // cum[i]: sum of the weights of servers[:i+1]
}

func newRandom(servers []*Server) *Random {
	b := &Random{servers: servers, cum: make([]int64, len(servers))}
	var sum int64
	for i, s := range servers {
		sum += int64(s.cfg.Weight)
		b.cum[i] = sum
	}
	return b
}

// draws is how many weighted draws Pick makes for a usable candidate
// before it falls back to a scan (when most servers are unusable).
const draws = 8

// Pick returns the less loaded of two weighted random usable servers; key
// is not used.
func (b *Random) Pick(_ string, f Filter) *Server {
	n := len(b.servers)
	if n == 0 {
		return nil
	}
	first := b.draw(f, nil)
	if first == nil {
		return nil
	}
	second := b.draw(f, first)
	if second == nil {
		return first
	}
	a1, w1 := max(first.Active(), 0), int64(first.cfg.Weight)
	a2, w2 := max(second.Active(), 0), int64(second.cfg.Weight)
	if a2*w1 < a1*w2 {
		return second
	}
	return first
}

// draw returns a usable server other than not, drawn by weight; after
// a few unusable draws it scans from a random place instead.
func (b *Random) draw(f Filter, not *Server) *Server {
	n := len(b.servers)
	total := b.cum[n-1]
	for range draws {
		r := rand.Int64N(total)
		i := sort.Search(n, func(i int) bool { return b.cum[i] > r })
		if s := b.servers[i]; s != not && f.Usable(s) {
			return s
		}
	}
	start := rand.IntN(n)
	for i := range n {
		if s := b.servers[(start+i)%n]; s != not && f.Usable(s) {
			return s
		}
	}
	return nil
}

var _ Balancer = (*Random)(nil)
