package bpf_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/bpf/bench"
	"github.com/sluicelb/sluice/maps"
)

// nsPerPacket runs prog over pkt with Repeat and reports the kernel's own
// per-run time, which excludes the syscall: the fastest of the batches, since
// a virtual machine's noise only ever adds time.
func nsPerPacket(b *testing.B, prog *ebpf.Program, pkt []byte, want int) {
	b.Helper()
	const repeat = 1 << 16
	best := time.Duration(1<<63 - 1)
	for b.Loop() {
		ret, per, err := prog.Benchmark(pkt, repeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if int(ret) != want {
			b.Fatalf("verdict %d, want %d", ret, want)
		}
		best = min(best, per)
	}
	b.ReportMetric(float64(best.Nanoseconds()), "ns/pkt")
}

func BenchmarkXDPDropBare(b *testing.B) {
	var objs bench.DropObjects
	if err := bench.LoadDropObjects(&objs, nil); err != nil {
		b.Fatal(err)
	}
	defer objs.Close()
	nsPerPacket(b, objs.XdpDropAll, udp4(b, "198.51.100.1"), xdpDrop)
}

// loadedACL is the datapath with 1M IPv4 and 100k IPv6 prefixes (90% hosts)
// in a deny list, and an allow list.
func loadedACL(b *testing.B) *datapath {
	b.Helper()
	d := &datapath{}
	spec, err := bpf.LoadXDP()
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{bpf.XDPMapAclV4, bpf.XDPMapAclV6, bpf.XDPMapAclV4Host, bpf.XDPMapAclV6Host} {
		spec.Maps[name].MaxEntries = 1 << 21
	}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.objs.Close() })
	if d.acl, err = maps.NewACLFromObjects(&d.objs); err != nil {
		b.Fatal(err)
	}
	d.policy = maps.NewPolicyMap(d.objs.AclConfig)
	// Like published block lists: mostly hosts, some networks.
	r := rand.New(rand.NewPCG(1, 2))
	deny := blockList(r, 1_000_000, 1_100_000)
	for i := 0; i < 100_000; i++ {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:], 0x20010db800000000|r.Uint64()>>32)
		binary.BigEndian.PutUint64(a[8:], r.Uint64())
		bits := 128
		if i%10 == 0 {
			bits = 48
		}
		p, _ := netip.AddrFrom16(a).Prefix(bits)
		deny = append(deny, p)
	}
	deny = append(deny, netip.MustParsePrefix("10.66.1.1/32"), netip.MustParsePrefix("10.67.0.0/16"))
	if _, err := d.acl.Replace(0, deny); err != nil {
		b.Fatal(err)
	}
	if _, err := d.acl.Replace(1, []netip.Prefix{netip.MustParsePrefix("10.77.1.1/32")}); err != nil {
		b.Fatal(err)
	}
	if err := d.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1, AllowLists: 2}); err != nil {
		b.Fatal(err)
	}
	return d
}

// blockList is n random IPv4 prefixes, like a published block list: 90%
// hosts, the rest /24s, with first octets 11..100 (never a benchmark's
// source), in a slice with room for size.
func blockList(r *rand.Rand, n, size int) []netip.Prefix {
	deny := make([]netip.Prefix, 0, size)
	for i := range n {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32()&0x00ffffff|uint32(11+r.IntN(90))<<24)
		bits := 32
		if i%10 == 0 {
			bits = 24
		}
		p, _ := netip.AddrFrom4(a).Prefix(bits)
		deny = append(deny, p)
	}
	return deny
}

// BenchmarkACL measures the three ACL paths with the full lists loaded; the
// parent runs once, so the lists are loaded once for all three.
func BenchmarkACL(b *testing.B) {
	d := loadedACL(b)
	for _, c := range []struct {
		name string
		src  string
		want int
	}{{"miss", "198.51.100.1", xdpPass}, {"deny", "10.66.1.1", xdpDrop}, {"allow", "10.77.1.1", xdpPass},
		{"deny-net", "10.67.1.1", xdpDrop}} {
		b.Run(c.name, func(b *testing.B) { nsPerPacket(b, d.objs.SluiceXdp, udp4(b, c.src), c.want) })
	}
}
