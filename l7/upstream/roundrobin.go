package upstream

import "sync"

// RoundRobin is nginx's smooth weighted round-robin: on each pick every
// usable server's current weight grows by its weight, the server with the
// largest current weight wins and loses the total of the weights added.
// Over any run of picks each server's share follows its weight, and the
// picks of a heavy server are spread out rather than bunched.
//
// The current weights are shared mutable state, so Pick holds a mutex for
// one pass over the servers (no allocation, no system call); nginx holds
// the upstream's lock the same way. The mutex is per pool tier, so pools do
// not contend with each other. RoundRobin must not be copied.
type RoundRobin struct {
	servers []*Server
	mu      sync.Mutex
	current []int64 // guarded by mu
}

func newRoundRobin(servers []*Server) *RoundRobin {
	return &RoundRobin{servers: servers, current: make([]int64, len(servers))}
}

// Pick returns the usable server with the largest current weight; key is
// not used.
func (b *RoundRobin) Pick(_ string, f Filter) *Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, total := -1, int64(0)
	for i, s := range b.servers {
		if !f.Usable(s) {
			continue
		}
		w := int64(s.cfg.Weight)
		b.current[i] += w
		total += w
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.servers[best]
}

var _ Balancer = (*RoundRobin)(nil)
