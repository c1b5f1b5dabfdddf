package maps

import (
	"net/netip"
	"sync"
)

// Op is one write recorded by Fake.
type Op struct {
	Delete bool
	Prefix netip.Prefix
	Mask   uint64
}

// Fake is an in-memory PrefixMap that records every write in order, for
// tests that need no privileges.
type Fake struct {
	mu      sync.Mutex
	entries map[netip.Prefix]uint64
	// Ops holds every write in the order it happened; Record must be set.
	Ops    []Op
	Record bool
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{entries: make(map[netip.Prefix]uint64)} }

// Update implements PrefixMap.
func (f *Fake) Update(prefixes []netip.Prefix, masks []uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range prefixes {
		f.entries[p] = masks[i]
		if f.Record {
			f.Ops = append(f.Ops, Op{Prefix: p, Mask: masks[i]})
		}
	}
	return nil
}

// Delete implements PrefixMap.
func (f *Fake) Delete(prefixes []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range prefixes {
		delete(f.entries, p)
		if f.Record {
			f.Ops = append(f.Ops, Op{Delete: true, Prefix: p})
		}
	}
	return nil
}

// Iterate implements PrefixMap.
func (f *Fake) Iterate(fn func(netip.Prefix, uint64) bool) error {
	f.mu.Lock()
	snapshot := make(map[netip.Prefix]uint64, len(f.entries))
	for p, m := range f.entries {
		snapshot[p] = m
	}
	f.mu.Unlock()
	for p, m := range snapshot {
		if !fn(p, m) {
			break
		}
	}
	return nil
}

// Lookup returns what an LPM lookup of addr would return: the mask of the
// longest stored prefix containing it, or 0.
func (f *Fake) Lookup(addr netip.Addr) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for bits := addr.BitLen(); bits >= 0; bits-- {
		p, _ := addr.Prefix(bits)
		if m, ok := f.entries[p]; ok {
			return m
		}
	}
	return 0
}

// Len returns how many entries the fake holds.
func (f *Fake) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// FakePolicy is an in-memory PolicyMap.
type FakePolicy struct {
	mu sync.Mutex
	p  Policy
}

// SetPolicy implements PolicyMap.
func (f *FakePolicy) SetPolicy(p Policy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.p = p
	return nil
}

// Policy implements PolicyMap.
func (f *FakePolicy) Policy() (Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p, nil
}

// FakeStats is a Stats whose counters tests set directly.
type FakeStats struct {
	IfaceCounters map[int][NumVerdicts]Counter
	DropCounters  [NumDropReasons]Counter
	ListCounters  [MaxLists + 1]Counter
}

// Iface implements Stats.
func (f *FakeStats) Iface(ifindex int) ([NumVerdicts]Counter, error) {
	return f.IfaceCounters[ifindex], nil
}

// Drops implements Stats.
func (f *FakeStats) Drops() ([NumDropReasons]Counter, error) { return f.DropCounters, nil }

// Lists implements Stats.
func (f *FakeStats) Lists() ([MaxLists + 1]Counter, error) { return f.ListCounters, nil }

var (
	_ PrefixMap = (*Fake)(nil)
	_ PolicyMap = (*FakePolicy)(nil)
	_ Stats     = (*FakeStats)(nil)
)
