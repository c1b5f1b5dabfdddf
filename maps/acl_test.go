package maps

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// reference is the brute-force model of the union rule: list → set of prefixes.
type reference map[ListID]map[netip.Prefix]bool

// want returns what every stored prefix's mask must be.
func (r reference) want() map[netip.Prefix]uint64 {
	own := map[netip.Prefix]uint64{}
	for id, set := range r {
		for p := range set {
			own[p] |= id.Bit()
		}
	}
	out := map[netip.Prefix]uint64{}
	for p := range own {
		var m uint64
		for q, o := range own {
			if q.Addr().Is4() == p.Addr().Is4() && q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				m |= o
			}
		}
		out[p] = m
	}
	return out
}

func randPrefix(r *rand.Rand, v6 bool) netip.Prefix {
	// A small address space so that prefixes overlap often.
	if v6 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(4)), 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.IntN(4))})
		p, _ := a.Prefix([]int{32, 40, 48, 120, 128}[r.IntN(5)])
		return p
	}
	a := netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(4))})
	p, _ := a.Prefix([]int{8, 16, 24, 30, 32}[r.IntN(5)])
	return p
}

func checkAgainst(t *testing.T, ref reference, v4, v6 *Fake, a *ACL) {
	t.Helper()
	want := ref.want()
	got := map[netip.Prefix]uint64{}
	for _, f := range []*Fake{v4, v6} {
		_ = f.Iterate(func(p netip.Prefix, m uint64) bool { got[p] = m; return true })
	}
	if len(got) != len(want) {
		t.Fatalf("trie holds %d entries, want %d", len(got), len(want))
	}
	for p, m := range want {
		if got[p] != m {
			t.Fatalf("%s: mask %#x, want %#x", p, got[p], m)
		}
	}
	for id, set := range ref {
		if a.Len(id) != len(set) {
			t.Fatalf("list %d: Len %d, want %d", id, a.Len(id), len(set))
		}
		for _, p := range a.Entries(id) {
			if !set[p] {
				t.Fatalf("list %d: Entries has %s, which it should not", id, p)
			}
		}
	}
}

func TestUnionRuleRandomAgainstReference(t *testing.T) {
	fast := 0
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		v4, v6 := NewFake(), NewFake()
		a, dp := newIndexed(t, v4, v6)
		ref := reference{}
		for step := 0; step < 60; step++ {
			id := ListID(r.IntN(4))
			if r.IntN(10) == 0 {
				id = ProtectList
			}
			if ref[id] == nil {
				ref[id] = map[netip.Prefix]bool{}
			}
			var add, remove []netip.Prefix
			for n := r.IntN(12); n > 0; n-- {
				add = append(add, randPrefix(r, r.IntN(2) == 0))
			}
			for n := r.IntN(6); n > 0; n-- {
				remove = append(remove, randPrefix(r, r.IntN(2) == 0))
			}
			switch r.IntN(4) {
			case 0:
				if _, err := a.Replace(id, add); err != nil {
					t.Fatal(err)
				}
				ref[id] = map[netip.Prefix]bool{}
				for _, p := range add {
					ref[id][p] = true
				}
			case 1:
				if _, err := a.Remove(id); err != nil {
					t.Fatal(err)
				}
				ref[id] = map[netip.Prefix]bool{}
			default:
				if _, err := a.Patch(id, add, remove); err != nil {
					t.Fatal(err)
				}
				for _, p := range remove {
					delete(ref[id], p)
				}
				for _, p := range add {
					ref[id][p] = true
				}
			}
			checkAgainst(t, ref, v4, v6, a)
			fast += dp.check(t, ref)
		}
	}
	if fast == 0 {
		t.Fatal("the index answered no lookup: every one went to the tries")
	}
}

func TestReplaceNeverRemovesKeptEntriesAndWritesBeforeDeleting(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	a := NewACL(v4, v6)
	keep := netip.MustParsePrefix("10.1.0.0/16")
	old := []netip.Prefix{keep, netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.1.2.3/32")}
	if _, err := a.Replace(0, old); err != nil {
		t.Fatal(err)
	}
	v4.Record = true
	ch, err := a.Replace(0, []netip.Prefix{keep, netip.MustParsePrefix("10.3.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Added != 1 || ch.Removed != 2 || ch.Entries != 2 {
		t.Fatalf("change = %+v, want added 1, removed 2, entries 2", ch)
	}
	sawDelete := false
	for _, op := range v4.Ops {
		if op.Prefix == keep {
			t.Fatalf("kept prefix %s was written or deleted: %+v", keep, op)
		}
		if op.Delete {
			sawDelete = true
		} else if sawDelete {
			t.Fatalf("update %+v came after a delete", op)
		}
	}
	// 10.1.2.3 lost its own entry but its /16 still denies it.
	if got := v4.Lookup(netip.MustParseAddr("10.1.2.3")); got != ListID(0).Bit() {
		t.Fatalf("10.1.2.3 lookup mask %#x, want list 0", got)
	}
}

func TestOverlapAcrossListsInheritsCoveringBits(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	a := NewACL(v4, v6)
	mustReplace(t, a, 0, "10.0.0.0/8")
	mustReplace(t, a, 1, "10.1.0.0/16")
	mustReplace(t, a, 2, "10.1.2.3/32", "2001:db8::/32")
	if got := v4.Lookup(netip.MustParseAddr("10.1.2.3")); got != 0b111 {
		t.Fatalf("mask %#b, want 0b111", got)
	}
	if _, err := a.Remove(0); err != nil {
		t.Fatal(err)
	}
	if got := v4.Lookup(netip.MustParseAddr("10.1.2.3")); got != 0b110 {
		t.Fatalf("after removing list 0: mask %#b, want 0b110", got)
	}
	mask, matches := a.Match(netip.MustParseAddr("10.1.2.3"))
	if mask != 0b110 || len(matches) != 2 {
		t.Fatalf("Match = %#b %v", mask, matches)
	}
}

func mustReplace(t *testing.T, a *ACL, id ListID, ps ...string) {
	t.Helper()
	var list []netip.Prefix
	for _, s := range ps {
		list = append(list, netip.MustParsePrefix(s))
	}
	if _, err := a.Replace(id, list); err != nil {
		t.Fatal(err)
	}
}

func snapshot(f *Fake) map[netip.Prefix]uint64 {
	out := map[netip.Prefix]uint64{}
	_ = f.Iterate(func(p netip.Prefix, m uint64) bool { out[p] = m; return true })
	return out
}

func TestFailureMidwayRollsBackEverything(t *testing.T) {
	for failAt := int64(1); failAt <= 4; failAt++ {
		v4 := NewFake()
		faulty := &Faulty{PrefixMap: v4}
		a := NewACL(faulty, NewFake())
		mustReplace(t, a, 0, "10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24")
		mustReplace(t, a, 1, "10.1.2.0/24")
		before := snapshot(v4)
		entries := a.Entries(0)
		faulty.FailAt = faulty.calls.Load() + failAt
		_, err := a.Replace(0, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("198.51.100.0/24")})
		if failAt <= 2 && !errors.Is(err, ErrInjected) {
			// Two write calls happen: one update batch, one delete batch.
			t.Fatalf("failAt %d: err = %v, want ErrInjected", failAt, err)
		}
		if err == nil {
			continue
		}
		if got := snapshot(v4); !equalMaps(got, before) {
			t.Fatalf("failAt %d: trie after rollback = %v, want %v", failAt, got, before)
		}
		if got := a.Entries(0); !slices.Equal(got, entries) {
			t.Fatalf("failAt %d: list after rollback = %v, want %v", failAt, got, entries)
		}
	}
}

func equalMaps(a, b map[netip.Prefix]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestReconcileRepairsForeignContent(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	_ = v4.Update([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("1.2.3.4/32")}, []uint64{5, 9})
	a := NewACL(v4, v6)
	// Rebuild the model as a restarted daemon would, then repair the tries.
	mustReplace(t, a, 0, "10.0.0.0/8")
	ch, err := a.Reconcile()
	if err != nil {
		t.Fatal(err)
	}
	if ch.Removed != 1 {
		t.Fatalf("reconcile removed %d, want 1", ch.Removed)
	}
	want := map[netip.Prefix]uint64{netip.MustParsePrefix("10.0.0.0/8"): 1}
	if got := snapshot(v4); !equalMaps(got, want) {
		t.Fatalf("after reconcile %v, want %v", got, want)
	}
}

func TestInvalidPrefixChangesNothing(t *testing.T) {
	v4 := NewFake()
	a := NewACL(v4, NewFake())
	_, err := a.Replace(0, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.0.0.1/8")})
	if !errors.Is(err, ErrInvalidPrefix) {
		t.Fatalf("err = %v, want ErrInvalidPrefix", err)
	}
	if v4.Len() != 0 || a.Len(0) != 0 {
		t.Fatal("an invalid sync wrote entries")
	}
}

func TestCapacityIsCheckedBeforeWriting(t *testing.T) {
	v4 := NewFake()
	a := NewACL(v4, NewFake())
	a.SetCapacity(2, 2)
	_, err := a.Replace(0, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/16")})
	if !errors.Is(err, ErrCapacity) || v4.Len() != 0 {
		t.Fatalf("err = %v, entries %d; want ErrCapacity and none", err, v4.Len())
	}
}

func TestMappedIPv6IsIPv4(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	a := NewACL(v4, v6)
	mustReplace(t, a, 0, "::ffff:10.0.0.0/104")
	if v4.Lookup(netip.MustParseAddr("10.9.9.9")) != 1 || v6.Len() != 0 {
		t.Fatal("an IPv4-mapped prefix did not land in the IPv4 trie")
	}
}

func TestPatchFailureMidwayRollsBackEverything(t *testing.T) {
	for failAt := int64(1); failAt <= 8; failAt++ {
		v4 := NewFake()
		faulty := &Faulty{PrefixMap: v4}
		a := NewACL(faulty, NewFake())
		mustReplace(t, a, 0, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.0.2.0/24")
		mustReplace(t, a, 1, "10.1.2.3/32")
		before, entries, others := snapshot(v4), a.Entries(0), a.Entries(1)
		faulty.FailAt = faulty.calls.Load() + failAt
		add := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/20"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
		remove := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")}
		_, err := a.Patch(0, add, remove)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("failAt %d: err = %v", failAt, err)
		}
		if got := snapshot(v4); !equalMaps(got, before) {
			t.Fatalf("failAt %d: trie after rollback = %v, want %v", failAt, got, before)
		}
		if !slices.Equal(a.Entries(0), entries) || !slices.Equal(a.Entries(1), others) {
			t.Fatalf("failAt %d: lists after rollback = %v %v", failAt, a.Entries(0), a.Entries(1))
		}
		// The model still matches the trie: a reconcile finds nothing to do.
		if ch, err := a.Reconcile(); err != nil || ch.Added+ch.Removed != 0 {
			t.Fatalf("failAt %d: reconcile after rollback = %+v %v", failAt, ch, err)
		}
	}
}
