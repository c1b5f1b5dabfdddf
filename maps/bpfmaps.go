package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
)

// bpfPrefixMap is a PrefixMap over an ACL trie or an ACL host hash.
type bpfPrefixMap struct {
	m    *ebpf.Map
	v4   bool
	host bool // keys are bare addresses: the map holds only /32 or /128 entries
}

// NewPrefixMap wraps an ACL trie or host hash; the kind and family come from
// its key size. It returns an error for a map that is neither.
func NewPrefixMap(m *ebpf.Map) (PrefixMap, error) {
	switch m.KeySize() {
	case 8:
		return &bpfPrefixMap{m: m, v4: true}, nil
	case 20:
		return &bpfPrefixMap{m: m}, nil
	case 4:
		return &bpfPrefixMap{m: m, v4: true, host: true}, nil
	case 16:
		return &bpfPrefixMap{m: m, host: true}, nil
	}
	return nil, fmt.Errorf("map %s: key size %d is not an acl key", m, m.KeySize())
}

// NewACLFromObjects builds the ACL over the maps of XDP objects this process
// has just loaded (tests and tools; the daemon goes through Datapath.ACL):
// each family's host entries go to its hash, the other prefixes to its trie,
// and the IPv4 index, its maps being new, is built now.
func NewACLFromObjects(o *bpf.XDPObjects) (*ACL, error) {
	return newACLFromObjects(o, IndexEmpty)
}

func newACLFromObjects(o *bpf.XDPObjects, state IndexState) (*ACL, error) {
	var pm [4]PrefixMap
	for i, m := range []*ebpf.Map{o.AclV4, o.AclV4Host, o.AclV6, o.AclV6Host} {
		var err error
		if pm[i], err = NewPrefixMap(m); err != nil {
			return nil, err
		}
	}
	ix, err := NewIndexMap(o.AclV4Index, o.AclV4Hosts, o.AclClasses)
	if err != nil {
		return nil, err
	}
	a, err := newIndexedACL(&HostSplit{Host: pm[1], Net: pm[0]}, &HostSplit{Host: pm[3], Net: pm[2]}, ix, state)
	if err != nil {
		return nil, err
	}
	a.SetCapacity(int(min(o.AclV4.MaxEntries(), o.AclV4Host.MaxEntries())), int(min(o.AclV6.MaxEntries(), o.AclV6Host.MaxEntries())))
	return a, nil
}

// HostSplit is one family's PrefixMap made of two: host prefixes (/32,
// /128) in Host, the others in Net.
type HostSplit struct {
	Host, Net PrefixMap
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

func (h *HostSplit) split(prefixes []netip.Prefix, masks []uint64) (hp, np []netip.Prefix, hm, nm []uint64) {
	for i, p := range prefixes {
		if isHost(p) {
			hp = append(hp, p)
			if masks != nil {
				hm = append(hm, masks[i])
			}
		} else {
			np = append(np, p)
			if masks != nil {
				nm = append(nm, masks[i])
			}
		}
	}
	return hp, np, hm, nm
}

// Update implements PrefixMap.
func (h *HostSplit) Update(prefixes []netip.Prefix, masks []uint64) error {
	hp, np, hm, nm := h.split(prefixes, masks)
	if err := h.Net.Update(np, nm); err != nil {
		return err
	}
	return h.Host.Update(hp, hm)
}

// Delete implements PrefixMap.
func (h *HostSplit) Delete(prefixes []netip.Prefix) error {
	hp, np, _, _ := h.split(prefixes, nil)
	if err := h.Host.Delete(hp); err != nil {
		return err
	}
	return h.Net.Delete(np)
}

// Iterate implements PrefixMap.
func (h *HostSplit) Iterate(fn func(netip.Prefix, uint64) bool) error {
	stopped := false
	err := h.Host.Iterate(func(p netip.Prefix, m uint64) bool {
		stopped = !fn(p, m)
		return !stopped
	})
	if err != nil || stopped {
		return err
	}
	return h.Net.Iterate(fn)
}

func (b *bpfPrefixMap) keys(prefixes []netip.Prefix) any {
	if b.host && b.v4 {
		ks := make([]bpf.XDPAclV4HostKey, len(prefixes))
		for i, p := range prefixes {
			ks[i] = bpf.XDPAclV4HostKey{Addr: p.Addr().As4()}
		}
		return ks
	}
	if b.host {
		ks := make([]bpf.XDPAclV6HostKey, len(prefixes))
		for i, p := range prefixes {
			ks[i] = bpf.XDPAclV6HostKey{Addr: p.Addr().As16()}
		}
		return ks
	}
	if b.v4 {
		ks := make([]bpf.XDPAclV4Key, len(prefixes))
		for i, p := range prefixes {
			ks[i] = bpf.XDPAclV4Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
		}
		return ks
	}
	ks := make([]bpf.XDPAclV6Key, len(prefixes))
	for i, p := range prefixes {
		ks[i] = bpf.XDPAclV6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	}
	return ks
}

func (b *bpfPrefixMap) key(p netip.Prefix) any {
	switch {
	case b.host && b.v4:
		return bpf.XDPAclV4HostKey{Addr: p.Addr().As4()}
	case b.host:
		return bpf.XDPAclV6HostKey{Addr: p.Addr().As16()}
	case b.v4:
		return bpf.XDPAclV4Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}
	}
	return bpf.XDPAclV6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

// parallelHostWrites is the batch size from which a host hash's update is
// split across the CPUs.
const parallelHostWrites = 4096

// Update implements PrefixMap with one batch call, or, for a large batch of
// a host hash, one per CPU side by side (inParts): exact-match keys need no
// order, and the hash locks bucket by bucket, so the kernel's inserts (most
// of a full sync's time) run in parallel. A trie is locked whole: one call.
func (b *bpfPrefixMap) Update(prefixes []netip.Prefix, masks []uint64) error {
	return b.inParts(len(prefixes), func(lo, hi int) error { return b.update(prefixes[lo:hi], masks[lo:hi]) })
}

// inParts runs write over [0, n) whole, or, for a large batch of a host
// hash, in one part per CPU (up to four) side by side.
func (b *bpfPrefixMap) inParts(n int, write func(lo, hi int) error) error {
	parts := min(runtime.GOMAXPROCS(0), 4)
	if !b.host || parts < 2 || n < parallelHostWrites {
		return write(0, n)
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { errs[i] = write(n*i/parts, n*(i+1)/parts) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *bpfPrefixMap) update(prefixes []netip.Prefix, masks []uint64) error {
	if len(prefixes) == 0 {
		return nil
	}
	_, err := b.m.BatchUpdate(b.keys(prefixes), masks, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i, p := range prefixes {
			if err := b.m.Update(b.key(p), masks[i], ebpf.UpdateAny); err != nil {
				return fmt.Errorf("update %s: %w", p, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("batch update %d entries: %w", len(prefixes), err)
	}
	return nil
}

// Delete implements PrefixMap, in parts as Update. A batch delete stops at
// the first absent key, so the rest is deleted one by one from there:
// absence is not an error.
func (b *bpfPrefixMap) Delete(prefixes []netip.Prefix) error {
	return b.inParts(len(prefixes), func(lo, hi int) error { return b.delete(prefixes[lo:hi]) })
}

func (b *bpfPrefixMap) delete(prefixes []netip.Prefix) error {
	for len(prefixes) > 0 {
		n, err := b.m.BatchDelete(b.keys(prefixes), nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) && !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("batch delete %d entries: %w", len(prefixes), err)
		}
		// n entries were deleted; prefixes[n] failed or batching is unsupported.
		if n < len(prefixes) {
			if err := b.m.Delete(b.key(prefixes[n])); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete %s: %w", prefixes[n], err)
			}
		}
		prefixes = prefixes[min(n+1, len(prefixes)):]
	}
	return nil
}

// Iterate implements PrefixMap.
func (b *bpfPrefixMap) Iterate(fn func(netip.Prefix, uint64) bool) error {
	var mask uint64
	switch {
	case b.host && b.v4:
		var k bpf.XDPAclV4HostKey
		it := b.m.Iterate()
		for it.Next(&k, &mask) {
			if !fn(netip.PrefixFrom(netip.AddrFrom4(k.Addr), 32), mask) {
				return nil
			}
		}
		return it.Err()
	case b.host:
		var k bpf.XDPAclV6HostKey
		it := b.m.Iterate()
		for it.Next(&k, &mask) {
			if !fn(netip.PrefixFrom(netip.AddrFrom16(k.Addr), 128), mask) {
				return nil
			}
		}
		return it.Err()
	}
	if b.v4 {
		var k bpf.XDPAclV4Key
		it := b.m.Iterate()
		for it.Next(&k, &mask) {
			if !fn(netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen)), mask) {
				return nil
			}
		}
		return it.Err()
	}
	var k bpf.XDPAclV6Key
	it := b.m.Iterate()
	for it.Next(&k, &mask) {
		if !fn(netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)), mask) {
			return nil
		}
	}
	return it.Err()
}

// bpfIndexMap is the IndexMap over the acl_v4_index, acl_v4_hosts and
// acl_classes arrays.
type bpfIndexMap struct{ blocks, buckets, classes *ebpf.Map }

// NewIndexMap wraps the arrays of the IPv4 index. It returns an error when
// their sizes are not the ones this package computes with.
func NewIndexMap(blocks, buckets, classes *ebpf.Map) (IndexMap, error) {
	for _, c := range []struct {
		m          *ebpf.Map
		n, valSize uint32
	}{{blocks, numBlocks, 512}, {buckets, numBuckets, 8 * bucketSlots}, {classes, numClasses, 8}} {
		if c.m.MaxEntries() != c.n || c.m.ValueSize() != c.valSize {
			return nil, fmt.Errorf("map %s: %d entries of %d bytes, want %d of %d", c.m, c.m.MaxEntries(), c.m.ValueSize(), c.n, c.valSize)
		}
	}
	return &bpfIndexMap{blocks: blocks, buckets: buckets, classes: classes}, nil
}

// WriteClasses implements IndexMap.
func (b *bpfIndexMap) WriteClasses(ids []uint32, masks []uint64) error {
	return putAll(b.classes, ids, masks)
}

// WriteBuckets implements IndexMap.
func (b *bpfIndexMap) WriteBuckets(ids []uint32, buckets []bpf.XDPAclV4Bucket) error {
	return putAll(b.buckets, ids, buckets)
}

// ReadBuckets implements IndexMap: the whole table in batches when ids are
// all its buckets in order (and the kernel has batch lookups), else one
// lookup per bucket.
func (b *bpfIndexMap) ReadBuckets(ids []uint32, out []bpf.XDPAclV4Bucket) error {
	if len(ids) == numBuckets && ids[0] == 0 && ids[len(ids)-1] == numBuckets-1 {
		var cursor ebpf.MapBatchCursor
		keys := make([]uint32, batchSize)
		off := 0
		for off < numBuckets {
			n, err := b.buckets.BatchLookup(&cursor, keys, out[off:min(off+batchSize, numBuckets)], nil)
			off += n
			if errors.Is(err, ebpf.ErrKeyNotExist) || errors.Is(err, ebpf.ErrNotSupported) || n == 0 {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", b.buckets, err)
			}
		}
		if off == numBuckets {
			return nil
		}
		// Short of the whole table: what is missing is read one by one.
		ids, out = ids[off:], out[off:]
	}
	for i, id := range ids {
		if err := b.buckets.Lookup(id, &out[i]); err != nil {
			return fmt.Errorf("read %s[%d]: %w", b.buckets, id, err)
		}
	}
	return nil
}

// WriteBlocks implements IndexMap.
func (b *bpfIndexMap) WriteBlocks(ids []uint32, blocks []bpf.XDPAclV4Block) error {
	return putAll(b.blocks, ids, blocks)
}

// putAll writes array entries with one batch call, or one by one where
// batches are not supported.
func putAll[V any](m *ebpf.Map, ids []uint32, vals []V) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(ids, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i, id := range ids {
			if err := m.Update(id, &vals[i], ebpf.UpdateAny); err != nil {
				return fmt.Errorf("update %s[%d]: %w", m, id, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("batch update %d entries of %s: %w", len(ids), m, err)
	}
	return nil
}

// bpfPolicyMap is the PolicyMap over the acl_config array.
type bpfPolicyMap struct{ m *ebpf.Map }

// NewPolicyMap wraps the acl_config map.
func NewPolicyMap(m *ebpf.Map) PolicyMap { return &bpfPolicyMap{m: m} }

// SetPolicy implements PolicyMap; the array entry is replaced in one write,
// so the datapath sees the old or the new policy, never a mix.
func (b *bpfPolicyMap) SetPolicy(p Policy) error {
	v := bpf.XDPAclPolicy{DenyLists: p.DenyLists, AllowLists: p.AllowLists, Mode: uint32(p.Mode)}
	if err := b.m.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write acl policy: %w", err)
	}
	return nil
}

// Policy implements PolicyMap.
func (b *bpfPolicyMap) Policy() (Policy, error) {
	var v bpf.XDPAclPolicy
	if err := b.m.Lookup(uint32(0), &v); err != nil {
		return Policy{}, fmt.Errorf("read acl policy: %w", err)
	}
	return Policy{Mode: PolicyMode(v.Mode), DenyLists: v.DenyLists, AllowLists: v.AllowLists}, nil
}

// bpfStats reads the per-CPU counter arrays.
type bpfStats struct{ iface, drop, list *ebpf.Map }

// NewStats wraps the stats_iface, stats_drop and stats_list maps.
func NewStats(iface, drop, list *ebpf.Map) Stats {
	return &bpfStats{iface: iface, drop: drop, list: list}
}

// IfindexSlot is the counter slot of an interface (MAX_IFINDEX in consts.h).
func IfindexSlot(ifindex int) uint32 { return uint32(ifindex) & (4096 - 1) }

// Iface implements Stats.
func (b *bpfStats) Iface(ifindex int) ([NumVerdicts]Counter, error) {
	var out [NumVerdicts]Counter
	var per []bpf.XDPIfaceStats
	if err := b.iface.Lookup(IfindexSlot(ifindex), &per); err != nil {
		return out, fmt.Errorf("read interface counters: %w", err)
	}
	for _, s := range per {
		for v := range out {
			out[v].Packets += s.Verdict[v].Packets
			out[v].Bytes += s.Verdict[v].Bytes
		}
	}
	return out, nil
}

// SumCounters adds up slot idx of a per-CPU array of counters over the CPUs.
func SumCounters(m *ebpf.Map, idx uint32) (Counter, error) {
	var per []bpf.XDPCounter
	if err := m.Lookup(idx, &per); err != nil {
		return Counter{}, err
	}
	var c Counter
	for _, p := range per {
		c.Packets += p.Packets
		c.Bytes += p.Bytes
	}
	return c, nil
}

// Drops implements Stats.
func (b *bpfStats) Drops() ([NumDropReasons]Counter, error) {
	var out [NumDropReasons]Counter
	for r := range out {
		c, err := SumCounters(b.drop, uint32(r))
		if err != nil {
			return out, fmt.Errorf("read drop counters: %w", err)
		}
		out[r] = c
	}
	return out, nil
}

// Lists implements Stats.
func (b *bpfStats) Lists() ([MaxLists + 1]Counter, error) {
	var out [MaxLists + 1]Counter
	for i := range out {
		c, err := SumCounters(b.list, uint32(i))
		if err != nil {
			return out, fmt.Errorf("read list counters: %w", err)
		}
		out[i] = c
	}
	return out, nil
}

var (
	_ PrefixMap = (*HostSplit)(nil)
	_ PrefixMap = (*bpfPrefixMap)(nil)
	_ IndexMap  = (*bpfIndexMap)(nil)
	_ PolicyMap = (*bpfPolicyMap)(nil)
	_ Stats     = (*bpfStats)(nil)
)
