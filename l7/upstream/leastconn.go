package upstream

import "sync/atomic"

// LeastConn picks the usable server with the fewest requests in flight
// relative to its weight (Active/Weight, compared without division). Ties
// go round-robin: each pick starts its scan one server further, and the
// first of the tied servers from there wins. Pick takes no lock.
type LeastConn struct {
	servers []*Server
	next    atomic.Uint64
}

func newLeastConn(servers []*Server) *LeastConn { return &LeastConn{servers: servers} }

// Pick returns the least loaded usable server; key is not used.
func (b *LeastConn) Pick(_ string, f Filter) *Server {
	n := len(b.servers)
	if n == 0 {
		return nil
	}
	start := int(b.next.Add(1) % uint64(n))
	var best *Server
	var bestActive, bestWeight int64
	for i := range n {
		s := b.servers[(start+i)%n]
		if !f.Usable(s) {
			continue
		}
		a, w := max(s.Active(), 0), int64(s.cfg.Weight)
		if best == nil || a*bestWeight < bestActive*w {
			best, bestActive, bestWeight = s, a, w
		}
	}
	return best
}

var _ Balancer = (*LeastConn)(nil)
