package upstream

import "time"

// Balancer chooses a server among the servers of one tier of a pool (its
// primaries, or its backups) for one request attempt. Each balancer is built
// over a fixed list of servers when the pool's configuration changes; Pick
// returns one of them that f allows, or nil when f allows none. Pick is
// called concurrently.
type Balancer interface {
	Pick(key string, f Filter) *Server
}

// Filter says which servers one attempt may use: those not marked down,
// not taken out by passive health at Now, and not in Tried.
type Filter struct {
	Now   int64     // unix nanoseconds
	Tried []*Server // servers this request already tried
}

// NewFilter returns the filter of an attempt at now after tried.
func NewFilter(now time.Time, tried []*Server) Filter {
	return Filter{Now: now.UnixNano(), Tried: tried}
}

// Usable reports whether the attempt may use s.
func (f Filter) Usable(s *Server) bool {
	return !s.cfg.Down && s.healthy(f.Now) && !f.tried(s)
}

func (f Filter) tried(s *Server) bool {
	for _, t := range f.Tried {
		if t != nil && same(t, s) {
			return true
		}
	}
	return false
}

// newBalancer returns the balancer named kind over servers.
func newBalancer(kind string, servers []*Server) Balancer {
	switch kind {
	case BalancerLeastConn:
		return newLeastConn(servers)
	case BalancerHash:
		return newHash(servers)
	case BalancerRandom:
		return newRandom(servers)
	}
	return newRoundRobin(servers)
}

// pick calls b.Pick through its concrete type. Calls through the interface
// make the compiler assume that key and f.Tried escape, which would move
// the caller's tried buffer to the heap on every request; the balancers of
// this package keep neither.
func pick(b Balancer, key string, f Filter) *Server {
	switch b := b.(type) {
	case *RoundRobin:
		return b.Pick(key, f)
	case *LeastConn:
		return b.Pick(key, f)
	case *Hash:
		return b.Pick(key, f)
	case *Random:
		return b.Pick(key, f)
	}
	return nil
}
