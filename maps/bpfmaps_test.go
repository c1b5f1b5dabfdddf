package maps

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// pinnedDatapath opens a datapath whose maps are pinned, fresh, in a new
// directory of the BPF filesystem, removed when the test ends.
func pinnedDatapath(t *testing.T) (*Datapath, string) {
	t.Helper()
	if _, err := EnsureBPFFS("/sys/fs/bpf"); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/sys/fs/bpf", "sluice-maps-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	dp, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	must(t, err)
	must(t, dp.PinFresh(dir))
	return dp, dir
}

// reopenWithout removes the pin of map name from dir, as if an older
// version had pinned the others, and opens the datapath again (closed when
// the test ends): name, and name alone, must be made fresh.
func reopenWithout(t *testing.T, dir, name string) *Datapath {
	t.Helper()
	must(t, os.Remove(filepath.Join(dir, "maps", name)))
	dp, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	must(t, err)
	t.Cleanup(func() { dp.Close() })
	if !slices.Equal(dp.Fresh, []string{name}) {
		t.Fatalf("fresh maps %v, want %s only", dp.Fresh, name)
	}
	return dp
}

func TestDatapathMapsSurviveReopen(t *testing.T) {
	dp, dir := pinnedDatapath(t)
	a, err := dp.ACL()
	if err != nil {
		t.Fatal(err)
	}
	mustReplace(t, a, 0, "10.0.0.0/8")
	mustReplace(t, a, 1, "11.0.0.0/8", "12.1.2.3/32")
	if err := dp.Policy().SetPolicy(Policy{Mode: PolicyAllow, DenyLists: 1, AllowLists: 2}); err != nil {
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
	// The index the last run wrote answers until the restored model is
	// reconciled, and after.
	for src, want := range map[string]int{"10.1.2.3": xdpDrop, "11.1.2.3": xdpPass, "12.1.2.3": xdpPass, "12.1.2.4": xdpDrop} {
		if got := verdict(t, dp2, src, "192.0.2.1", 53); got != want {
			t.Fatalf("%s after reopening: verdict %d, want %d", src, got, want)
		}
	}
	p, err := dp2.Policy().Policy()
	if err != nil || p.Mode != PolicyAllow || p.DenyLists != 1 {
		t.Fatalf("policy after reopen = %+v, %v", p, err)
	}
	a2, _ := dp2.ACL()
	mustReplace(t, a2, 0, "10.0.0.0/8")
	mustReplace(t, a2, 1, "11.0.0.0/8", "12.1.2.3/32")
	ch, err := a2.Reconcile()
	if err != nil || ch.Added != 0 || ch.Removed != 0 {
		t.Fatalf("reconcile after reopen = %+v, %v; want no change", ch, err)
	}
	for src, want := range map[string]int{"10.1.2.3": xdpDrop, "11.1.2.3": xdpPass, "12.1.2.3": xdpPass, "12.1.2.4": xdpDrop} {
		if got := verdict(t, dp2, src, "192.0.2.1", 53); got != want {
			t.Fatalf("%s after the reconcile: verdict %d, want %d", src, got, want)
		}
	}

	// A pin of another layout is replaced, here the classes of the index:
	// the blocks it shares a pin directory with send every lookup to the
	// tries until the restored model is reconciled.
	dp2.Close()
	classes := filepath.Join(dir, "maps", bpf.XDPMapAclClasses)
	must(t, os.Remove(classes))
	other, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 16})
	must(t, err)
	must(t, other.Pin(classes))
	other.Close()
	dp4, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	must(t, err)
	if !slices.Equal(dp4.Fresh, []string{bpf.XDPMapAclClasses}) {
		t.Fatalf("fresh maps %v, want the classes only", dp4.Fresh)
	}
	a4, err := dp4.ACL()
	must(t, err)
	if got := verdict(t, dp4, "11.9.9.9", "192.0.2.1", 53); got != xdpPass {
		t.Fatalf("11.9.9.9 before the reconcile: verdict %d, want pass (through the trie)", got)
	}
	mustReplace(t, a4, 0, "10.0.0.0/8")
	mustReplace(t, a4, 1, "11.0.0.0/8")
	_, err = a4.Reconcile()
	must(t, err)
	must(t, dp4.PinFresh(dir))
	for src, want := range map[string]int{"10.1.2.3": xdpDrop, "11.1.2.3": xdpPass, "12.1.2.3": xdpDrop} {
		if got := verdict(t, dp4, src, "192.0.2.1", 53); got != want {
			t.Fatalf("%s after the reconcile: verdict %d, want %d", src, got, want)
		}
	}
	dp4.Close()

	// A different capacity makes the pinned tries incompatible: fresh ones are made.
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

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// verdict runs a UDP packet from src to dst:port through the program. The
// checksums are left zero: the ACL and L4 stages do not check them.
func verdict(t *testing.T, dp *Datapath, src, dst string, port uint16) int {
	t.Helper()
	pkt := make([]byte, 14+20+8+4)
	pkt[12], pkt[13] = 0x08, 0x00
	ip := pkt[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:16], netip.MustParseAddr(src).AsSlice())
	copy(ip[16:20], netip.MustParseAddr(dst).AsSlice())
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], port)
	binary.BigEndian.PutUint16(ip[24:], 12)
	ret, err := dp.Program().Run(&ebpf.RunOptions{Data: pkt})
	must(t, err)
	return int(ret)
}

// TestNewVIPFilterBesidePinnedVIPsIsFilled: a restart whose program brings a
// VIP filter the pins lack (an upgrade) keeps forwarding the pinned
// services' packets.
func TestNewVIPFilterBesidePinnedVIPsIsFilled(t *testing.T) {
	dp, dir := pinnedDatapath(t)
	lb := dp.LB()
	vip := netip.MustParseAddr("192.0.2.10")
	must(t, lb.SwapTable(7, []uint32{3}))
	must(t, lb.PutBackend(3, BackendEntry{Addr: netip.MustParseAddr("10.5.0.3"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Service: 7}))
	must(t, lb.PutService(ServiceKey{VIP: vip, Port: 53, Proto: ProtoUDP}, ServiceEntry{ID: 7, TableSize: 1, Mode: bpf.XDPLbModeLB_MODE_DSR_L2}))
	must(t, lb.PutVIP(vip))
	if got := verdict(t, dp, "198.51.100.1", vip.String(), 53); got != xdpTX {
		t.Fatalf("packet to the VIP: verdict %d, want tx", got)
	}
	dp.Close()

	dp2 := reopenWithout(t, dir, bpf.XDPMapLbVipFilter)
	if got := verdict(t, dp2, "198.51.100.1", vip.String(), 53); got != xdpTX {
		t.Fatalf("packet to the VIP after the restart: verdict %d, want tx", got)
	}
	// Its removal clears the bit: packets to it pass to the stack.
	must(t, dp2.LB().DeleteVIP(vip))
	if got := verdict(t, dp2, "198.51.100.1", vip.String(), 53); got != xdpPass {
		t.Fatalf("packet to the removed VIP: verdict %d, want pass", got)
	}
}

// A successor that made maps of another size and then failed leaves its
// maps pinned; the daemon that serves on pins its own again, and only
// those the successor took over.
func TestReclaimPinsBackWhatASuccessorReplaced(t *testing.T) {
	dp, dir := pinnedDatapath(t)
	defer dp.Close()
	if got, err := dp.Reclaim(dir); err != nil || len(got) != 0 {
		t.Fatalf("Reclaim with every pin its own: %v, %v; want nothing pinned again", got, err)
	}
	succ, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 2048})
	must(t, err)
	must(t, succ.PinFresh(dir))
	succ.Close()

	got, err := dp.Reclaim(dir)
	must(t, err)
	slices.Sort(got)
	want := []string{bpf.XDPMapAclV4, bpf.XDPMapAclV4Host, bpf.XDPMapAclV6, bpf.XDPMapAclV6Host}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pinned again %v, want the successor's resized maps %v", got, want)
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "maps", bpf.XDPMapAclV4), nil)
	must(t, err)
	defer m.Close()
	if m.MaxEntries() != 1024 {
		t.Errorf("the pinned IPv4 trie holds %d entries, want this daemon's 1024", m.MaxEntries())
	}
	// What is pinned is what this daemon's program uses: a restart reuses it.
	again, err := OpenDatapath(DatapathOptions{PinDir: dir, ACLMaxEntries: 1024})
	must(t, err)
	defer again.Close()
	if len(again.Fresh) != 0 {
		t.Errorf("a restart after Reclaim made fresh maps %v, want all reused", again.Fresh)
	}
}

// A host hash's large update and delete run in parts side by side; every entry lands
// with its own mask, and an error of any part is returned.
func TestHostHashWritesInParallelPartsMissNoEntry(t *testing.T) {
	v4, _ := newTries(t, 1<<16)
	host := v4.(*HostSplit).Host
	ps := seqPrefixes(3*parallelHostWrites+7, 0)
	masks := make([]uint64, len(ps))
	for i := range masks {
		masks[i] = uint64(i)<<8 | 1
	}
	must(t, host.Update(ps, masks))
	got := map[netip.Prefix]uint64{}
	must(t, host.Iterate(func(p netip.Prefix, m uint64) bool { got[p] = m; return true }))
	if len(got) != len(ps) {
		t.Fatalf("%d entries in the hash, want %d", len(got), len(ps))
	}
	for i, p := range ps {
		if got[p] != masks[i] {
			t.Fatalf("%s has mask %#x, want %#x", p, got[p], masks[i])
		}
	}
	// Deleted in parts too, absent keys among them.
	must(t, host.Delete(append(seqPrefixes(2*parallelHostWrites, 0), seqPrefixes(10, 1<<20)...)))
	n := 0
	must(t, host.Iterate(func(netip.Prefix, uint64) bool { n++; return true }))
	if want := len(ps) - 2*parallelHostWrites; n != want {
		t.Errorf("%d entries after the delete, want %d", n, want)
	}
	// Past the capacity: the part that does not fit fails, and so does the update.
	full, _ := newTries(t, 1024)
	if err := full.(*HostSplit).Host.Update(ps, masks); err == nil {
		t.Error("an update past the hash's capacity returned no error")
	}
}
