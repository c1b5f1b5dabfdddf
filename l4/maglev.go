package l4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// NoBackend marks a table position without a backend (no backend can take new flows).
const NoBackend = ^uint32(0)

// MaglevBackend is one backend as the table builder sees it.
type MaglevBackend struct {
	Addr   netip.Addr
	Weight uint16
}

// ErrTableSize is returned for a table size that is not a prime in range.
var ErrTableSize = errors.New("maglev table size must be a prime between 251 and 1000003")

// BuildTable fills a Maglev lookup table of size m (Eisenbud et al., NSDI
// 2016) with indexes into backends, each backend taking positions in
// proportion to its weight; backends of weight 0 take none. Each backend's
// permutation comes from a fixed hash of its address alone, and backends are
// taken in address order, so two load balancers given the same backends in
// any order build the same table, and adding or removing one backend moves
// few positions.
func BuildTable(backends []MaglevBackend, m uint32) ([]uint32, error) {
	if !IsPrime(m) || m < 251 || m > 1_000_003 {
		return nil, fmt.Errorf("%w: %d", ErrTableSize, m)
	}
	table := make([]uint32, m)
	for i := range table {
		table[i] = NoBackend
	}
	order := make([]int, 0, len(backends))
	var maxW uint64
	for i, b := range backends {
		if b.Weight > 0 {
			order = append(order, i)
			maxW = max(maxW, uint64(b.Weight))
		}
	}
	if len(order) == 0 {
		return table, nil
	}
	slices.SortFunc(order, func(a, b int) int { return backends[a].Addr.Compare(backends[b].Addr) })
	for k := 1; k < len(order); k++ {
		if backends[order[k]].Addr == backends[order[k-1]].Addr {
			return nil, fmt.Errorf("maglev: backend %s appears twice", backends[order[k]].Addr)
		}
	}

	n := len(order)
	pos := make([]uint64, n)  // each backend's next candidate position
	skip := make([]uint64, n) // and its stride
	credit := make([]uint64, n)
	for k, i := range order {
		a := backends[i].Addr.As16()
		pos[k] = hash64(0x5a17ce5eed5eed01, a[:]) % uint64(m)
		skip[k] = hash64(0x0badc0ffee5eed02, a[:])%uint64(m-1) + 1
	}
	// Weighted turns: a backend takes a position each time its credit
	// reaches the largest weight, so positions follow the weights.
	for filled := uint32(0); filled < m; {
		for k, i := range order {
			credit[k] += uint64(backends[i].Weight)
			if credit[k] < maxW {
				continue
			}
			credit[k] -= maxW
			for table[pos[k]] != NoBackend {
				pos[k] = (pos[k] + skip[k]) % uint64(m)
			}
			table[pos[k]] = uint32(i)
			pos[k] = (pos[k] + skip[k]) % uint64(m)
			if filled++; filled == m {
				break
			}
		}
	}
	return table, nil
}

// hash64 is FNV-1a over a seed and data: fixed across processes and
// versions, unlike Go's map hash.
func hash64(seed uint64, data []byte) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	for _, c := range append(s[:], data...) {
		h ^= uint64(c)
		h *= prime
	}
	// A final mix spreads FNV's weak low bits before the modulo.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// IsPrime reports whether n is prime.
func IsPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	for d := uint32(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
