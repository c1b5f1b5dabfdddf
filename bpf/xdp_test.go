package bpf_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/maps"
)

var (
	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// datapath is the loaded program with its maps reached through the real Go API.
type datapath struct {
	objs   bpf.XDPObjects
	acl    *maps.ACL
	policy maps.PolicyMap
	stats  maps.Stats
}

// load loads the XDP program and its maps, after edits to their spec.
func load(t testing.TB, edits ...func(*ebpf.CollectionSpec)) *datapath {
	t.Helper()
	d := &datapath{}
	spec, err := bpf.LoadXDP()
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range edits {
		edit(spec)
	}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		t.Fatalf("load xdp: %v", err)
	}
	t.Cleanup(func() { d.objs.Close() })
	acl, err := maps.NewACLFromObjects(&d.objs)
	if err != nil {
		t.Fatal(err)
	}
	d.acl = acl
	d.policy = maps.NewPolicyMap(d.objs.AclConfig)
	d.stats = maps.NewStats(d.objs.StatsIface, d.objs.StatsDrop, d.objs.StatsList)
	return d
}

func (d *datapath) lists(t *testing.T, id maps.ListID, prefixes ...string) {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range prefixes {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	if _, err := d.acl.Replace(id, ps); err != nil {
		t.Fatal(err)
	}
}

func (d *datapath) run(t *testing.T, pkt []byte) (int, []byte) {
	t.Helper()
	out := make([]byte, len(pkt)+256)
	ret, err := d.objs.SluiceXdp.Run(&ebpf.RunOptions{Data: pkt, DataOut: out})
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return int(ret), out[:len(pkt)]
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ether(t layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: t}
}

func ip4(src string) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP("203.0.113.10").To4()}
}

func ip6(src string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP(src), DstIP: net.ParseIP("2001:db8:ffff::10")}
}

func udp() *layers.UDP {
	return &layers.UDP{SrcPort: 40000, DstPort: 53}
}

func payload() gopacket.Payload { return gopacket.Payload("sluice-test") }

func udp4(t testing.TB, src string) []byte {
	ip, u := ip4(src), udp()
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv4), ip, u, payload())
}

func udp6(t testing.TB, src string) []byte {
	ip, u := ip6(src, layers.IPProtocolUDP), udp()
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv6), ip, u, payload())
}

// vlan wraps the IPv4 UDP packet of src in the given tags, outermost first.
func vlan(t testing.TB, src string, tags ...layers.EthernetType) []byte {
	ip, u := ip4(src), udp()
	_ = u.SetNetworkLayerForChecksum(ip)
	ls := []gopacket.SerializableLayer{ether(tags[0])}
	for i := range tags {
		next := layers.EthernetTypeIPv4
		if i+1 < len(tags) {
			next = tags[i+1]
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
	}
	return serialize(t, append(ls, ip, u, payload())...)
}

// ext6 builds an IPv6 packet from src whose payload is raw extension headers
// followed by a UDP header and data; first is the first next-header value.
func ext6(t testing.TB, src string, first layers.IPProtocol, raw []byte) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, udp(), payload()); err != nil {
		t.Fatal(err)
	}
	u := buf.Bytes()
	return serialize(t, ether(layers.EthernetTypeIPv6), ip6(src, first), gopacket.Payload(append(raw, u...)))
}

func icmp6(t testing.TB, src string, typ uint8) []byte {
	ip := ip6(src, layers.IPProtocolICMPv6)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload(make([]byte, 20)))
}

func arp(t testing.TB) []byte {
	return serialize(t, ether(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: srcMAC,
		SourceProtAddress: []byte{10, 9, 9, 9}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 9, 9, 1}})
}

func lldp(t testing.TB) []byte {
	e := ether(layers.EthernetTypeLinkLayerDiscovery)
	return serialize(t, e, gopacket.Payload([]byte{0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 1, 0, 0}))
}

// mutate returns a copy of pkt changed by fn.
func mutate(pkt []byte, fn func(b []byte) []byte) []byte {
	return fn(append([]byte(nil), pkt...))
}

type golden struct {
	name        string
	input       []byte
	wantVerdict int
	wantOutput  []byte // nil: the output equals the input
}

func runGolden(t *testing.T, d *datapath, cases []golden) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			verdict, out := d.run(t, c.input)
			want := c.wantOutput
			if want == nil {
				want = c.input
			}
			if verdict != c.wantVerdict || !bytes.Equal(out, want) {
				t.Errorf("verdict %d, want %d\ninput:    %s\nexpected: %s\nactual:   %s", verdict, c.wantVerdict,
					hex.EncodeToString(c.input), hex.EncodeToString(want), hex.EncodeToString(out))
			}
		})
	}
}

const (
	xdpDrop = 1
	xdpPass = 2
)

func TestDenyListMode(t *testing.T) {
	d := load(t)
	must(t, d.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 0b101, AllowLists: 0b010}))
	d.lists(t, 0, "10.0.0.0/8", "2001:db8:bad::/48")
	d.lists(t, 1, "10.1.0.0/16", "2001:db8:bad:1::/64")
	d.lists(t, 2, "10.1.2.3/32", "192.0.2.7/32")
	d.lists(t, maps.ProtectList, "10.9.0.0/16", "2001:db8:bad:9::/64")

	hop := []byte{byte(layers.IPProtocolIPv6Routing), 0, 1, 4, 0, 0, 0, 0}         // hop-by-hop, PadN
	routing := []byte{byte(layers.IPProtocolIPv6Destination), 0, 0, 0, 0, 0, 0, 0} // routing type 0, no segments
	dest := []byte{byte(layers.IPProtocolUDP), 0, 1, 4, 0, 0, 0, 0}                // destination options
	fragFirst := []byte{byte(layers.IPProtocolUDP), 0, 0x00, 0x01, 0, 0, 0, 1}     // offset 0, more fragments
	fragLater := []byte{byte(layers.IPProtocolUDP), 0, 0x00, 0xb8, 0, 0, 0, 1}     // offset 23*8
	chain := append(append(append([]byte{}, hop...), routing...), dest...)

	runGolden(t, d, []golden{
		{"v4 unlisted passes", udp4(t, "198.51.100.1"), xdpPass, nil},
		{"v4 in deny list drops", udp4(t, "10.200.0.1"), xdpDrop, nil},
		{"v4 deny overridden by allow list", udp4(t, "10.1.7.7"), xdpPass, nil},
		{"v4 /32 in a third list inherits /8 deny and /16 allow", udp4(t, "10.1.2.3"), xdpPass, nil},
		{"v4 /32 deny alone drops", udp4(t, "192.0.2.7"), xdpDrop, nil},
		{"v4 protect beats deny", udp4(t, "10.9.1.1"), xdpPass, nil},
		{"v6 unlisted passes", udp6(t, "2001:db8:600d::1"), xdpPass, nil},
		{"v6 in deny list drops", udp6(t, "2001:db8:bad:5::1"), xdpDrop, nil},
		{"v6 deny overridden by allow list", udp6(t, "2001:db8:bad:1::1"), xdpPass, nil},
		{"v6 protect beats deny", udp6(t, "2001:db8:bad:9::1"), xdpPass, nil},
		{"802.1Q denied drops", vlan(t, "10.200.0.1", layers.EthernetTypeDot1Q), xdpDrop, nil},
		{"802.1Q unlisted passes", vlan(t, "198.51.100.1", layers.EthernetTypeDot1Q), xdpPass, nil},
		{"QinQ denied drops", vlan(t, "10.200.0.1", layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q), xdpDrop, nil},
		{"QinQ unlisted passes", vlan(t, "198.51.100.1", layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q), xdpPass, nil},
		{"three VLAN tags drop as malformed", vlan(t, "198.51.100.1", layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q, layers.EthernetTypeDot1Q), xdpDrop, nil},
		{"v6 extension chain denied drops", ext6(t, "2001:db8:bad:5::1", layers.IPProtocolIPv6HopByHop, chain), xdpDrop, nil},
		{"v6 extension chain unlisted passes", ext6(t, "2001:db8:600d::1", layers.IPProtocolIPv6HopByHop, chain), xdpPass, nil},
		{"v6 first fragment denied drops", ext6(t, "2001:db8:bad:5::1", layers.IPProtocolIPv6Fragment, fragFirst), xdpDrop, nil},
		{"v6 later fragment denied drops", ext6(t, "2001:db8:bad:5::1", layers.IPProtocolIPv6Fragment, fragLater), xdpDrop, nil},
		{"v6 later fragment unlisted passes", ext6(t, "2001:db8:600d::1", layers.IPProtocolIPv6Fragment, fragLater), xdpPass, nil},
		{"v4 options denied drops", options4(t, "10.200.0.1"), xdpDrop, nil},
		{"v4 options unlisted passes", options4(t, "198.51.100.1"), xdpPass, nil},
		{"arp passes", arp(t), xdpPass, nil},
	})
}

func options4(t testing.TB, src string) []byte {
	ip, u := ip4(src), udp()
	ip.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, {OptionType: 1}} // record route, NOP
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv4), ip, u, payload())
}

func TestAllowListMode(t *testing.T) {
	d := load(t)
	must(t, d.policy.SetPolicy(maps.Policy{Mode: maps.PolicyAllow, DenyLists: 0b10, AllowLists: 0b01}))
	d.lists(t, 0, "10.0.0.0/8", "2001:db8::/32")
	d.lists(t, 1, "10.6.6.6/32", "2001:db8:6::/48", "198.51.100.66/32")
	d.lists(t, maps.ProtectList, "198.51.100.66/32", "192.0.2.0/24")
	runGolden(t, d, []golden{
		{"allowed v4 passes", udp4(t, "10.1.1.1"), xdpPass, nil},
		{"unlisted v4 drops", udp4(t, "198.51.100.1"), xdpDrop, nil},
		{"deny inside allowed range drops", udp4(t, "10.6.6.6"), xdpDrop, nil},
		{"allowed v6 passes", udp6(t, "2001:db8:1::1"), xdpPass, nil},
		{"unlisted v6 drops", udp6(t, "2001:db9::1"), xdpDrop, nil},
		{"v6 deny inside allowed range drops", udp6(t, "2001:db8:6::1"), xdpDrop, nil},
		{"protect passes though unlisted", udp4(t, "192.0.2.9"), xdpPass, nil},
		{"protect beats deny", udp4(t, "198.51.100.66"), xdpPass, nil},
		{"arp passes", arp(t), xdpPass, nil},
		{"lldp passes", lldp(t), xdpPass, nil},
		{"neighbour solicitation from unlisted passes", icmp6(t, "fe80::1", 135), xdpPass, nil},
		{"neighbour advertisement from unlisted passes", icmp6(t, "fe80::1", 136), xdpPass, nil},
		{"router solicitation from unlisted passes", icmp6(t, "fe80::1", 133), xdpPass, nil},
		{"icmpv6 echo from unlisted drops", icmp6(t, "2001:db9::1", 128), xdpDrop, nil},
	})
}

func TestMalformedHeadersDropAndCount(t *testing.T) {
	d := load(t)
	good4, good6 := udp4(t, "198.51.100.1"), udp6(t, "2001:db8::1")
	before, err := d.stats.Drops()
	must(t, err)
	cases := []golden{
		{"ipv4 version 6 in an ipv4 frame", mutate(good4, func(b []byte) []byte { b[14] = 0x65; return b }), xdpDrop, nil},
		{"ipv4 ihl below 5", mutate(good4, func(b []byte) []byte { b[14] = 0x44; return b }), xdpDrop, nil},
		{"ipv4 total length beyond packet", mutate(good4, func(b []byte) []byte { b[16], b[17] = 0x05, 0xdc; return b }), xdpDrop, nil},
		{"ipv4 total length below ihl", mutate(good4, func(b []byte) []byte { b[16], b[17] = 0, 10; return b }), xdpDrop, nil},
		{"truncated ipv4 header", good4[:14+12], xdpDrop, nil},
		{"ipv6 version 4 in an ipv6 frame", mutate(good6, func(b []byte) []byte { b[14] = 0x40; return b }), xdpDrop, nil},
		{"ipv6 payload length beyond packet", mutate(good6, func(b []byte) []byte { b[18], b[19] = 0x05, 0xdc; return b }), xdpDrop, nil},
		{"truncated ipv6 header", good6[:14+30], xdpDrop, nil},
		{"truncated extension header", ext6(t, "2001:db8::1", layers.IPProtocolIPv6HopByHop, nil)[:14+40+1], xdpDrop, nil},
		{"truncated vlan tag", vlan(t, "198.51.100.1", layers.EthernetTypeDot1Q)[:16], xdpDrop, nil},
	}
	// The payload length of a cut packet must still fit, or the length check fires first.
	cases[8].input = mutate(cases[8].input, func(b []byte) []byte { b[18], b[19] = 0, 1; return b })
	runGolden(t, d, cases)
	after, err := d.stats.Drops()
	must(t, err)
	if got := after[maps.DropMalformed].Packets - before[maps.DropMalformed].Packets; got != uint64(len(cases)) {
		t.Errorf("malformed drops counted %d, want %d", got, len(cases))
	}
}

func TestCountersShowWhatWasDroppedAndWhy(t *testing.T) {
	d := load(t)
	must(t, d.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1 << 3}))
	d.lists(t, 3, "10.0.0.0/8")
	dropped, passed := udp4(t, "10.1.1.1"), udp4(t, "198.51.100.1")
	for i := 0; i < 3; i++ {
		d.run(t, dropped)
	}
	d.run(t, passed)
	lists, err := d.stats.Lists()
	must(t, err)
	if lists[3].Packets != 3 || lists[3].Bytes != uint64(3*len(dropped)) {
		t.Errorf("list 3 counted %+v, want 3 packets, %d bytes", lists[3], 3*len(dropped))
	}
	drops, err := d.stats.Drops()
	must(t, err)
	if drops[maps.DropACLDeny].Packets != 3 {
		t.Errorf("acl_deny drops %d, want 3", drops[maps.DropACLDeny].Packets)
	}
	// prog.Run runs the program as if received on the loopback device (ifindex 1).
	iface, err := d.stats.Iface(1)
	must(t, err)
	if iface[maps.VerdictDrop].Packets != 3 || iface[maps.VerdictPass].Packets != 1 || iface[maps.VerdictPass].Bytes != uint64(len(passed)) {
		t.Errorf("interface counters drop %+v pass %+v", iface[maps.VerdictDrop], iface[maps.VerdictPass])
	}
}

func TestListChangeTakesEffectOnNextPacket(t *testing.T) {
	d := load(t)
	must(t, d.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1}))
	pkt := udp4(t, "10.1.1.1")
	if v, _ := d.run(t, pkt); v != xdpPass {
		t.Fatalf("verdict %d before the list, want pass", v)
	}
	d.lists(t, 0, "10.1.1.1/32")
	if v, _ := d.run(t, pkt); v != xdpDrop {
		t.Fatalf("verdict %d after adding, want drop", v)
	}
	if _, err := d.acl.Patch(0, nil, []netip.Prefix{netip.MustParsePrefix("10.1.1.1/32")}); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.run(t, pkt); v != xdpPass {
		t.Fatalf("verdict %d after removing, want pass", v)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestACLVerdictsMatchTheUnionRule runs packets from addresses in and around
// random lists through the program after every change, in both modes, and
// compares each verdict with the one the lists' union gives: through the
// IPv4 index (whole /24s, hosts, /24s with a /30 that go to the trie), the
// IPv6 tries, protect prefixes, replace, patch and remove; a full bucket of
// hosts (some left to the trie) included. Drops are counted per list.
func TestACLVerdictsMatchTheUnionRule(t *testing.T) {
	d := load(t)
	r := rand.New(rand.NewPCG(3, 5))
	crowd := sameBucket(netip.MustParseAddr("10.2.0.7"), 12)
	randPrefix := func() netip.Prefix {
		if r.IntN(3) == 0 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(3)), 15: byte(r.IntN(4))})
			return netip.PrefixFrom(a, []int{32, 48, 120, 128}[r.IntN(4)]).Masked()
		}
		if r.IntN(4) == 0 {
			return netip.PrefixFrom(crowd[r.IntN(len(crowd))], 32)
		}
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(4))})
		return netip.PrefixFrom(a, []int{8, 16, 24, 30, 32}[r.IntN(5)]).Masked()
	}
	var probes []netip.Addr
	for b := range 4 {
		for c := range 4 {
			for _, x := range []byte{0, 1, 3, 200} {
				probes = append(probes, netip.AddrFrom4([4]byte{10, byte(b), byte(c), x}))
			}
			probes = append(probes, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(b), 15: byte(c)}))
		}
	}
	probes = append(probes, crowd...)
	lists := map[maps.ListID]map[netip.Prefix]bool{}
	maskOf := func(a netip.Addr) uint64 {
		var m uint64
		for id, set := range lists {
			for p := range set {
				if p.Contains(a) {
					m |= id.Bit()
				}
			}
		}
		return m
	}
	policies := []maps.Policy{
		{Mode: maps.PolicyDeny, DenyLists: 0b011, AllowLists: 0b100},
		{Mode: maps.PolicyAllow, DenyLists: 0b001, AllowLists: 0b110},
	}
	for step := 0; step < 40; step++ {
		id := maps.ListID(r.IntN(3))
		if r.IntN(8) == 0 {
			id = maps.ProtectList
		}
		if lists[id] == nil {
			lists[id] = map[netip.Prefix]bool{}
		}
		var add, remove []netip.Prefix
		for n := r.IntN(10); n > 0; n-- {
			add = append(add, randPrefix())
		}
		for n := r.IntN(5); n > 0; n-- {
			remove = append(remove, randPrefix())
		}
		var err error
		switch r.IntN(4) {
		case 0:
			_, err = d.acl.Replace(id, add)
			lists[id], remove = map[netip.Prefix]bool{}, nil
		case 1:
			_, err = d.acl.Remove(id)
			lists[id], add, remove = map[netip.Prefix]bool{}, nil, nil
		default:
			_, err = d.acl.Patch(id, add, remove)
		}
		must(t, err)
		for _, p := range remove {
			delete(lists[id], p)
		}
		for _, p := range add {
			lists[id][p] = true
		}
		pol := policies[step%2]
		must(t, d.policy.SetPolicy(pol))
		before, err := d.stats.Lists()
		must(t, err)
		var want [maps.MaxLists + 1]uint64
		for _, a := range probes {
			m := maskOf(a)
			wantVerdict := aclVerdict(pol, m)
			if got, _ := d.run(t, udp4or6(t, a)); got != wantVerdict {
				t.Fatalf("step %d: %s (lists %#x) under %+v: verdict %d, want %d", step, a, m, pol, got, wantVerdict)
			}
			if deny := m & pol.DenyLists; wantVerdict == xdpDrop && deny != 0 {
				for l := range want {
					if deny>>l&1 != 0 {
						want[l]++
					}
				}
			}
		}
		after, err := d.stats.Lists()
		must(t, err)
		for l := range want {
			if got := after[l].Packets - before[l].Packets; got != want[l] {
				t.Fatalf("step %d: list %d counted %d drops, want %d", step, l, got, want[l])
			}
		}
	}
}

// aclVerdict is what acl_stage decides for a UDP source with lists m.
func aclVerdict(pol maps.Policy, m uint64) int {
	switch {
	case m&maps.ProtectList.Bit() != 0:
		return xdpPass
	case pol.Mode == maps.PolicyAllow && (m&pol.DenyLists != 0 || m&pol.AllowLists == 0):
		return xdpDrop
	case pol.Mode == maps.PolicyDeny && m&pol.DenyLists != 0 && m&pol.AllowLists == 0:
		return xdpDrop
	}
	return xdpPass
}

func udp4or6(t testing.TB, a netip.Addr) []byte {
	if a.Is4() {
		return udp4(t, a.String())
	}
	return udp6(t, a.String())
}

// sameBucket returns n IPv4 addresses from start on whose hosts share one
// bucket of the index (acl_bucket in acl.h): more than it holds.
func sameBucket(start netip.Addr, n int) []netip.Addr {
	b := start.As4()
	first := binary.BigEndian.Uint32(b[:])
	bucket := func(a uint32) uint32 { return (a * 0x9e3779b1) >> (32 - 18) }
	out := []netip.Addr{start}
	for a := first + 1; len(out) < n; a++ {
		if bucket(a) == bucket(first) {
			binary.BigEndian.PutUint32(b[:], a)
			out = append(out, netip.AddrFrom4(b))
		}
	}
	return out
}
