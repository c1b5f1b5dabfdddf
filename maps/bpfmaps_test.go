package maps

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
)

// newTries makes each family's PrefixMap as the datapath has it: a trie and
// a host hash behind a HostSplit.
func newTries(t testing.TB, capacity uint32) (PrefixMap, PrefixMap) {
	t.Helper()
	spec, err := bpf.LoadXDP()
	if err != nil {
		t.Fatal(err)
	}
	var pm [4]PrefixMap
	for i, name := range []string{bpf.XDPMapAclV4, bpf.XDPMapAclV4Host, bpf.XDPMapAclV6, bpf.XDPMapAclV6Host} {
		ms := spec.Maps[name].Copy()
		ms.MaxEntries = capacity
		m, err := ebpf.NewMap(ms)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if pm[i], err = NewPrefixMap(m); err != nil {
			t.Fatal(err)
		}
	}
	return &HostSplit{Net: pm[0], Host: pm[1]}, &HostSplit{Net: pm[2], Host: pm[3]}
}

func seqPrefixes(n, start int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(0x0b000000+start+i))
		out[i] = netip.PrefixFrom(netip.AddrFrom4(b), 32)
	}
	return out
}

func TestBPFTriesFollowTheModel(t *testing.T) {
	v4, v6 := newTries(t, 1024)
	a := NewACL(v4, v6)
	mustReplace(t, a, 0, "10.0.0.0/8", "2001:db8::/32")
	mustReplace(t, a, 1, "10.1.2.3/32", "2001:db8::1/128")
	if _, err := a.Patch(0, nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}); err != nil {
		t.Fatal(err)
	}
	got := map[netip.Prefix]uint64{}
	for _, m := range []PrefixMap{v4, v6} {
		if err := m.Iterate(func(p netip.Prefix, mask uint64) bool { got[p] = mask; return true }); err != nil {
			t.Fatal(err)
		}
	}
	want := map[netip.Prefix]uint64{
		netip.MustParsePrefix("10.1.2.3/32"):     0b10,
		netip.MustParsePrefix("2001:db8::/32"):   0b01,
		netip.MustParsePrefix("2001:db8::1/128"): 0b11,
	}
	if !equalMaps(got, want) {
		t.Fatalf("tries hold %v, want %v", got, want)
	}
	// Deleting absent entries is not an error.
	if err := v4.Delete([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("10.1.2.3/32")}); err != nil {
		t.Fatal(err)
	}
}

func TestBPFCapacityFailsCleanly(t *testing.T) {
	v4, v6 := newTries(t, 100)
	a := NewACL(v4, v6)
	a.SetCapacity(100, 100)
	if _, err := a.Replace(0, seqPrefixes(101, 0)); err == nil {
		t.Fatal("a sync over capacity succeeded")
	}
	if a.Len(0) != 0 {
		t.Fatal("a failed sync left entries")
	}
}

func TestMillionEntrySyncIntoBPF(t *testing.T) {
	v4, v6 := newTries(t, 1<<21)
	a := NewACL(v4, v6)
	a.SetCapacity(1<<21, 1<<21)
	list := seqPrefixes(1_000_000, 0)
	start := time.Now()
	if _, err := a.Replace(3, list); err != nil {
		t.Fatal(err)
	}
	t.Logf("1M-entry sync into an empty trie: %v", time.Since(start))
	// 10% changed: 100k removed, 100k added.
	next := append(seqPrefixes(900_000, 100_000), seqPrefixes(100_000, 2_000_000)...)
	start = time.Now()
	ch, err := a.Replace(3, next)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1M-entry sync with 10%% changed: %v", time.Since(start))
	if ch.Added != 100_000 || ch.Removed != 100_000 || ch.Entries != 1_000_000 {
		t.Fatalf("change = %+v", ch)
	}
	if a.Len(3) != 1_000_000 || !a.Has(3, next[len(next)-1]) || a.Has(3, list[0]) {
		t.Fatalf("model after sync: %d entries", a.Len(3))
	}
	if mask, _ := a.Match(next[0].Addr()); mask != ListID(3).Bit() {
		t.Fatalf("%s matches %#x, want list 3", next[0], mask)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use with 1M entries: %d MiB", ms.HeapInuse>>20)
	runtime.KeepAlive(a)
}

func TestDatapathMapsSurviveReopen(t *testing.T) {
	if _, err := EnsureBPFFS("/sys/fs/bpf"); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/sys/fs/bpf", "sluice-maps-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dp, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.PinFresh(dir); err != nil {
		t.Fatal(err)
	}
	a, err := dp.ACL()
	if err != nil {
		t.Fatal(err)
	}
	mustReplace(t, a, 0, "10.0.0.0/8")
	if err := dp.Policy().SetPolicy(Policy{Mode: PolicyAllow, DenyLists: 1}); err != nil {
		t.Fatal(err)
	}
	dp.Close()

	dp2, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer dp2.Close()
	if len(dp2.Fresh) != 0 {
		t.Fatalf("reopen created fresh maps %v, want all reused", dp2.Fresh)
	}
	p, err := dp2.Policy().Policy()
	if err != nil || p.Mode != PolicyAllow || p.DenyLists != 1 {
		t.Fatalf("policy after reopen = %+v, %v", p, err)
	}
	a2, _ := dp2.ACL()
	mustReplace(t, a2, 0, "10.0.0.0/8")
	ch, err := a2.Reconcile()
	if err != nil || ch.Added != 0 || ch.Removed != 0 {
		t.Fatalf("reconcile after reopen = %+v, %v; want no change", ch, err)
	}

	// A different capacity makes the pinned tries incompatible: fresh ones are made.
	dp2.Close()
	dp3, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer dp3.Close()
	if len(dp3.Fresh) != 4 {
		t.Fatalf("fresh maps %v, want the two tries and the two host hashes", dp3.Fresh)
	}
	if err := dp3.PinFresh(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "maps", bpf.XDPMapAclV4)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkReplace1M(b *testing.B) {
	v4, v6 := newTries(b, 1<<21)
	lists := [2][]netip.Prefix{seqPrefixes(1_000_000, 0), seqPrefixes(1_000_000, 1_000_000)}
	for i := 0; b.Loop(); i++ {
		a := NewACL(v4, v6)
		a.SetCapacity(1<<21, 1<<21)
		if _, err := a.Replace(0, lists[i%2]); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Remove(0); err != nil {
			b.Fatal(err)
		}
	}
}
