package maps

import (
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/sluicelb/sluice/bpf"
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
	// OnWrite, when set, is called after every entry written or deleted.
	OnWrite func()
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{entries: make(map[netip.Prefix]uint64)} }

// Update implements PrefixMap.
func (f *Fake) Update(prefixes []netip.Prefix, masks []uint64) error {
	for i, p := range prefixes {
		f.mu.Lock()
		f.entries[p] = masks[i]
		if f.Record {
			f.Ops = append(f.Ops, Op{Prefix: p, Mask: masks[i]})
		}
		f.mu.Unlock()
		if f.OnWrite != nil {
			f.OnWrite()
		}
	}
	return nil
}

// Delete implements PrefixMap.
func (f *Fake) Delete(prefixes []netip.Prefix) error {
	for _, p := range prefixes {
		f.mu.Lock()
		delete(f.entries, p)
		if f.Record {
			f.Ops = append(f.Ops, Op{Delete: true, Prefix: p})
		}
		f.mu.Unlock()
		if f.OnWrite != nil {
			f.OnWrite()
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

// FakeIndex is an in-memory IndexMap that answers lookups as
// bpf/include/acl.h does. OnWrite, when set, is called after every entry
// written, so a test can look at each state a packet could meet.
type FakeIndex struct {
	mu      sync.Mutex
	blocks  map[uint32]bpf.XDPAclV4Block
	buckets map[uint32]bpf.XDPAclV4Bucket
	classes map[uint32]uint64
	OnWrite func()
}

// NewFakeIndex returns a FakeIndex as new maps are: every slot slotSlow.
func NewFakeIndex() *FakeIndex {
	return &FakeIndex{blocks: map[uint32]bpf.XDPAclV4Block{}, buckets: map[uint32]bpf.XDPAclV4Bucket{}, classes: map[uint32]uint64{}}
}

func fakePut[V any](f *FakeIndex, m map[uint32]V, ids []uint32, vals []V) error {
	for i, id := range ids {
		f.mu.Lock()
		m[id] = vals[i]
		f.mu.Unlock()
		if f.OnWrite != nil {
			f.OnWrite()
		}
	}
	return nil
}

// WriteClasses implements IndexMap.
func (f *FakeIndex) WriteClasses(ids []uint32, masks []uint64) error {
	return fakePut(f, f.classes, ids, masks)
}

// WriteBuckets implements IndexMap.
func (f *FakeIndex) WriteBuckets(ids []uint32, buckets []bpf.XDPAclV4Bucket) error {
	return fakePut(f, f.buckets, ids, buckets)
}

// ReadBuckets implements IndexMap.
func (f *FakeIndex) ReadBuckets(ids []uint32, out []bpf.XDPAclV4Bucket) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, id := range ids {
		out[i] = f.buckets[id]
	}
	return nil
}

// WriteBlocks implements IndexMap.
func (f *FakeIndex) WriteBlocks(ids []uint32, blocks []bpf.XDPAclV4Block) error {
	return fakePut(f, f.blocks, ids, blocks)
}

// Lookup returns the mask the datapath finds for an IPv4 address: from the
// index (fast true), or from tries, which answers as the trie and host hash
// do, when the address's slot is slotSlow.
func (f *FakeIndex) Lookup(addr netip.Addr, tries func(netip.Addr) uint64) (mask uint64, fast bool) {
	b := addr.As4()
	src := binary.BigEndian.Uint32(b[:])
	f.mu.Lock()
	slot := f.blocks[src>>16].Slot[(src>>8)&0xff]
	cls := uint32(slot & 0x7fff)
	if cls != slotSlow && slot&slotHosts != 0 {
		for _, h := range f.buckets[bucketOf(src)].Host {
			if uint32(h) == binary.LittleEndian.Uint32(b[:]) && h>>32 != 0 {
				cls = uint32(h >> 32)
				break
			}
		}
	}
	mask = f.classes[cls]
	f.mu.Unlock()
	if cls == slotSlow {
		return tries(addr), false
	}
	return mask, true
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
	_ IndexMap  = (*FakeIndex)(nil)
	_ PolicyMap = (*FakePolicy)(nil)
	_ Stats     = (*FakeStats)(nil)
)

// FakeLB is an in-memory L4 datapath (the methods of maps.LB the reconciler
// and the API use).
type FakeLB struct {
	mu          sync.Mutex
	ServicesMap map[ServiceKey]ServiceEntry
	VIPs        map[netip.Addr]bool
	BackendMap  map[uint32]BackendEntry
	Tables      map[uint32][]uint32
	SvcCounters map[uint32]LBCounter
	BeCounters  map[uint32]LBCounter
}

// NewFakeLB returns an empty FakeLB.
func NewFakeLB() *FakeLB {
	return &FakeLB{ServicesMap: map[ServiceKey]ServiceEntry{}, VIPs: map[netip.Addr]bool{},
		BackendMap: map[uint32]BackendEntry{}, Tables: map[uint32][]uint32{},
		SvcCounters: map[uint32]LBCounter{}, BeCounters: map[uint32]LBCounter{}}
}

func (f *FakeLB) lock() func() { f.mu.Lock(); return f.mu.Unlock }

// PutService implements the L4 datapath.
func (f *FakeLB) PutService(k ServiceKey, e ServiceEntry) error {
	defer f.lock()()
	f.ServicesMap[k] = e
	return nil
}

// DeleteService implements the L4 datapath.
func (f *FakeLB) DeleteService(k ServiceKey) error {
	defer f.lock()()
	delete(f.ServicesMap, k)
	return nil
}

// Services implements the L4 datapath.
func (f *FakeLB) Services() (map[ServiceKey]ServiceEntry, error) {
	defer f.lock()()
	out := make(map[ServiceKey]ServiceEntry, len(f.ServicesMap))
	for k, v := range f.ServicesMap {
		out[k] = v
	}
	return out, nil
}

// PutVIP implements the L4 datapath.
func (f *FakeLB) PutVIP(a netip.Addr) error { defer f.lock()(); f.VIPs[a] = true; return nil }

// DeleteVIP implements the L4 datapath.
func (f *FakeLB) DeleteVIP(a netip.Addr) error { defer f.lock()(); delete(f.VIPs, a); return nil }

// PutBackend implements the L4 datapath.
func (f *FakeLB) PutBackend(id uint32, b BackendEntry) error {
	defer f.lock()()
	f.BackendMap[id] = b
	return nil
}

// ClearBackend implements the L4 datapath.
func (f *FakeLB) ClearBackend(id uint32) error {
	defer f.lock()()
	delete(f.BackendMap, id)
	return nil
}

// Backends implements the L4 datapath.
func (f *FakeLB) Backends() (map[uint32]BackendEntry, error) {
	defer f.lock()()
	out := make(map[uint32]BackendEntry, len(f.BackendMap))
	for k, v := range f.BackendMap {
		out[k] = v
	}
	return out, nil
}

// SwapTable implements the L4 datapath.
func (f *FakeLB) SwapTable(svc uint32, table []uint32) error {
	defer f.lock()()
	f.Tables[svc] = append([]uint32(nil), table...)
	return nil
}

// DeleteTable implements the L4 datapath.
func (f *FakeLB) DeleteTable(svc uint32) error { defer f.lock()(); delete(f.Tables, svc); return nil }

// ResetServiceStats implements the L4 datapath.
func (f *FakeLB) ResetServiceStats(id uint32) error {
	defer f.lock()()
	delete(f.SvcCounters, id)
	return nil
}

// ResetBackendStats implements the L4 datapath.
func (f *FakeLB) ResetBackendStats(id uint32) error {
	defer f.lock()()
	delete(f.BeCounters, id)
	return nil
}

// ServiceStats implements the L4 counters.
func (f *FakeLB) ServiceStats(id uint32) (LBCounter, error) {
	defer f.lock()()
	return f.SvcCounters[id], nil
}

// BackendStats implements the L4 counters.
func (f *FakeLB) BackendStats(id uint32) (LBCounter, error) {
	defer f.lock()()
	return f.BeCounters[id], nil
}

// FlowStats implements the L4 counters.
func (f *FakeLB) FlowStats() (FlowStats, error) { return FlowStats{}, nil }

// Flows implements the L4 counters.
func (f *FakeLB) Flows() (int, error) { return 0, nil }
