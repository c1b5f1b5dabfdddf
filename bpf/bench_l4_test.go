package bpf_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
)

const (
	benchServices = 1000
	benchBackends = 100
	// benchFlows is how many flows the connection table holds before the
	// measurements: lookups walk a populated table, not an empty one.
	benchFlows = 100_000
)

// benchVIP is the address of the benchmark's TCP service i.
func benchVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 200, byte(i / 256), byte(i % 256)})
}

// benchService is a dsr-l2 service with benchBackends backends, whose
// addresses are base.1 to base.100. Its Maglev table is the reconciler's
// (l4.BuildTable), of the default size, 65537.
func benchService(name string, vip netip.Addr, proto l4.Proto, base [3]byte) l4.Service {
	s := l4.Service{Name: name, VIP: vip, Port: 443, Proto: proto, Mode: l4.ModeDSRL2}
	for j := range benchBackends {
		s.Backends = append(s.Backends, l4.Backend{Addr: netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(j + 1)}), Weight: 100})
	}
	return s
}

// loadedLB is the datapath with no ACL list, 1,000 TCP services of 100 backends each and
// one UDP service of 100 backends, provisioned through the reconciler, and
// benchFlows TCP flows in the connection table.
func loadedLB(b *testing.B) *lbPath {
	b.Helper()
	d := &datapath{}
	if err := bpf.LoadXDPObjects(&d.objs, nil); err != nil {
		b.Fatalf("load xdp: %v", err)
	}
	b.Cleanup(func() { d.objs.Close() })
	// The ACL's index built, as the daemon has it before it attaches: an
	// index never built sends every source to the host hash and the trie.
	acl, err := maps.NewACLFromObjects(&d.objs)
	if err != nil {
		b.Fatal(err)
	}
	d.acl = acl
	lb, err := maps.NewLB(&d.objs)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := l4.NewReconciler(lb, func(a netip.Addr) (l4.NextHop, error) {
		return l4.NextHop{MAC: backendMAC(a)}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// Every UDP entry has idled out by the next packet: see BenchmarkL4.
	if err := lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, UDPTimeout: time.Nanosecond}); err != nil {
		b.Fatal(err)
	}
	if err := lb.SetIface(loIfindex, lbMAC, 1500); err != nil {
		b.Fatal(err)
	}
	for i := range benchServices {
		s := benchService(fmt.Sprintf("svc-%d", i), benchVIP(i), l4.TCP, [3]byte{10, byte(100 + i/256), byte(i % 256)})
		if err := rec.Set(s); err != nil {
			b.Fatal(err)
		}
	}
	if err := rec.Set(benchService("udp", vip4, l4.UDP, [3]byte{10, 99, 0})); err != nil {
		b.Fatal(err)
	}
	// Flows spread over the services, one packet each.
	out := make([]byte, 512)
	for f := range benchFlows {
		pkt := tcp4(b, client4, uint16(1024+f/benchServices), benchVIP(f%benchServices), 443, 10, false)
		ret, err := d.objs.SluiceXdp.Run(&ebpf.RunOptions{Data: pkt, DataOut: out})
		if err != nil || ret != xdpTX {
			b.Fatalf("fill the connection table: verdict %d, %v", ret, err)
		}
	}
	if n, err := lb.Flows(); err != nil || n < benchFlows {
		b.Fatalf("connection table holds %d flows (%v), want %d", n, err, benchFlows)
	}
	return &lbPath{datapath: d, lb: lb, rec: rec}
}

// noFlowCache turns the CPUs' flow caches off until the benchmark ends.
func noFlowCache(b *testing.B, d *datapath) {
	b.Helper()
	if err := d.objs.LbFlowCacheOff.Set(uint8(1)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := d.objs.LbFlowCacheOff.Set(uint8(0)); err != nil {
			b.Error(err)
		}
	})
}

// denyList puts 100,000 prefixes (90% hosts, none the benchmark's client)
// in a deny list in force, until the benchmark ends.
func denyList(b *testing.B, d *datapath) {
	b.Helper()
	deny := blockList(rand.New(rand.NewPCG(3, 4)), 100_000, 100_000)
	if _, err := d.acl.Replace(0, deny); err != nil {
		b.Fatal(err)
	}
	policy := maps.NewPolicyMap(d.objs.AclConfig)
	if err := policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny}); err != nil {
			b.Error(err)
		}
	})
}

// BenchmarkL4 measures the L4 path with 1,000 services of 100 backends
// loaded (make bench compares it with BenchmarkXDPDropBare).
//
// Both cases use dsr-l2: with Repeat the kernel runs the program over the
// same buffer again without restoring it, so the second run of dsr-ipip would
// see the first run's tunnel packet (not a service: XDP_PASS), while the L2
// rewrite leaves a packet that takes the same path every run. The
// encapsulation's cost is in the veth rates (scripts/vethbench -mode l4).
//
// conntrack-hit repeats a TCP packet of a flow that is in the table, with no
// list (the ACL's index answers "no list"): the CPU's flow cache sends it on,
// and every FLOW_CACHE_REFRESH-th packet the table. conntrack-hit-deny-list
// is the same with 100,000 prefixes in a deny list in force.
// conntrack-hit-table is conntrack-hit with the flow cache off: what a flow
// the cache does not hold costs (one that shares its slot with another,
// among many more flows than slots).
//
// new-flow must miss the table on every run, yet Repeat sends one packet,
// whose flow the first run records. The UDP service's flows idle out after
// 1 ns (UDPTimeout), so every run finds the previous run's entry stale, and
// takes the whole miss path: Maglev slot of the flow hash, backend, and the
// entry rewritten in place. It is a flow's re-pick (its backend down, an idle
// UDP flow), not quite a first packet's: it finds the stale entry and its
// backend, which a flow never seen does not, but the entry names its service
// (an array lookup, lb_svc_ids) where a flow never seen looks the service up
// by its key (a hash lookup) and takes a new LRU element. The counters check
// that every run missed.
func BenchmarkL4(b *testing.B) {
	p := loadedLB(b)
	hit := tcp4(b, client4, 1024, benchVIP(0), 443, 10, false)
	miss := udpPacket4(b, client4, 40000, vip4, 443)
	for _, c := range []struct {
		name    string
		pkt     []byte
		wantHit bool
		denying bool // a deny list in force (the others run without one)
		noCache bool // the flow cache off
	}{{"conntrack-hit", hit, true, false, false}, {"conntrack-hit-table", hit, true, false, true},
		{"new-flow", miss, false, false, false}, {"conntrack-hit-deny-list", hit, true, true, false}} {
		b.Run(c.name, func(b *testing.B) {
			if c.denying {
				denyList(b, p.datapath)
			}
			if c.noCache {
				noFlowCache(b, p.datapath)
			}
			before, err := p.lb.FlowStats()
			if err != nil {
				b.Fatal(err)
			}
			nsPerPacket(b, p.objs.SluiceXdp, c.pkt, xdpTX)
			after, err := p.lb.FlowStats()
			if err != nil {
				b.Fatal(err)
			}
			hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
			if c.wantHit && (misses != 0 || hits == 0) || !c.wantHit && (hits != 0 || misses == 0) {
				b.Fatalf("connection table: %d hits, %d misses", hits, misses)
			}
			// The cache serves all but the table's turns, or nothing when off.
			cached := after.CacheHits - before.CacheHits
			if c.wantHit && !c.noCache && cached < hits*9/10 || (c.noCache || !c.wantHit) && cached != 0 {
				b.Fatalf("flow cache: %d of %d hits", cached, hits)
			}
		})
	}
}
