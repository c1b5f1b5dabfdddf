package upstream

import (
	"slices"
	"strconv"
)

// Hash is consistent hashing on the request's key (see Pool.KeyFor): a ring
// of points, PointsPerWeight per unit of weight for each server (weights
// above MaxRingWeight count as MaxRingWeight), placed by hashing the
// server's address and the point's number. A key goes to the owner of the
// first point at or after the key's hash. The ring depends only on the
// servers' addresses and weights, so every process with the same servers
// sends a key to the same server, and removing a server moves only the keys
// it owned. A key whose server is unusable (down, failed, or already tried
// by this request) walks on around the ring to the next usable server, so
// it too lands on the same server in every process. Down servers keep their
// points: marking one down and up again moves no other key.
//
// An empty key (a missing header or cookie) has nothing to be consistent
// about: those requests go round-robin. Pick takes no lock except for that
// round-robin fallback.
type Hash struct {
	servers []*Server
	points  []uint64 // sorted
	owners  []int32  // owners[i]: index in servers of points[i]
	rr      *RoundRobin
}

// PointsPerWeight is the number of ring points per unit of weight, as in
// nginx's ketama-like consistent hash.
const PointsPerWeight = 160

// MaxRingWeight caps the weight a server has on the ring, so a weight of a
// million does not make a ring of 160 million points.
const MaxRingWeight = 100

// ringWalk is how many points Pick walks past unusable owners before it
// checks whether any server is usable at all.
const ringWalk = 64

func newHash(servers []*Server) *Hash {
	type point struct {
		h     uint64
		owner int32
	}
	var pts []point
	for i, s := range servers {
		n := PointsPerWeight * min(s.cfg.Weight, MaxRingWeight)
		buf := []byte(s.cfg.Addr + "#")
		base := len(buf)
		for j := range n {
			buf = strconv.AppendInt(buf[:base], int64(j), 10)
			pts = append(pts, point{hash64(string(buf)), int32(i)})
		}
	}
	// Ties (vanishingly rare) are broken by address so that the ring does
	// not depend on the order of the servers in the config.
	slices.SortFunc(pts, func(a, b point) int {
		if a.h != b.h {
			if a.h < b.h {
				return -1
			}
			return 1
		}
		switch x, y := servers[a.owner].cfg.Addr, servers[b.owner].cfg.Addr; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	b := &Hash{servers: servers, points: make([]uint64, len(pts)), owners: make([]int32, len(pts)), rr: newRoundRobin(servers)}
	for i, p := range pts {
		b.points[i], b.owners[i] = p.h, p.owner
	}
	return b
}

// Pick returns the usable server that owns key on the ring, or the next
// usable one clockwise.
func (b *Hash) Pick(key string, f Filter) *Server {
	n := len(b.points)
	if n == 0 {
		return nil
	}
	if key == "" {
		return b.rr.Pick(key, f)
	}
	h := hash64(key)
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.points[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for step := range n {
		if step == ringWalk && !b.anyUsable(f) {
			return nil
		}
		if s := b.servers[b.owners[(lo+step)%n]]; f.Usable(s) {
			return s
		}
	}
	return nil
}

func (b *Hash) anyUsable(f Filter) bool {
	for _, s := range b.servers {
		if f.Usable(s) {
			return true
		}
	}
	return false
}

// hash64 is FNV-1a followed by the splitmix64 finalizer, which spreads
// the similar short strings of ring points evenly over the ring. It is
// part of the ring's definition: changing it moves every key.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

var _ Balancer = (*Hash)(nil)
