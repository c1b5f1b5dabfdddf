package maps

import (
	"math/bits"

	"github.com/sluicelb/sluice/bpf"
)

// The IPv4 index: what bpf/include/acl.h reads instead of the trie and the
// host hash, with array lookups only (the verifier inlines them; a hash or
// trie lookup costs 15–50 ns). The tries keep every entry and stay the
// truth; the index answers in their place where it can:
//
//   - a block per /16 holds a slot per /24: the class (list mask) of the
//     longest stored prefix of /24 or shorter that covers it, with slotHosts
//     set when the /24 holds host (/32) entries;
//   - hosts sit in buckets of bucketSlots by a multiplicative hash of the
//     address; a host never moves between slots while it is stored, so a
//     reader never misses one that is there before and after a write;
//   - a /24 that holds a /25../31, or a host that found no free slot in its
//     bucket (or no class), is slotSlow: the datapath asks the tries.
//
// Correctness never depends on the bucket size or the number of classes:
// whatever does not fit is slotSlow. The constants mirror bpf/include/consts.h.
const (
	slotSlow    = 0
	slotHosts   = 0x8000
	numClasses  = 32768
	numBlocks   = 65536
	bucketSlots = 8
	bucketBits  = 18
	numBuckets  = 1 << bucketBits
	fibHashMul  = 0x9e3779b1
	// classNone is the class of mask 0 (no list), never freed.
	classNone = 1
)

// IndexMap is the kernel side of the IPv4 index. Each call replaces whole
// entries; on error some of them may have been written. Implementations:
// the datapath's arrays (NewIndexMap), FakeIndex, FaultyIndex.
type IndexMap interface {
	// WriteClasses sets the list mask of each class.
	WriteClasses(ids []uint32, masks []uint64) error
	// WriteBuckets replaces host buckets.
	WriteBuckets(ids []uint32, buckets []bpf.XDPAclV4Bucket) error
	// ReadBuckets reads host buckets into out (len(ids) long).
	ReadBuckets(ids []uint32, out []bpf.XDPAclV4Bucket) error
	// WriteBlocks replaces the /24 slots of /16s.
	WriteBlocks(ids []uint32, blocks []bpf.XDPAclV4Block) error
}

// bucketOf is acl_bucket() in acl.h: the bucket of a host-order address.
func bucketOf(addr uint32) uint32 { return (addr * fibHashMul) >> (32 - bucketBits) }

// hostWord is a bucket slot: the class high, the address as a packet holds
// it (network order, read as a little-endian word) low.
func hostWord(addr uint32, class uint16) uint64 {
	return uint64(class)<<32 | uint64(bits.ReverseBytes32(addr))
}

// v4Index keeps the IPv4 index in step with the IPv4 table of an ACL. It is
// guarded by the ACL's mutex.
type v4Index struct {
	m IndexMap
	// live says the kernel side follows the model. Until build has run (at
	// the first Reconcile of a daemon that reuses pinned maps), changes are
	// not written and the datapath reads the index the last run left.
	live bool

	classOf map[uint64]uint16 // mask → class
	maskOf  []uint64          // class → mask
	free    []uint16          // unused classes, oldest freed first
	uses    map[uint64]int    // mask → how many entries have it as eff

	// unplaced holds the hosts in no bucket (their /24 is slotSlow). The
	// buckets themselves are read back from the kernel when a change
	// needs them (a copy would cost 16 MiB of resident memory), unless
	// none holds a host.
	unplaced map[uint32]bool
	placed   int
}

func newV4Index(m IndexMap) *v4Index { return &v4Index{m: m} }

// reset forgets every class and placement.
func (ix *v4Index) reset() {
	ix.classOf = map[uint64]uint16{0: classNone}
	ix.maskOf = make([]uint64, numClasses)
	ix.free = make([]uint16, 0, numClasses-classNone-1)
	for id := classNone + 1; id < numClasses; id++ {
		ix.free = append(ix.free, uint16(id))
	}
	ix.uses = map[uint64]int{}
	ix.unplaced = map[uint32]bool{}
	ix.placed = 0
}

// class returns the class of mask, taking a free one (added to fresh) if it
// has none; false when every class is taken.
func (ix *v4Index) class(mask uint64, fresh *[]uint16) (uint16, bool) {
	if id, ok := ix.classOf[mask]; ok {
		return id, true
	}
	if len(ix.free) == 0 {
		return 0, false
	}
	// Oldest freed first: a class is named again only long after the last
	// slot naming it was rewritten, so a packet that read the slot just
	// before cannot meet the class's next mask.
	id := ix.free[0]
	ix.free = ix.free[1:]
	ix.classOf[mask], ix.maskOf[id] = id, mask
	*fresh = append(*fresh, id)
	return id, true
}

// buckets are the host buckets one change works on.
type buckets struct {
	all  []bpf.XDPAclV4Bucket // every bucket (large changes, build)
	some map[uint32]*bpf.XDPAclV4Bucket
}

// get returns bucket b, which must have been loaded.
func (bs *buckets) get(b uint32) *bpf.XDPAclV4Bucket {
	if bs.all != nil {
		return &bs.all[b]
	}
	return bs.some[b]
}

// loadBuckets reads the buckets in need from the kernel: all of them in one
// sweep when they are many.
func (ix *v4Index) loadBuckets(need *bucketSet) (*buckets, error) {
	var ids []uint32
	need.each(func(b uint32) { ids = append(ids, b) })
	if len(ids) > numBuckets/16 {
		all := make([]bpf.XDPAclV4Bucket, numBuckets)
		if ix.placed == 0 {
			return &buckets{all: all}, nil
		}
		ids = make([]uint32, numBuckets)
		for b := range ids {
			ids[b] = uint32(b)
		}
		if err := ix.m.ReadBuckets(ids, all); err != nil {
			return nil, err
		}
		return &buckets{all: all}, nil
	}
	vals := make([]bpf.XDPAclV4Bucket, len(ids))
	if ix.placed > 0 {
		if err := ix.m.ReadBuckets(ids, vals); err != nil {
			return nil, err
		}
	}
	bs := &buckets{some: make(map[uint32]*bpf.XDPAclV4Bucket, len(ids))}
	for i, b := range ids {
		bs.some[b] = &vals[i]
	}
	return bs, nil
}

// find returns the bucket and slot of a placed host.
func (bs *buckets) find(addr uint32) (uint32, int, bool) {
	b := bucketOf(addr)
	low := uint64(bits.ReverseBytes32(addr))
	for i, w := range bs.get(b).Host {
		if w>>32 != 0 && w&0xffffffff == low {
			return b, i, true
		}
	}
	return b, 0, false
}

// place puts a host in a free slot of its bucket; false when it is full.
func (bs *buckets) place(addr uint32, class uint16) (uint32, bool) {
	b := bucketOf(addr)
	bucket := bs.get(b)
	for i, w := range bucket.Host {
		if w>>32 == 0 {
			bucket.Host[i] = hostWord(addr, class)
			return b, true
		}
	}
	return b, false
}

// bitset is a set of block or bucket numbers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, n/64) }

func (s bitset) add(k uint32)      { s[k>>6] |= 1 << (k & 63) }
func (s bitset) has(k uint32) bool { return s[k>>6]>>(k&63)&1 != 0 }

func (s bitset) each(fn func(k uint32)) {
	for w, word := range s {
		for word != 0 {
			fn(uint32(w<<6 | bits.TrailingZeros64(word)))
			word &= word - 1
		}
	}
}

// set16 is a set of /16s (blocks), bucketSet one of host buckets.
type (
	set16     struct{ bitset }
	bucketSet struct{ bitset }
)

func newSet16() set16         { return set16{newBitset(numBlocks)} }
func newBucketSet() bucketSet { return bucketSet{newBitset(numBuckets)} }

// addPrefix adds the /16s that p overlaps.
func (s set16) addPrefix(p pfx) {
	first := uint32(p.hi >> 48)
	n := uint32(1)
	if p.bits < 16 {
		n = 1 << (16 - p.bits)
	}
	for k := first; k < first+n; k++ {
		s.add(k)
	}
}

// update writes what plan pl changed, t.es being the new entries. The order
// keeps every address at its old answer or its new one, never at a third:
// new classes, then buckets gaining or changing hosts, then the blocks, then
// buckets losing hosts (a slot that stops naming the bucket first); hosts
// that found no room take the freed slots (bucket, then block), and classes
// no entry has any more are freed. On error the index is left part-written:
// the caller restores the model and calls build.
func (ix *v4Index) update(t *table, pl plan) error {
	if ix == nil || !ix.live {
		return nil
	}
	var fresh []uint16
	blocks := newSet16()
	need := newBucketSet()
	for _, ws := range [][]write{pl.updates, pl.deletes} {
		for _, w := range ws {
			blocks.addPrefix(w.p)
			if w.p.bits == 32 {
				need.add(bucketOf(uint32(w.p.hi >> 32)))
			}
		}
	}
	bs, err := ix.loadBuckets(&need)
	if err != nil {
		return err
	}
	for _, w := range pl.updates {
		ix.uses[w.mask]++
	}
	var unused []uint64
	unuse := func(mask uint64) {
		if ix.uses[mask]--; ix.uses[mask] == 0 {
			delete(ix.uses, mask)
			unused = append(unused, mask)
		}
	}
	cache := classCache{ix: ix, fresh: &fresh}
	var added, gone []host
	for _, w := range pl.updates {
		if w.existed {
			unuse(w.oldMask)
		}
		if w.p.bits == 32 {
			h := host{addr: uint32(w.p.hi >> 32)}
			if id, ok := cache.class(w.mask); ok {
				h.class = id
			}
			added = append(added, h)
		}
	}
	for _, w := range pl.deletes {
		unuse(w.oldMask)
		if w.p.bits == 32 {
			gone = append(gone, host{addr: uint32(w.p.hi >> 32)})
		}
	}
	gained, lost := newBucketSet(), newBucketSet()
	type removal struct {
		b uint32
		i int
	}
	var removals []removal
	for _, h := range byBucket(added) {
		b, i, placed := bs.find(h.addr)
		switch {
		case placed && h.class != 0:
			if word := hostWord(h.addr, h.class); bs.get(b).Host[i] != word {
				bs.get(b).Host[i] = word
				gained.add(b)
			}
		case placed:
			// No class: the slot goes once the block stops sending the
			// /24 here.
			removals = append(removals, removal{b, i})
			ix.unplaced[h.addr] = true
		case h.class != 0:
			if b, done := bs.place(h.addr, h.class); done {
				ix.placed++
				gained.add(b)
				if len(ix.unplaced) > 0 {
					delete(ix.unplaced, h.addr)
				}
			} else {
				ix.unplaced[h.addr] = true
			}
		default:
			ix.unplaced[h.addr] = true
		}
	}
	for _, h := range byBucket(gone) {
		if len(ix.unplaced) > 0 {
			delete(ix.unplaced, h.addr)
		}
		if b, i, placed := bs.find(h.addr); placed {
			removals = append(removals, removal{b, i})
		}
	}
	if err := ix.write(t, blocks, bs, gained, &fresh); err != nil {
		return err
	}
	for _, r := range removals {
		bs.get(r.b).Host[r.i] = 0
		lost.add(r.b)
	}
	ix.placed -= len(removals)
	if err := ix.writeBuckets(bs, lost); err != nil {
		return err
	}
	// Hosts that found their bucket full take the slots just freed.
	if len(removals) > 0 && len(ix.unplaced) > 0 {
		blocks, gained = newSet16(), newBucketSet()
		for addr := range ix.unplaced {
			if !lost.has(bucketOf(addr)) {
				continue
			}
			i, ok := t.find(pfx{hi: uint64(addr) << 32, bits: 32})
			if !ok {
				continue
			}
			if id, ok := cache.class(t.es[i].eff); ok {
				if b, done := bs.place(addr, id); done {
					ix.placed++
					gained.add(b)
					delete(ix.unplaced, addr)
					blocks.add(addr >> 16)
				}
			}
		}
		if err := ix.write(t, blocks, bs, gained, &fresh); err != nil {
			return err
		}
	}
	for _, mask := range unused {
		if id, ok := ix.classOf[mask]; ok && ix.uses[mask] == 0 && id != classNone {
			delete(ix.classOf, mask)
			ix.free = append(ix.free, id)
		}
	}
	return nil
}

// host is a host entry on its way to a bucket; class 0: it has none.
type host struct {
	addr  uint32
	class uint16
}

// byBucket returns hs in bucket order (a counting sort), so that a large
// change walks the buckets in memory order rather than at random.
func byBucket(hs []host) []host {
	if len(hs) < 1024 {
		return hs
	}
	start := make([]int32, numBuckets+1)
	for _, h := range hs {
		start[bucketOf(h.addr)+1]++
	}
	for b := 1; b <= numBuckets; b++ {
		start[b] += start[b-1]
	}
	out := make([]host, len(hs))
	for _, h := range hs {
		b := bucketOf(h.addr)
		out[start[b]] = h
		start[b]++
	}
	return out
}

// classCache remembers the last class looked up: neighbouring entries
// mostly share a mask.
type classCache struct {
	ix    *v4Index
	fresh *[]uint16
	mask  uint64
	id    uint16
	ok    bool
	valid bool
}

func (c *classCache) class(mask uint64) (uint16, bool) {
	if !c.valid || mask != c.mask {
		c.id, c.ok = c.ix.class(mask, c.fresh)
		c.mask, c.valid = mask, true
	}
	return c.id, c.ok
}

// write writes the gained buckets (after the classes they name), then the
// blocks, a chunk at a time, each chunk after the classes it names.
func (ix *v4Index) write(t *table, blocks set16, bs *buckets, gained bucketSet, fresh *[]uint16) error {
	if err := ix.writeClasses(*fresh); err != nil {
		return err
	}
	*fresh = (*fresh)[:0]
	if err := ix.writeBuckets(bs, gained); err != nil {
		return err
	}
	ids := make([]uint32, 0, blockChunk)
	out := make([]bpf.XDPAclV4Block, 0, blockChunk)
	flush := func() error {
		if err := ix.writeClasses(*fresh); err != nil {
			return err
		}
		*fresh = (*fresh)[:0]
		err := ix.m.WriteBlocks(ids, out)
		ids, out = ids[:0], out[:0]
		return err
	}
	var err error
	blocks.each(func(k uint32) {
		if err != nil {
			return
		}
		ids = append(ids, k)
		out = append(out, ix.block(t.parentEff(pfx{hi: uint64(k) << 48, bits: 16}), t.run16(k), fresh))
		if len(ids) == blockChunk {
			err = flush()
		}
	})
	if err != nil {
		return err
	}
	return flush()
}

// block computes the slots of a /16 from the entries inside it (run, in
// order) and parent, the eff of the longest entry that contains the /16.
func (ix *v4Index) block(parent uint64, run []entry, fresh *[]uint16) bpf.XDPAclV4Block {
	var b bpf.XDPAclV4Block
	if len(run) == 0 {
		// Most /16s: one class throughout.
		if id, ok := ix.class(parent, fresh); ok {
			for j := range b.Slot {
				b.Slot[j] = id
			}
		}
		return b
	}
	var def [256]uint64
	var slow, hosts [256]bool
	for j := range def {
		def[j] = parent
	}
	// Containers sort before what they contain, so the last entry to paint
	// a /24 is the longest that covers it.
	for _, e := range run {
		addr := uint32(e.p.hi >> 32)
		j := (addr >> 8) & 0xff
		switch {
		case e.p.bits <= 24:
			for n := j; n < j+1<<(24-e.p.bits); n++ {
				def[n] = e.eff
			}
		case e.p.bits < 32:
			slow[j] = true
		default:
			hosts[j] = true
			if ix.unplaced[addr] {
				slow[j] = true
			}
		}
	}
	var id uint16
	ok := false
	for j := range b.Slot {
		if j == 0 || def[j] != def[j-1] {
			id, ok = ix.class(def[j], fresh)
		}
		switch {
		case slow[j] || !ok:
			b.Slot[j] = slotSlow
		case hosts[j]:
			b.Slot[j] = id | slotHosts
		default:
			b.Slot[j] = id
		}
	}
	return b
}

// run16 returns the entries inside /16 k (of length 16 or more).
func (t *table) run16(k uint32) []entry {
	lo, _ := t.find(pfx{hi: uint64(k) << 48, bits: 16})
	hi := lo
	for hi < len(t.es) && t.es[hi].p.hi>>48 == uint64(k) {
		hi++
	}
	return t.es[lo:hi]
}

// IndexState says what the maps of the IPv4 index hold when an ACL takes
// them over.
type IndexState int

const (
	// IndexEmpty: new maps, all zero. The index is built at once.
	IndexEmpty IndexState = iota
	// IndexPinned: what an earlier run wrote, consistent in itself. The
	// datapath keeps reading it (the state before the restart) until the
	// first Reconcile rebuilds it from the restored model.
	IndexPinned
	// IndexStale: anything else, such as one map new and another pinned.
	// Every slot is made slotSlow at once; Reconcile rebuilds.
	IndexStale
)

// blockChunk is how many blocks build computes and writes at a time (2 MiB).
const blockChunk = 4096

// park makes every slot slotSlow: the datapath asks the tries.
func (ix *v4Index) park() error {
	ix.live = false
	ids := make([]uint32, blockChunk)
	zero := make([]bpf.XDPAclV4Block, blockChunk)
	for k := 0; k < numBlocks; k += blockChunk {
		for i := range ids {
			ids[i] = uint32(k + i)
		}
		if err := ix.m.WriteBlocks(ids, zero); err != nil {
			return err
		}
	}
	return nil
}

// build makes the index from the model. Unless the kernel side is known to
// be empty, every slot becomes slotSlow first, so that the datapath asks
// the tries (which hold the model) while classes and buckets are rewritten.
func (ix *v4Index) build(t *table, empty bool) error {
	if ix == nil {
		return nil
	}
	if !empty {
		if err := ix.park(); err != nil {
			return err
		}
	}
	ix.reset()
	var fresh []uint16
	bs := &buckets{all: make([]bpf.XDPAclV4Bucket, numBuckets)}
	cache := classCache{ix: ix, fresh: &fresh}
	for _, e := range t.es {
		ix.uses[e.eff]++
		if e.p.bits != 32 {
			continue
		}
		addr := uint32(e.p.hi >> 32)
		id, ok := cache.class(e.eff)
		if !ok {
			ix.unplaced[addr] = true
		} else if _, done := bs.place(addr, id); done {
			ix.placed++
		} else {
			ix.unplaced[addr] = true
		}
	}
	// Every bucket, unless all are known to be empty, as the ones with
	// hosts are: stale hosts must not meet a /24 that now holds hosts.
	write := newBucketSet()
	for b := range bs.all {
		if !empty || bs.all[b] != (bpf.XDPAclV4Bucket{}) {
			write.add(uint32(b))
		}
	}
	if err := ix.writeClasses(fresh); err != nil {
		return err
	}
	if err := ix.writeBuckets(bs, write); err != nil {
		return err
	}
	// Sweep the /16s in order with the stack of entries shorter than /16
	// that contain the current one; classes the blocks need are written
	// before each chunk of blocks.
	fresh = fresh[:0]
	ids := make([]uint32, 0, blockChunk)
	out := make([]bpf.XDPAclV4Block, 0, blockChunk)
	var stack []entry
	i := 0
	for k := range uint32(numBlocks) {
		start := uint64(k) << 48
		for i < len(t.es) && t.es[i].p.hi == start && t.es[i].p.bits < 16 {
			stack = append(stack, t.es[i])
			i++
		}
		for len(stack) > 0 && !stack[len(stack)-1].p.contains(pfx{hi: start, bits: 16}) {
			stack = stack[:len(stack)-1]
		}
		j := i
		for j < len(t.es) && t.es[j].p.hi>>48 == uint64(k) {
			j++
		}
		var parent uint64
		if len(stack) > 0 {
			parent = stack[len(stack)-1].eff
		}
		ids = append(ids, k)
		out = append(out, ix.block(parent, t.es[i:j], &fresh))
		i = j
		if len(ids) == blockChunk {
			if err := ix.writeClasses(fresh); err != nil {
				return err
			}
			if err := ix.m.WriteBlocks(ids, out); err != nil {
				return err
			}
			fresh, ids, out = fresh[:0], ids[:0], out[:0]
		}
	}
	ix.live = true
	return nil
}

func (ix *v4Index) writeClasses(ids []uint16) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]uint32, len(ids))
	masks := make([]uint64, len(ids))
	for i, id := range ids {
		keys[i], masks[i] = uint32(id), ix.maskOf[id]
	}
	return writeChunked(ix.m.WriteClasses, keys, masks)
}

func (ix *v4Index) writeBuckets(bs *buckets, set bucketSet) error {
	var ids []uint32
	var vals []bpf.XDPAclV4Bucket
	var err error
	set.each(func(b uint32) {
		if err != nil {
			return
		}
		ids = append(ids, b)
		vals = append(vals, *bs.get(b))
		if len(ids) == batchSize {
			err = ix.m.WriteBuckets(ids, vals)
			ids, vals = ids[:0], vals[:0]
		}
	})
	if err != nil || len(ids) == 0 {
		return err
	}
	return ix.m.WriteBuckets(ids, vals)
}

// writeChunked calls write with at most batchSize entries at a time.
func writeChunked[V any](write func([]uint32, []V) error, ids []uint32, vals []V) error {
	for off := 0; off < len(ids); off += batchSize {
		end := min(off+batchSize, len(ids))
		if err := write(ids[off:end], vals[off:end]); err != nil {
			return err
		}
	}
	return nil
}
