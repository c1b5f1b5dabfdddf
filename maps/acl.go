package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// ErrCapacity is returned when a change would hold more entries than a trie can.
var ErrCapacity = errors.New("acl trie capacity exceeded")

// batchSize bounds one Update or Delete call so a failure is found early and
// no single syscall holds the trie lock for long.
const batchSize = 16384

// entry is one stored prefix: own holds the lists that hold exactly this
// prefix, eff the union over every stored prefix that covers it (what the
// datapath must see, because an LPM lookup returns only the longest match).
type entry struct {
	p   pfx
	own uint64
	eff uint64
}

type table struct {
	v4       bool
	m        PrefixMap
	capacity int
	es       []entry // sorted by (address, length)
}

// ACL keeps the IPv4 and IPv6 tries under the union rule of DESIGN.md. It is
// the only writer of the tries; it is safe for concurrent use (one writer at a
// time), and every change is applied as a difference so that an entry present
// before and after is never absent.
type ACL struct {
	mu     sync.Mutex
	tables [2]*table
	counts [MaxLists + 1]int
	index  *v4Index // nil: the datapath reads only the tries
}

// NewACL returns an ACL over the two tries, which it treats as empty until
// Reconcile has read them.
func NewACL(v4, v6 PrefixMap) *ACL {
	return &ACL{tables: [2]*table{
		{v4: true, m: v4, capacity: 1 << 22},
		{v4: false, m: v6, capacity: 1 << 22},
	}}
}

// newIndexedACL is NewACL with the IPv4 index (aclindex.go) kept beside the
// tries, over maps in the given state. The error is the kernel's.
func newIndexedACL(v4, v6 PrefixMap, ix IndexMap, state IndexState) (*ACL, error) {
	a := NewACL(v4, v6)
	a.index = newV4Index(ix)
	var err error
	switch state {
	case IndexEmpty:
		err = a.index.build(a.tables[0], true)
	case IndexStale:
		err = a.index.park()
	}
	if err != nil {
		return nil, fmt.Errorf("prepare acl index: %w", err)
	}
	return a, nil
}

// SetCapacity sets how many entries each trie may hold; a change beyond it
// fails with ErrCapacity before anything is written.
func (a *ACL) SetCapacity(v4, v6 int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tables[0].capacity, a.tables[1].capacity = v4, v6
}

// Change reports what a write did to one list.
type Change struct {
	Added   int `json:"added"`
	Removed int `json:"removed"`
	Entries int `json:"entries"`
}

// Replace makes list id hold exactly prefixes (the map-sync). Only the
// difference is written; on a trie error the tries and the model are rolled
// back and the error is returned. Invalid prefixes fail with ErrInvalidPrefix
// before anything is written.
func (a *ACL) Replace(id ListID, prefixes []netip.Prefix) (Change, error) {
	add, err := splitFamilies(prefixes)
	if err != nil {
		return Change{}, err
	}
	return a.apply(id, add, [2][]pfx{}, true)
}

// smallPatch is the largest patch applied in place; larger ones rebuild the
// tables, which costs time in proportion to the whole table.
const smallPatch = 256

// Patch adds and removes prefixes of list id; removing an absent prefix is not
// an error, and a prefix in both add and remove ends up added. A small patch
// touches only the patched prefixes and those inside them.
func (a *ACL) Patch(id ListID, add, remove []netip.Prefix) (Change, error) {
	ad, err := splitFamilies(add)
	if err != nil {
		return Change{}, err
	}
	rm, err := splitFamilies(remove)
	if err != nil {
		return Change{}, err
	}
	if len(ad[0])+len(ad[1])+len(rm[0])+len(rm[1]) <= smallPatch {
		return a.patchInPlace(id, ad, rm)
	}
	return a.apply(id, ad, rm, false)
}

// Remove empties list id.
func (a *ACL) Remove(id ListID) (Change, error) {
	return a.apply(id, [2][]pfx{}, [2][]pfx{}, true)
}

// Len returns how many prefixes list id holds.
func (a *ACL) Len(id ListID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.counts[id]
}

// Entries returns the prefixes of list id, IPv4 first, each in address order.
func (a *ACL) Entries(id ListID) []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]netip.Prefix, 0, a.counts[id])
	for _, t := range a.tables {
		for _, e := range t.es {
			if e.own&id.Bit() != 0 {
				out = append(out, e.p.prefix(t.v4))
			}
		}
	}
	return out
}

// Has reports whether list id holds exactly prefix p.
func (a *ACL) Has(id ListID, p netip.Prefix) bool {
	p, err := CanonicalPrefix(p)
	if err != nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tables[familyIndex(p.Addr())]
	i, ok := t.find(toPfx(p))
	return ok && t.es[i].own&id.Bit() != 0
}

// Match is one stored prefix containing a looked-up address, with the lists
// that hold exactly that prefix.
type Match struct {
	Prefix netip.Prefix
	Lists  uint64
}

// Match returns the mask the datapath sees for addr and every stored prefix
// that contains it, shortest first.
func (a *ACL) Match(addr netip.Addr) (uint64, []Match) {
	addr = addr.Unmap()
	width := 128
	if addr.Is4() {
		width = 32
	}
	full := toPfx(netip.PrefixFrom(addr, width))
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tables[familyIndex(addr)]
	var mask uint64
	var out []Match
	for n := 0; n <= width; n++ {
		if i, ok := t.find(full.masked(uint8(n))); ok {
			mask = t.es[i].eff
			out = append(out, Match{Prefix: t.es[i].p.prefix(t.v4), Lists: t.es[i].own})
		}
	}
	return mask, out
}

// Reconcile reads both tries and makes them equal to the model: missing and
// wrong entries are written first, entries the model does not hold are
// deleted after; then it rebuilds the IPv4 index from the model. It returns
// how many trie entries it wrote (Added) and deleted (Removed).
func (a *ACL) Reconcile() (Change, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ch Change
	var plans [2]plan
	for i, t := range a.tables {
		seen := make(map[pfx]uint64)
		err := t.m.Iterate(func(p netip.Prefix, mask uint64) bool {
			seen[toPfx(p)] = mask
			return true
		})
		if err != nil {
			return ch, fmt.Errorf("read acl trie: %w", err)
		}
		for _, e := range t.es {
			if m, ok := seen[e.p]; !ok || m != e.eff {
				plans[i].updates = append(plans[i].updates, write{p: e.p, mask: e.eff, oldMask: m, existed: ok})
			}
			delete(seen, e.p)
		}
		for p, m := range seen {
			plans[i].deletes = append(plans[i].deletes, write{p: p, oldMask: m, existed: true})
		}
		ch.Added += len(plans[i].updates)
		ch.Removed += len(plans[i].deletes)
	}
	if err := a.write(plans); err != nil {
		return ch, err
	}
	if err := a.index.build(a.tables[0], false); err != nil {
		return ch, fmt.Errorf("build acl index: %w", err)
	}
	return ch, nil
}

// write is one trie operation and what it replaces, for rollback.
type write struct {
	p       pfx
	mask    uint64
	oldMask uint64
	existed bool
}

type plan struct {
	updates []write
	deletes []write
}

func (a *ACL) apply(id ListID, add, remove [2][]pfx, replace bool) (Change, error) {
	if id > ProtectList {
		return Change{}, fmt.Errorf("list id %d out of range", id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var ch Change
	var plans [2]plan
	var next [2][]entry
	for i, t := range a.tables {
		es, pl, added, removed := t.rebuild(id.Bit(), add[i], remove[i], replace)
		if len(es) > t.capacity {
			return Change{}, fmt.Errorf("%w: %d entries, capacity %d", ErrCapacity, len(es), t.capacity)
		}
		next[i], plans[i] = es, pl
		ch.Added += added
		ch.Removed += removed
	}
	if err := a.write(plans); err != nil {
		return Change{}, err
	}
	old := [2][]entry{a.tables[0].es, a.tables[1].es}
	for i, t := range a.tables {
		t.es = next[i]
	}
	if err := a.index.update(a.tables[0], plans[0]); err != nil {
		for i, t := range a.tables {
			t.es = old[i]
		}
		return Change{}, a.rollBack(plans, err)
	}
	a.counts[id] += ch.Added - ch.Removed
	ch.Entries = a.counts[id]
	return ch, nil
}

// rebuild merges the sorted, deduplicated add and remove sets for one list bit
// into the table and returns the new entries, the writes that turn the old
// trie into the new one, and how many prefixes the list gained and lost.
func (t *table) rebuild(bit uint64, add, remove []pfx, replace bool) ([]entry, plan, int, int) {
	out := make([]entry, 0, mergedLen(t.es, add))
	added, removed := 0, 0
	i, j, k := 0, 0, 0
	for i < len(t.es) || j < len(add) {
		var e entry
		inAdd := false
		switch {
		case j >= len(add) || (i < len(t.es) && t.es[i].p.less(add[j])):
			e = t.es[i]
			i++
		case i >= len(t.es) || add[j].less(t.es[i].p):
			e = entry{p: add[j]}
			j++
			inAdd = true
		default:
			e = t.es[i]
			i, j = i+1, j+1
			inAdd = true
		}
		had := e.own&bit != 0
		drop := replace
		if !replace {
			for k < len(remove) && remove[k].less(e.p) {
				k++
			}
			drop = k < len(remove) && remove[k] == e.p
		}
		switch {
		case inAdd:
			e.own |= bit
		case drop:
			e.own &^= bit
		}
		has := e.own&bit != 0
		if has && !had {
			added++
		}
		if had && !has {
			removed++
		}
		if e.own != 0 {
			out = append(out, e)
		}
	}
	computeEffective(out)
	return out, diff(t.es, out), added, removed
}

// mergedLen is the length of the sorted union of es and add.
func mergedLen(es []entry, add []pfx) int {
	n, i, j := 0, 0, 0
	for i < len(es) || j < len(add) {
		switch {
		case j >= len(add) || (i < len(es) && es[i].p.less(add[j])):
			i++
		case i >= len(es) || add[j].less(es[i].p):
			j++
		default:
			i, j = i+1, j+1
		}
		n++
	}
	return n
}

// computeEffective sets eff on sorted entries in one sweep: ancestors come
// before their descendants, so a stack of the open ancestors suffices.
func computeEffective(es []entry) {
	stack := make([]int, 0, 129)
	for i := range es {
		for len(stack) > 0 && !es[stack[len(stack)-1]].p.contains(es[i].p) {
			stack = stack[:len(stack)-1]
		}
		es[i].eff = es[i].own
		if len(stack) > 0 {
			es[i].eff |= es[stack[len(stack)-1]].eff
		}
		stack = append(stack, i)
	}
}

// diff returns the writes turning old into new (both sorted). A first pass
// counts them so that the plan is allocated once, not grown.
func diff(old, new []entry) plan {
	nu, nd := 0, 0
	walkDiff(old, new, func(o, n *entry) {
		if n == nil {
			nd++
		} else {
			nu++
		}
	})
	pl := plan{updates: make([]write, 0, nu), deletes: make([]write, 0, nd)}
	walkDiff(old, new, func(o, n *entry) {
		switch {
		case n == nil:
			pl.deletes = append(pl.deletes, write{p: o.p, oldMask: o.eff, existed: true})
		case o == nil:
			pl.updates = append(pl.updates, write{p: n.p, mask: n.eff})
		default:
			pl.updates = append(pl.updates, write{p: n.p, mask: n.eff, oldMask: o.eff, existed: true})
		}
	})
	return pl
}

// walkDiff calls fn for every entry that differs between old and new: o nil
// for an entry only in new, n nil for one only in old.
func walkDiff(old, new []entry, fn func(o, n *entry)) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j >= len(new) || (i < len(old) && old[i].p.less(new[j].p)):
			fn(&old[i], nil)
			i++
		case i >= len(old) || new[j].p.less(old[i].p):
			fn(nil, &new[j])
			j++
		default:
			if old[i].eff != new[j].eff {
				fn(&old[i], &new[j])
			}
			i, j = i+1, j+1
		}
	}
}

// step is one batch of writes to one trie: ws in the order of order.
type step struct {
	t      *table
	ws     []write
	order  []int32
	delete bool
}

// steps orders the plans: all updates (both families) before any delete, so
// no packet that old and new state both drop is passed in between; updates
// longest prefix first and deletes shortest first, so that every address
// keeps its old longest match until its new one is written, and an address
// whose longest match goes keeps it until the ones around it are gone.
func (a *ACL) steps(plans [2]plan) []step {
	return []step{
		{a.tables[0], plans[0].updates, byLength(plans[0].updates, true), false},
		{a.tables[1], plans[1].updates, byLength(plans[1].updates, true), false},
		{a.tables[0], plans[0].deletes, byLength(plans[0].deletes, false), true},
		{a.tables[1], plans[1].deletes, byLength(plans[1].deletes, false), true},
	}
}

// byLength returns the indexes of ws by prefix length (a counting sort: the
// plans of a full sync hold a million writes).
func byLength(ws []write, longestFirst bool) []int32 {
	var start [130]int32
	for _, w := range ws {
		start[int(w.p.bits)+1]++
	}
	for n := 1; n < len(start); n++ {
		start[n] += start[n-1]
	}
	order := make([]int32, len(ws))
	for i, w := range ws {
		order[start[w.p.bits]] = int32(i)
		start[w.p.bits]++
	}
	if longestFirst {
		slices.Reverse(order)
	}
	return order
}

func (s step) chunk(from, to int) []write {
	out := make([]write, to-from)
	for i, k := range s.order[from:to] {
		out[i] = s.ws[k]
	}
	return out
}

// write applies the plans in the order of steps. On error every applied
// operation is undone.
func (a *ACL) write(plans [2]plan) error {
	steps := a.steps(plans)
	for si, s := range steps {
		for off := 0; off < len(s.ws); off += batchSize {
			chunk := s.chunk(off, min(off+batchSize, len(s.ws)))
			var err error
			if s.delete {
				err = s.t.m.Delete(prefixesOf(s.t.v4, chunk))
			} else {
				err = s.t.m.Update(prefixesOf(s.t.v4, chunk), masksOf(chunk))
			}
			if err == nil {
				continue
			}
			err = fmt.Errorf("write acl trie: %w", err)
			// Undo the failed chunk too: it may have been applied in part.
			failed := s
			failed.order = s.order[:min(off+batchSize, len(s.ws))]
			if rerr := a.undo(append(slices.Clone(steps[:si]), failed)); rerr != nil {
				return errors.Join(err, fmt.Errorf("roll back acl trie: %w", rerr))
			}
			return err
		}
	}
	return nil
}

// undo undoes applied steps, newest first.
func (a *ACL) undo(steps []step) error {
	for k := len(steps) - 1; k >= 0; k-- {
		s := steps[k]
		if err := s.t.undo(s.chunk(0, len(s.order))); err != nil {
			return err
		}
	}
	return nil
}

// rollBack undoes plans that write applied whole, after a later failure
// (err), and rebuilds the IPv4 index from the model the caller restored.
func (a *ACL) rollBack(plans [2]plan, err error) error {
	err = fmt.Errorf("write acl index: %w", err)
	if rerr := a.undo(a.steps(plans)); rerr != nil {
		return errors.Join(err, fmt.Errorf("roll back acl trie: %w", rerr))
	}
	if rerr := a.index.build(a.tables[0], false); rerr != nil {
		return errors.Join(err, fmt.Errorf("rebuild acl index: %w", rerr))
	}
	return err
}

// undo restores the masks that ws replaced: entries that existed get their
// old mask back, entries that did not are deleted.
func (t *table) undo(ws []write) error {
	var restore, remove []write
	for _, w := range ws {
		if w.existed {
			restore = append(restore, w)
		} else {
			remove = append(remove, w)
		}
	}
	olds := make([]uint64, len(restore))
	for i, w := range restore {
		olds[i] = w.oldMask
	}
	if len(restore) > 0 {
		if err := t.m.Update(prefixesOf(t.v4, restore), olds); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		return t.m.Delete(prefixesOf(t.v4, remove))
	}
	return nil
}

func prefixesOf(v4 bool, ws []write) []netip.Prefix {
	out := make([]netip.Prefix, len(ws))
	for i, w := range ws {
		out[i] = w.p.prefix(v4)
	}
	return out
}

func masksOf(ws []write) []uint64 {
	out := make([]uint64, len(ws))
	for i, w := range ws {
		out[i] = w.mask
	}
	return out
}

// find returns the index of p in the sorted entries.
func (t *table) find(p pfx) (int, bool) {
	i, ok := slices.BinarySearchFunc(t.es, p, func(e entry, p pfx) int {
		switch {
		case e.p == p:
			return 0
		case e.p.less(p):
			return -1
		default:
			return 1
		}
	})
	return i, ok
}

func familyIndex(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 0
	}
	return 1
}

func comparePfx(a, b pfx) int {
	switch {
	case a == b:
		return 0
	case a.less(b):
		return -1
	default:
		return 1
	}
}

// splitFamilies validates and converts prefixes into sorted, deduplicated
// IPv4 and IPv6 sets.
func splitFamilies(prefixes []netip.Prefix) ([2][]pfx, error) {
	var out [2][]pfx
	n4 := 0
	for _, p := range prefixes {
		if p.Addr().Unmap().Is4() {
			n4++
		}
	}
	out[0], out[1] = make([]pfx, 0, n4), make([]pfx, 0, len(prefixes)-n4)
	for _, p := range prefixes {
		c, err := CanonicalPrefix(p)
		if err != nil {
			return out, err
		}
		f := familyIndex(c.Addr())
		out[f] = append(out[f], toPfx(c))
	}
	for f := range out {
		slices.SortFunc(out[f], comparePfx)
		out[f] = slices.Compact(out[f])
	}
	return out, nil
}

// patchInPlace applies one prefix at a time: it computes the writes from the
// model, writes them (updates before deletes), and only then changes the
// model. A failure undoes the failed prefix's writes and every earlier one's
// writes and model changes, newest first.
func (a *ACL) patchInPlace(id ListID, add, remove [2][]pfx) (Change, error) {
	if id > ProtectList {
		return Change{}, fmt.Errorf("list id %d out of range", id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var ch Change
	var undo []func() error
	fail := func(err error) (Change, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			if rerr := undo[i](); rerr != nil {
				return Change{}, errors.Join(err, fmt.Errorf("roll back acl trie: %w", rerr))
			}
		}
		return Change{}, err
	}
	var net4 netPlan
	for f, t := range a.tables {
		// Adds before removes: a state in between then holds the lists
		// of before or after and at most the patched list from the
		// other, so what both drop is dropped in between too.
		ops := make([]pfx, 0, len(remove[f])+len(add[f]))
		ops = append(ops, add[f]...)
		for _, p := range remove[f] {
			if _, in := slices.BinarySearchFunc(add[f], p, comparePfx); !in {
				ops = append(ops, p)
			}
		}
		for k, p := range ops {
			set := k < len(add[f])
			changed, pl, apply, err := t.patchOne(p, id.Bit(), set)
			if err != nil {
				return fail(err)
			}
			if !changed {
				continue
			}
			if err := a.write(planFor(f, pl)); err != nil {
				return fail(err)
			}
			undo = append(undo, apply())
			if f == 0 {
				net4.add(pl)
			}
			if set {
				ch.Added++
			} else {
				ch.Removed++
			}
		}
		if len(t.es) > t.capacity {
			return fail(fmt.Errorf("%w: %d entries, capacity %d", ErrCapacity, len(t.es), t.capacity))
		}
	}
	if err := a.index.update(a.tables[0], net4.plan()); err != nil {
		_, err = fail(fmt.Errorf("write acl index: %w", err))
		if rerr := a.index.build(a.tables[0], false); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rebuild acl index: %w", rerr))
		}
		return Change{}, err
	}
	a.counts[id] += ch.Added - ch.Removed
	ch.Entries = a.counts[id]
	return ch, nil
}

// netPlan folds the plans of a patch, in the order they were written, into
// one write per prefix, from what it was before the first to what it is
// after the last.
type netPlan struct {
	at map[pfx]int
	ws []write
	on []bool // ws[i] ends stored
}

func (n *netPlan) add(pl plan) {
	for _, w := range pl.updates {
		n.put(w, true)
	}
	for _, w := range pl.deletes {
		n.put(w, false)
	}
}

func (n *netPlan) put(w write, stored bool) {
	if i, ok := n.at[w.p]; ok {
		n.ws[i].mask, n.on[i] = w.mask, stored
		return
	}
	if n.at == nil {
		n.at = map[pfx]int{}
	}
	n.at[w.p] = len(n.ws)
	n.ws, n.on = append(n.ws, w), append(n.on, stored)
}

func (n *netPlan) plan() plan {
	var pl plan
	for i, w := range n.ws {
		switch {
		case n.on[i]:
			pl.updates = append(pl.updates, w)
		case w.existed:
			pl.deletes = append(pl.deletes, w)
		}
	}
	return pl
}

func planFor(family int, pl plan) [2]plan {
	var out [2]plan
	out[family] = pl
	return out
}

// patchOne computes what setting or clearing bit on p does: the writes, and a
// function that applies the change to the model and returns its undo (which
// restores the model and the trie). changed is false when the list already
// is as asked.
func (t *table) patchOne(p pfx, bit uint64, set bool) (bool, plan, func() func() error, error) {
	i, found := t.find(p)
	var old entry
	if found {
		old = t.es[i]
	}
	own := old.own &^ bit
	if set {
		own |= bit
	}
	if own == old.own && found == (own != 0) {
		return false, plan{}, nil, nil
	}
	parent := t.parentEff(p)
	self := entry{p: p, own: own, eff: own | parent}

	// The descendants follow p (or its insertion point) contiguously.
	start := i
	if found {
		start = i + 1
	}
	end := start
	for end < len(t.es) && p.contains(t.es[end].p) {
		end++
	}
	newEff := make([]uint64, end-start)
	type open struct {
		p   pfx
		eff uint64
	}
	stack := []open{{p: p, eff: parent}}
	if own != 0 {
		stack[0].eff = self.eff
	}
	for k := start; k < end; k++ {
		e := t.es[k]
		for len(stack) > 1 && !stack[len(stack)-1].p.contains(e.p) {
			stack = stack[:len(stack)-1]
		}
		newEff[k-start] = e.own | stack[len(stack)-1].eff
		stack = append(stack, open{p: e.p, eff: newEff[k-start]})
	}

	var pl plan
	switch {
	case own != 0:
		pl.updates = append(pl.updates, write{p: p, mask: self.eff, oldMask: old.eff, existed: found})
	case found:
		pl.deletes = append(pl.deletes, write{p: p, oldMask: old.eff, existed: true})
	}
	for k := start; k < end; k++ {
		if newEff[k-start] != t.es[k].eff {
			pl.updates = append(pl.updates, write{p: t.es[k].p, mask: newEff[k-start], oldMask: t.es[k].eff, existed: true})
		}
	}

	apply := func() func() error {
		oldEff := make([]uint64, end-start)
		for k := start; k < end; k++ {
			oldEff[k-start] = t.es[k].eff
			t.es[k].eff = newEff[k-start]
		}
		switch {
		case found && own != 0:
			t.es[i] = self
		case found:
			t.es = slices.Delete(t.es, i, i+1)
		default:
			t.es = slices.Insert(t.es, i, self)
		}
		return func() error {
			switch {
			case found && own != 0:
				t.es[i] = old
			case found:
				t.es = slices.Insert(t.es, i, old)
			default:
				t.es = slices.Delete(t.es, i, i+1)
			}
			for k := start; k < end; k++ {
				t.es[k].eff = oldEff[k-start]
			}
			all := append(append([]write{}, pl.updates...), pl.deletes...)
			return t.undo(all)
		}
	}
	return true, pl, apply, nil
}

// parentEff returns the effective mask of the longest stored prefix that
// strictly contains p, or 0.
func (t *table) parentEff(p pfx) uint64 {
	for n := int(p.bits) - 1; n >= 0; n-- {
		if i, ok := t.find(p.masked(uint8(n))); ok {
			return t.es[i].eff
		}
	}
	return 0
}
