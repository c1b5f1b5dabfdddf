package maps

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/sluicelb/sluice/bpf"
)

// upgradeService is the upgrade tests' service: UDP 192.0.2.10:53, id 7,
// dsr-l2, whose one-slot Maglev table names backend 3; backend 4 is its too,
// so a flow's entry naming 4 shows that a hit, not the table, sent it there.
func upgradeService(t *testing.T, lb *LB) (netip.Addr, ServiceKey) {
	t.Helper()
	vip := netip.MustParseAddr("192.0.2.10")
	k := ServiceKey{VIP: vip, Port: 53, Proto: ProtoUDP}
	must(t, lb.SwapTable(7, []uint32{3}))
	for _, id := range []uint32{3, 4} {
		must(t, lb.PutBackend(id, BackendEntry{Addr: netip.AddrFrom4([4]byte{10, 5, 0, byte(id)}),
			MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(id)}, Service: 7}))
	}
	must(t, lb.PutService(k, ServiceEntry{ID: 7, TableSize: 1, Mode: bpf.XDPLbModeLB_MODE_DSR_L2}))
	must(t, lb.PutVIP(vip))
	return vip, k
}

// TestNewServiceIDsBesidePinnedServicesAreFilled: a restart whose program
// brings lb_svc_ids beside maps an older one pinned (an upgrade) fills it
// from the pinned services at once, and a connection-table entry the older
// program wrote (no service id) keeps its backend.
func TestNewServiceIDsBesidePinnedServicesAreFilled(t *testing.T) {
	dp, dir := pinnedDatapath(t)
	lb := dp.LB()
	vip, k := upgradeService(t, lb)
	if got := verdict(t, dp, "198.51.100.1", vip.String(), 53); got != xdpTX {
		t.Fatalf("packet to the VIP: verdict %d, want tx", got)
	}
	// The entry as the older program left it: no service id. It names
	// backend 4, which the table does not give: only a hit goes there.
	var fk bpf.XDPFlowKey4
	var st bpf.XDPFlowState
	it := lb.flows4.Iterate()
	if !it.Next(&fk, &st) {
		t.Fatalf("no connection-table entry: %v", it.Err())
	}
	st.Svc, st.Backend = 0, 4
	must(t, lb.flows4.Put(fk, st))
	dp.Close()

	dp2 := reopenWithout(t, dir, bpf.XDPMapLbSvcIds)
	lb2 := dp2.LB()
	var e bpf.XDPSvcEntry
	must(t, lb2.svcIDs.Lookup(uint32(7), &e))
	if e.Key != k.raw() || e.Info.Id != 7 || e.Info.TableSize != 1 {
		t.Fatalf("lb_svc_ids[7] = %+v after the upgrade, want service %v", e, k)
	}
	before, err := lb2.FlowStats()
	must(t, err)
	if got := verdict(t, dp2, "198.51.100.1", vip.String(), 53); got != xdpTX {
		t.Fatalf("packet to the VIP after the upgrade: verdict %d, want tx", got)
	}
	after, err := lb2.FlowStats()
	must(t, err)
	must(t, lb2.flows4.Lookup(fk, &st))
	if after.Hits != before.Hits+1 || st.Backend != 4 || st.Svc != 8 {
		t.Errorf("older entry after the upgrade: %d hits, entry %+v; want a hit on backend 4, service id 7 recorded", after.Hits-before.Hits, st)
	}

	// The service's removal clears its id: the flow's packets pass.
	must(t, lb2.DeleteService(k))
	must(t, lb2.svcIDs.Lookup(uint32(7), &e))
	if e != (bpf.XDPSvcEntry{}) {
		t.Errorf("lb_svc_ids[7] = %+v after the service's removal, want it clear", e)
	}
	if got := verdict(t, dp2, "198.51.100.1", vip.String(), 53); got != xdpPass {
		t.Errorf("packet to a removed service: verdict %d, want pass", got)
	}
}

// TestIPv4FlowsOfOneTableMoveToTheirOwn: an upgrade from a program that
// kept IPv4 flows in lb_flows, beside the IPv6 ones, moves them to
// lb_flows4 before the new program sees a packet, so each keeps its
// backend; IPv6 flows stay where they are.
func TestIPv4FlowsOfOneTableMoveToTheirOwn(t *testing.T) {
	dp, dir := pinnedDatapath(t)
	lb := dp.LB()
	vip, _ := upgradeService(t, lb)
	// The older program's table: the flow (on backend 4, which the
	// Maglev table does not give) under the 40-byte key, and an IPv6 flow.
	src, dst := netip.MustParseAddr("198.51.100.1").As4(), vip.As4()
	old := bpf.XDPFlowKey{Sport: be16(40000), Dport: be16(53), Proto: 17, Family: 4}
	copy(old.Src[:], src[:])
	copy(old.Dst[:], dst[:])
	v6 := bpf.XDPFlowKey{Src: netip.MustParseAddr("2001:db8::1").As16(), Dst: netip.MustParseAddr("2001:db8::10").As16(),
		Sport: be16(40000), Dport: be16(53), Proto: 17, Family: 6}
	must(t, lb.flows6.Put(old, bpf.XDPFlowState{Backend: 4, Svc: 8}))
	must(t, lb.flows6.Put(v6, bpf.XDPFlowState{Backend: 3, Svc: 8}))
	dp.Close()

	dp2 := reopenWithout(t, dir, bpf.XDPMapLbFlows4)
	lb2 := dp2.LB()
	if n4, err := countEntries[bpf.XDPFlowKey4](lb2.flows4); err != nil || n4 != 1 {
		t.Fatalf("lb_flows4 holds %d flows (%v) after the upgrade, want the moved one", n4, err)
	}
	var st bpf.XDPFlowState
	if err := lb2.flows6.Lookup(old, &st); err == nil {
		t.Errorf("the IPv4 flow is still in lb_flows: %+v", st)
	}
	must(t, lb2.flows6.Lookup(v6, &st))
	before, err := lb2.FlowStats()
	must(t, err)
	if got := verdict(t, dp2, "198.51.100.1", vip.String(), 53); got != xdpTX {
		t.Fatalf("packet of the moved flow: verdict %d, want tx", got)
	}
	after, err := lb2.FlowStats()
	must(t, err)
	must(t, lb2.flows4.Lookup(key4Of(old), &st))
	if after.Hits != before.Hits+1 || st.Backend != 4 {
		t.Errorf("moved flow: %d hits, entry %+v; want a hit on backend 4", after.Hits-before.Hits, st)
	}
	if n, err := lb2.Flows(); err != nil || n != 2 {
		t.Errorf("Flows() = %d, %v; want 2 (one a family)", n, err)
	}
}

// TestModMagicGivesTheRemainder checks the division-free remainder of
// slot_of() in bpf/include/lb.h, computed as the datapath computes it, with
// the magic modMagic gives, against the % it replaces.
func TestModMagicGivesTheRemainder(t *testing.T) {
	slot := func(h uint32, magic uint64, d uint32) uint32 {
		low := magic * uint64(h)
		return uint32(((low>>32)*uint64(d) + ((low&0xffffffff)*uint64(d))>>32) >> 32)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, d := range []uint32{2, 3, 7, 251, 1 << 16, 65521, 65537, 131071, 1<<31 + 11, 4294967291, ^uint32(0)} {
		magic := modMagic(d)
		hs := []uint32{0, 1, d - 1, d, d + 1, ^uint32(0), ^uint32(0) - 1}
		for range 200_000 {
			hs = append(hs, r.Uint32())
		}
		for _, h := range hs {
			if got, want := slot(h, magic, d), h%d; got != want {
				t.Fatalf("%d mod %d: got %d, want %d", h, d, got, want)
			}
		}
	}
}

// TestFlowTablesTakeTheirSizes: the IPv6 connection table is as large as
// the IPv4 one unless it is given its own size; the flow caches take theirs,
// 16,384 slots unless told.
func TestFlowTablesTakeTheirSizes(t *testing.T) {
	for _, c := range []struct {
		opts                DatapathOptions
		want4, want6, cache uint32
	}{
		{DatapathOptions{FlowTableSize: 4096}, 4096, 4096, 1 << 14},
		{DatapathOptions{FlowTableSize: 4096, FlowTableSize6: 512, FlowCacheSlots: 1024}, 4096, 512, 1024},
	} {
		dir := t.TempDir()
		c.opts.PinDir, c.opts.ACLMaxEntries = dir, 1024
		dp, err := OpenDatapath(c.opts)
		must(t, err)
		lb := dp.LB()
		if got4, got6 := lb.flows4.MaxEntries(), lb.flows6.MaxEntries(); got4 != c.want4 || got6 != c.want6 {
			t.Errorf("%+v: tables of %d and %d flows, want %d and %d", c.opts, got4, got6, c.want4, c.want6)
		}
		if got := dp.objs.LbFlowCache.MaxEntries(); got != c.cache {
			t.Errorf("%+v: flow caches of %d slots, want %d", c.opts, got, c.cache)
		}
		dp.Close()
	}
	if _, err := OpenDatapath(DatapathOptions{PinDir: t.TempDir(), ACLMaxEntries: 1024, FlowCacheSlots: 1000}); err == nil {
		t.Error("flow caches of 1000 slots were accepted")
	}
}
