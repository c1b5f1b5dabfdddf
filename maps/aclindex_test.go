package maps

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// fakeDatapath answers lookups as bpf/include/acl.h does over fakes: IPv4
// through the index (and the v4 trie where it says so), IPv6 from its trie.
type fakeDatapath struct {
	v4, v6 *Fake
	ix     *FakeIndex
}

func newIndexed(t testing.TB, v4, v6 *Fake) (*ACL, fakeDatapath) {
	t.Helper()
	dp := fakeDatapath{v4: v4, v6: v6, ix: NewFakeIndex()}
	a, err := newIndexedACL(v4, v6, dp.ix, IndexEmpty)
	if err != nil {
		t.Fatal(err)
	}
	return a, dp
}

func (d fakeDatapath) lookup(addr netip.Addr) (uint64, bool) {
	if addr.Is4() {
		return d.ix.Lookup(addr, d.v4.Lookup)
	}
	return d.v6.Lookup(addr), false
}

// maskOf is what the datapath must find for addr: the lists of every
// prefix that contains it.
func (r reference) maskOf(addr netip.Addr) uint64 {
	var m uint64
	for id, set := range r {
		for p := range set {
			if p.Addr().Is4() == addr.Is4() && p.Contains(addr) {
				m |= id.Bit()
			}
		}
	}
	return m
}

func (r reference) clone() reference {
	out := reference{}
	for id, set := range r {
		out[id] = map[netip.Prefix]bool{}
		for p := range set {
			out[id][p] = true
		}
	}
	return out
}

// probes are addresses in and around the space of randPrefix.
var probes = func() []netip.Addr {
	var out []netip.Addr
	for b := range 4 {
		for c := range 4 {
			for _, d := range []byte{0, 1, 2, 3, 5, 255} {
				out = append(out, netip.AddrFrom4([4]byte{10, byte(b), byte(c), d}))
			}
			out = append(out, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(b), 15: byte(c)}))
		}
	}
	return append(out, netip.MustParseAddr("11.0.0.1"), netip.MustParseAddr("9.255.255.255"))
}()

// check compares the datapath's answer for every probe with the reference
// and returns how many the index answered itself.
func (d fakeDatapath) check(t *testing.T, ref reference) int {
	t.Helper()
	fast := 0
	for _, addr := range probes {
		got, f := d.lookup(addr)
		if want := ref.maskOf(addr); got != want {
			t.Fatalf("%s: datapath finds %#x (from the index: %v), want %#x", addr, got, f, want)
		}
		if f {
			fast++
		}
	}
	return fast
}

// Policies under which TestNoAddressDeniedBeforeAndAfterPassesMidChange
// looks at every state: lists 0..3 and the protect list.
var testPolicies = []Policy{
	{Mode: PolicyDeny, DenyLists: 0b0011, AllowLists: 0b0100},
	{Mode: PolicyAllow, DenyLists: 0b0001, AllowLists: 0b0110},
}

// denied is the verdict of acl_stage for a source with mask m.
func denied(p Policy, m uint64) bool {
	switch {
	case m&ProtectList.Bit() != 0:
		return false
	case p.Mode == PolicyAllow:
		return m&p.DenyLists != 0 || m&p.AllowLists == 0
	}
	return m&p.DenyLists != 0 && m&p.AllowLists == 0
}

// op is a random Replace, Remove or Patch of a list.
type op struct {
	kind        int // 0 Replace, 1 Remove, else Patch
	id          ListID
	add, remove []netip.Prefix
}

func randomOp(r *rand.Rand) op {
	o := op{kind: r.IntN(4), id: ListID(r.IntN(4))}
	if r.IntN(10) == 0 {
		o.id = ProtectList
	}
	for n := r.IntN(12); n > 0; n-- {
		o.add = append(o.add, randPrefix(r, r.IntN(3) == 0))
	}
	for n := r.IntN(6); n > 0; n-- {
		o.remove = append(o.remove, randPrefix(r, r.IntN(3) == 0))
	}
	return o
}

func (o op) apply(a *ACL) error {
	var err error
	switch o.kind {
	case 0:
		_, err = a.Replace(o.id, o.add)
	case 1:
		_, err = a.Remove(o.id)
	default:
		_, err = a.Patch(o.id, o.add, o.remove)
	}
	return err
}

// applied returns ref after the op.
func (o op) applied(ref reference) reference {
	out := ref.clone()
	if o.kind < 2 || out[o.id] == nil {
		out[o.id] = map[netip.Prefix]bool{}
	}
	if o.kind == 1 {
		return out
	}
	for _, p := range o.remove {
		delete(out[o.id], p)
	}
	for _, p := range o.add {
		out[o.id][p] = true
	}
	return out
}

// TestNoAddressDeniedBeforeAndAfterPassesMidChange looks at the datapath's
// answer for every probe after every single entry written to the tries and
// the index, as a packet arriving at that moment would meet it: an address
// that the state before and the state after both drop is dropped.
func TestNoAddressDeniedBeforeAndAfterPassesMidChange(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		v4, v6 := NewFake(), NewFake()
		a, dp := newIndexed(t, v4, v6)
		ref := reference{}
		var before, after map[netip.Addr]uint64
		writes := 0
		hook := func() {
			writes++
			for _, addr := range probes {
				got, _ := dp.lookup(addr)
				for _, pol := range testPolicies {
					b, a := before[addr], after[addr]
					if denied(pol, b) && denied(pol, a) && !denied(pol, got) {
						t.Fatalf("seed %d, write %d: %s passes under %+v with mask %#x; before %#x, after %#x",
							seed, writes, addr, pol, got, b, a)
					}
				}
			}
		}
		v4.OnWrite, v6.OnWrite, dp.ix.OnWrite = hook, hook, hook
		for step := 0; step < 30; step++ {
			o := randomOp(r)
			next := o.applied(ref)
			before, after = map[netip.Addr]uint64{}, map[netip.Addr]uint64{}
			for _, addr := range probes {
				before[addr], after[addr] = ref.maskOf(addr), next.maskOf(addr)
			}
			if err := o.apply(a); err != nil {
				t.Fatal(err)
			}
			ref = next
			dp.check(t, ref)
		}
	}
}

// collide returns n IPv4 addresses from start on that share a host bucket.
func collide(start netip.Addr, n int) []netip.Addr {
	first := binary.BigEndian.Uint32(start.AsSlice())
	want := bucketOf(first)
	out := []netip.Addr{start}
	for a := first + 1; len(out) < n; a++ {
		if bucketOf(a) == want {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], a)
			out = append(out, netip.AddrFrom4(b))
		}
	}
	return out
}

func hostPrefixes(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

func TestHostsBeyondAFullBucketAskTheTries(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	a, dp := newIndexed(t, v4, v6)
	hosts := collide(netip.MustParseAddr("10.0.0.1"), bucketSlots+4)
	ref := reference{0: {}}
	for _, p := range hostPrefixes(hosts) {
		ref[0][p] = true
	}
	if _, err := a.Replace(0, hostPrefixes(hosts)); err != nil {
		t.Fatal(err)
	}
	fastHosts := func() int {
		n := 0
		for _, h := range hosts {
			got, fast := dp.lookup(h)
			if got != ref.maskOf(h) {
				t.Fatalf("%s: mask %#x, want %#x", h, got, ref.maskOf(h))
			}
			// A neighbour in the same /24 that no list holds.
			nb := h.Next()
			if got, _ := dp.lookup(nb); got != ref.maskOf(nb) {
				t.Fatalf("%s: mask %#x, want %#x", nb, got, ref.maskOf(nb))
			}
			if fast {
				n++
			}
		}
		return n
	}
	if n := fastHosts(); n != bucketSlots {
		t.Fatalf("%d hosts answered by the index, want the %d a bucket holds", n, bucketSlots)
	}
	// Removing two placed hosts makes room for two of the others.
	removed := []netip.Prefix{netip.PrefixFrom(hosts[0], 32), netip.PrefixFrom(hosts[1], 32)}
	if _, err := a.Patch(0, nil, removed); err != nil {
		t.Fatal(err)
	}
	for _, p := range removed {
		delete(ref[0], p)
	}
	if n := fastHosts(); n != bucketSlots+2 {
		t.Fatalf("%d lookups answered by the index after the removal, want %d (8 hosts, 2 unlisted)", n, bucketSlots+2)
	}
}

func TestClassesRunningOutAskTheTries(t *testing.T) {
	v4, v6 := NewFake(), NewFake()
	a, dp := newIndexed(t, v4, v6)
	// Host i is in the lists of the bits of i: more distinct masks than classes.
	const n = numClasses + 1000
	lists := make([][]netip.Prefix, 16)
	hosts := make([]netip.Addr, n)
	for i := 1; i < n; i++ {
		hosts[i] = netip.AddrFrom4([4]byte{20, byte(i >> 16), byte(i >> 8), byte(i)})
		for l := range lists {
			if i>>l&1 != 0 {
				lists[l] = append(lists[l], netip.PrefixFrom(hosts[i], 32))
			}
		}
	}
	for l, ps := range lists {
		if _, err := a.Replace(ListID(l), ps); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (fast int) {
		for i := 1; i < n; i++ {
			got, f := dp.lookup(hosts[i])
			if got != uint64(i) {
				t.Fatalf("%s: mask %#x, want %#x", hosts[i], got, i)
			}
			if f {
				fast++
			}
		}
		return fast
	}
	if f := count(); f == 0 || f == n-1 {
		t.Fatalf("%d of %d hosts answered by the index; want some, not all", f, n-1)
	}
	// A rebuild after lists shrink to fewer masks gives every host a class.
	for l := 14; l < 16; l++ {
		if _, err := a.Remove(ListID(l)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Reconcile(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if got, f := dp.lookup(hosts[i]); got != uint64(i&0x3fff) || !f {
			t.Fatalf("%s: mask %#x (from the index: %v), want %#x from the index", hosts[i], got, f, i&0x3fff)
		}
	}
}

func TestIndexFailureRollsBackEverything(t *testing.T) {
	for failAt := int64(1); failAt <= 8; failAt++ {
		for _, patch := range []bool{false, true} {
			v4, v6 := NewFake(), NewFake()
			dp := fakeDatapath{v4: v4, v6: v6, ix: NewFakeIndex()}
			faulty := &FaultyIndex{IndexMap: dp.ix}
			a, err := newIndexedACL(v4, v6, faulty, IndexEmpty)
			if err != nil {
				t.Fatal(err)
			}
			mustReplace(t, a, 0, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.2.2.2/32", "10.3.3.0/30")
			mustReplace(t, a, 1, "10.1.2.3/32", "10.2.0.0/16")
			before := map[netip.Addr]uint64{}
			for _, addr := range probes {
				before[addr], _ = dp.lookup(addr)
			}
			trie, entries := snapshot(v4), a.Entries(0)
			faulty.FailAt = faulty.calls.Load() + failAt
			add := []netip.Prefix{netip.MustParsePrefix("10.2.2.2/32"), netip.MustParsePrefix("10.2.3.4/32"), netip.MustParsePrefix("10.3.0.0/16")}
			if patch {
				_, err = a.Patch(0, add, []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("10.0.0.0/8")})
			} else {
				_, err = a.Replace(0, add)
			}
			faulty.FailAt = 0
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrInjected) {
				t.Fatalf("failAt %d: err = %v", failAt, err)
			}
			for _, addr := range probes {
				if got, _ := dp.lookup(addr); got != before[addr] {
					t.Fatalf("failAt %d patch %v: %s finds %#x after the rollback, want %#x", failAt, patch, addr, got, before[addr])
				}
			}
			if !equalMaps(snapshot(v4), trie) || !slices.Equal(a.Entries(0), entries) {
				t.Fatalf("failAt %d patch %v: trie or list not rolled back", failAt, patch)
			}
			// The index still follows the model: a next change is exact.
			mustReplace(t, a, 2, "10.1.2.0/24")
			ref := reference{0: {}, 1: {}, 2: {netip.MustParsePrefix("10.1.2.0/24"): true}}
			for _, p := range entries {
				ref[0][p] = true
			}
			for _, p := range a.Entries(1) {
				ref[1][p] = true
			}
			dp.check(t, ref)
		}
	}
}
