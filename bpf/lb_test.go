package bpf_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
)

const (
	xdpTX = 3
	// prog.Run runs the program as if received on the loopback device.
	loIfindex = 1
)

var (
	lbMAC   = net.HardwareAddr{0x02, 0x1b, 0, 0, 0, 1}
	vip4    = netip.MustParseAddr("203.0.113.10")
	vip6    = netip.MustParseAddr("2001:db8:ffff::10")
	client4 = netip.MustParseAddr("198.51.100.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")
	encap4  = netip.MustParsePrefix("192.0.2.0/24")
	encap6  = netip.MustParsePrefix("2001:db8:e::/64")
)

// backendMAC is the next hop the fake resolver gives each backend: its last byte.
func backendMAC(a netip.Addr) net.HardwareAddr {
	s := a.AsSlice()
	return net.HardwareAddr{0x02, 0xbe, 0, 0, 0, s[len(s)-1]}
}

type lbPath struct {
	*datapath
	lb  *maps.LB
	rec *l4.Reconciler
}

func loadLB(t testing.TB, edits ...func(*ebpf.CollectionSpec)) *lbPath {
	t.Helper()
	d := load(t, edits...)
	lb, err := maps.NewLB(&d.objs)
	must(t, err)
	rec, err := l4.NewReconciler(lb, func(a netip.Addr) (l4.NextHop, error) {
		return l4.NextHop{MAC: backendMAC(a)}, nil
	})
	must(t, err)
	must(t, lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, EncapSrc6: encap6, UDPTimeout: time.Minute}))
	must(t, lb.SetIface(loIfindex, lbMAC, 1500))
	return &lbPath{datapath: d, lb: lb, rec: rec}
}

func service(name string, vip netip.Addr, port uint16, mode l4.Mode, backends ...string) l4.Service {
	s := l4.Service{Name: name, VIP: vip, Port: port, Proto: l4.TCP, Mode: mode, TableSize: 251}
	for _, b := range backends {
		s.Backends = append(s.Backends, l4.Backend{Addr: netip.MustParseAddr(b), Weight: 100})
	}
	return s
}

// runOut runs the program and returns the verdict and the whole output
// frame, which encapsulation makes longer and ICMP errors shorter.
func (d *datapath) runOut(t *testing.T, pkt []byte) (int, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256)}
	ret, err := d.objs.SluiceXdp.Run(opts)
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return int(ret), opts.DataOut
}

func expectFrame(t *testing.T, name string, verdict, wantVerdict int, got, want []byte) {
	t.Helper()
	if verdict != wantVerdict || !bytes.Equal(got, want) {
		t.Errorf("%s: verdict %d, want %d\nexpected: %s\nactual:   %s", name, verdict, wantVerdict,
			hex.EncodeToString(want), hex.EncodeToString(got))
	}
}

func tcp4(t testing.TB, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, size int, df bool) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 61, TOS: 0x28, Id: 7, Protocol: layers.IPProtocolTCP,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 1, Window: 64240}
	_ = tc.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv4), ip, tc, gopacket.Payload(make([]byte, size)))
}

// udpPacket4 is an IPv4 UDP packet of the flow src:sport → dst:dport.
func udpPacket4(t testing.TB, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv4), ip, u, payload())
}

func tcp6(t testing.TB, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, size int) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 61, TrafficClass: 0x28, NextHeader: layers.IPProtocolTCP,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 1, Window: 64240}
	_ = tc.SetNetworkLayerForChecksum(ip)
	return serialize(t, ether(layers.EthernetTypeIPv6), ip, tc, gopacket.Payload(make([]byte, size)))
}

func flow(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) l4.Flow {
	return l4.Flow{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: 6}
}

// hostBits puts the low bits of hash into the host part of a prefix.
func hostBits(p netip.Prefix, hash uint32) netip.Addr {
	b := p.Addr().AsSlice()
	host := uint32(0xffffffff)
	if hb := len(b)*8 - p.Bits(); hb < 32 {
		host = 1<<hb - 1
	}
	last := binary.BigEndian.Uint32(b[len(b)-4:])
	binary.BigEndian.PutUint32(b[len(b)-4:], last&^host|hash&host)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// ipip is the frame dsr-ipip makes of pkt (an IPv4 frame with l2 bytes of
// Ethernet and tags) for backend be and flow hash h.
func ipip(t *testing.T, pkt []byte, l2 int, be netip.Addr, h uint32) []byte {
	inner := pkt[l2:]
	outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, TOS: inner[1], Protocol: layers.IPProtocolIPv4,
		Flags: layers.IPv4Flag(inner[6] >> 5 & 0x2), SrcIP: hostBits(encap4, h).AsSlice(), DstIP: be.AsSlice()}
	frame := append([]byte(nil), pkt[:l2]...)
	copy(frame[0:6], backendMAC(be))
	copy(frame[6:12], lbMAC)
	return append(frame, serialize(t, outer, gopacket.Payload(inner))...)
}

// ip6ip6 is the frame dsr-ipip makes of pkt (an IPv6 frame with l2 bytes
// of Ethernet and tags) for backend be and flow hash h.
func ip6ip6(t *testing.T, pkt []byte, l2 int, be netip.Addr, h uint32) []byte {
	inner := pkt[l2:]
	outer := &layers.IPv6{Version: 6, HopLimit: 64, TrafficClass: 0x28, FlowLabel: h & 0xfffff,
		NextHeader: layers.IPProtocolIPv6, SrcIP: hostBits(encap6, h).AsSlice(), DstIP: be.AsSlice()}
	o := serialize(t, outer, gopacket.Payload(inner))
	frame := append([]byte(nil), pkt[:l2]...)
	copy(frame[0:6], backendMAC(be))
	copy(frame[6:12], lbMAC)
	return append(frame, o...)
}

// backendOf is the backend the service's Maglev table gives the flow.
func (p *lbPath) backendOf(t *testing.T, name string, f l4.Flow) netip.Addr {
	t.Helper()
	id, ids, ok := p.rec.IDs(name)
	if !ok {
		t.Fatalf("no service %s", name)
	}
	table, err := p.lb.Table(id)
	must(t, err)
	bid := table[l4.FlowHash(f, l4.Hash5Tuple)%uint32(len(table))]
	for a, i := range ids {
		if i == bid {
			return a
		}
	}
	t.Fatalf("slot names backend id %d, not one of %v", bid, ids)
	return netip.Addr{}
}

func TestEncapsulationBytes(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11", "10.1.0.12", "10.1.0.13")))
	must(t, p.rec.Set(service("web6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:1::11", "2001:db8:1::12")))

	f := flow(client4, 40001, vip4, 443)
	pkt := tcp4(t, client4, 40001, vip4, 443, 100, true)
	v, out := p.runOut(t, pkt)
	expectFrame(t, "ipip", v, xdpTX, out, ipip(t, pkt, 14, p.backendOf(t, "web", f), l4.TunnelHash(f)))

	// Not DF, and inside one VLAN tag and two: the tags stay, the outer header follows them.
	f = flow(client4, 40002, vip4, 443)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 61, Protocol: layers.IPProtocolTCP, SrcIP: client4.AsSlice(), DstIP: vip4.AsSlice()}
	tc := &layers.TCP{SrcPort: 40002, DstPort: 443, ACK: true}
	_ = tc.SetNetworkLayerForChecksum(ip)
	for tags := 1; tags <= 2; tags++ {
		ls := []gopacket.SerializableLayer{ether(layers.EthernetTypeDot1Q)}
		for i := range tags {
			next := layers.EthernetTypeIPv4
			if i+1 < tags {
				next = layers.EthernetTypeDot1Q
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
		}
		tagged := serialize(t, append(ls, ip, tc, payload())...)
		v, out = p.runOut(t, tagged)
		expectFrame(t, "ipip vlan", v, xdpTX, out, ipip(t, tagged, 14+4*tags, p.backendOf(t, "web", f), l4.TunnelHash(f)))
	}

	f = flow(client6, 40003, vip6, 443)
	pkt = tcp6(t, client6, 40003, vip6, 443, 100)
	v, out = p.runOut(t, pkt)
	expectFrame(t, "ip6ip6", v, xdpTX, out, ip6ip6(t, pkt, 14, p.backendOf(t, "web6", f), l4.TunnelHash(f)))

	// IPv6 inside a VLAN tag: the tag stays, the outer header follows it.
	f = flow(client6, 40004, vip6, 443)
	ip6 := &layers.IPv6{Version: 6, HopLimit: 61, TrafficClass: 0x28, NextHeader: layers.IPProtocolTCP, SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
	tc6 := &layers.TCP{SrcPort: 40004, DstPort: 443, SYN: true, Seq: 1, Window: 64240}
	_ = tc6.SetNetworkLayerForChecksum(ip6)
	tagged6 := serialize(t, ether(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeIPv6}, ip6, tc6, payload())
	v, out = p.runOut(t, tagged6)
	expectFrame(t, "ip6ip6 vlan", v, xdpTX, out, ip6ip6(t, tagged6, 18, p.backendOf(t, "web6", f), l4.TunnelHash(f)))

	// The next packet of a flow, from the CPU's flow cache, comes out the same.
	onCPU(t, 0, func() {
		for _, c := range []struct {
			name string
			pkt  []byte
		}{{"ipip", tcp4(t, client4, 40010, vip4, 443, 100, true)}, {"ip6ip6", tcp6(t, client6, 40010, vip6, 443, 100)}} {
			_, first := p.runOut(t, c.pkt)
			s0 := p.flowStats(t)
			v, out := p.runOut(t, c.pkt)
			expectFrame(t, c.name+" from the cache", v, xdpTX, out, first)
			if s1 := p.flowStats(t); s1.CacheHits != s0.CacheHits+1 {
				t.Errorf("%s: the flow's next packet did not come from the cache (cache hits %d → %d)", c.name, s0.CacheHits, s1.CacheHits)
			}
		}
	})

	// dsr-l2: only the MACs change.
	must(t, p.rec.Set(service("l2", vip4, 80, l4.ModeDSRL2, "10.1.0.21")))
	pkt = tcp4(t, client4, 40004, vip4, 80, 10, false)
	want := append([]byte(nil), pkt...)
	copy(want[0:6], backendMAC(netip.MustParseAddr("10.1.0.21")))
	copy(want[6:12], lbMAC)
	v, out = p.runOut(t, pkt)
	expectFrame(t, "dsr-l2", v, xdpTX, out, want)

	// Another port, another VIP: the stack's.
	for _, other := range [][]byte{tcp4(t, client4, 40005, vip4, 22, 10, false), tcp4(t, client4, 40005, client4, 443, 10, false)} {
		v, out = p.runOut(t, other)
		expectFrame(t, "not a service", v, xdpPass, out, other)
	}
}

func TestPortZeroServiceTakesEveryPort(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("all", vip4, 0, l4.ModeDSRL2, "10.1.0.31")))
	must(t, p.rec.Set(service("ssh", vip4, 22, l4.ModeDSRL2, "10.1.0.32")))
	for port, be := range map[uint16]string{22: "10.1.0.32", 443: "10.1.0.31", 8080: "10.1.0.31"} {
		_, out := p.runOut(t, tcp4(t, client4, 40000, vip4, port, 10, false))
		if got := net.HardwareAddr(out[0:6]); got.String() != backendMAC(netip.MustParseAddr(be)).String() {
			t.Errorf("port %d went to %s, want %s's", port, got, be)
		}
	}
}

// findFlow returns a client port whose flow the predicate accepts.
func findFlow(t *testing.T, accept func(l4.Flow) bool) (uint16, l4.Flow) {
	t.Helper()
	for port := uint16(50000); port < 60000; port++ {
		if f := flow(client4, port, vip4, 443); accept(f) {
			return port, f
		}
	}
	t.Fatal("no flow found")
	return 0, l4.Flow{}
}

func (p *lbPath) sentTo(t *testing.T, port uint16) netip.Addr {
	t.Helper()
	v, out := p.runOut(t, tcp4(t, client4, port, vip4, 443, 10, false))
	if v != xdpTX || len(out) < 34 {
		t.Fatalf("verdict %d, frame %x", v, out)
	}
	a, _ := netip.AddrFromSlice(out[30:34]) // the outer destination
	return a
}

// flowStats reads the connection table's counters.
func (p *lbPath) flowStats(t *testing.T) maps.FlowStats {
	t.Helper()
	s, err := p.lb.FlowStats()
	must(t, err)
	return s
}

func TestConnectionTableKeepsFlowsAcrossChanges(t *testing.T) {
	p := loadLB(t)
	a, b, c := "10.1.0.11", "10.1.0.12", "10.1.0.13"
	svc := service("web", vip4, 443, l4.ModeDSRIPIP, a, b)
	must(t, p.rec.Set(svc))

	// A flow on a, which a new table with c would send to c.
	withC := service("web", vip4, 443, l4.ModeDSRIPIP, a, b, c)
	tableNow := func(f l4.Flow) netip.Addr { return p.backendOf(t, "web", f) }
	var moved []uint16
	for port := uint16(10000); port < 10400; port++ {
		if tableNow(flow(client4, port, vip4, 443)).String() == a {
			moved = append(moved, port)
		}
	}
	for _, port := range moved {
		if got := p.sentTo(t, port); got.String() != a {
			t.Fatalf("flow %d went to %s, want %s", port, got, a)
		}
	}
	must(t, p.rec.Set(withC))
	kept := 0
	for _, port := range moved {
		f := flow(client4, port, vip4, 443)
		if tableNow(f).String() != a {
			kept++
			if got := p.sentTo(t, port); got.String() != a {
				t.Errorf("established flow %d moved to %s after a backend was added", port, got)
			}
		}
	}
	if kept == 0 {
		t.Fatal("no flow's slot moved: the test proves nothing")
	}
	// A new flow follows the new table.
	port, f := findFlow(t, func(f l4.Flow) bool { return tableNow(f).String() == c })
	if got := p.sentTo(t, port); got.String() != c {
		t.Errorf("new flow %v went to %s, want %s", f, got, c)
	}

	// Weight 0 and drain: a's flows stay, new flows never reach it.
	keepsFlowsTakesNoNew := func(what string, change func(*l4.Backend), newPorts uint16) l4.Service {
		t.Helper()
		s := withC
		s.Backends = append([]l4.Backend(nil), withC.Backends...)
		change(&s.Backends[0])
		must(t, p.rec.Set(s))
		if got := p.sentTo(t, moved[0]); got.String() != a {
			t.Errorf("flow on a backend %s moved to %s", what, got)
		}
		for port := newPorts; port < newPorts+200; port++ {
			if got := p.sentTo(t, port); got.String() == a {
				t.Fatalf("new flow %d went to the backend %s", port, what)
			}
		}
		return s
	}
	keepsFlowsTakesNoNew("of weight 0", func(b *l4.Backend) { b.Weight = 0 }, 20000)
	drained := keepsFlowsTakesNoNew("drained", func(b *l4.Backend) { b.State = l4.Drain }, 30000)

	// Down: its flows rehash to the table.
	down := drained
	down.Backends = append([]l4.Backend(nil), drained.Backends...)
	down.Backends[0].State = l4.Down
	must(t, p.rec.Set(down))
	if got := p.sentTo(t, moved[0]); got.String() == a {
		t.Errorf("flow stayed on a backend that is down")
	}

	// Removing a backend breaks no flow of the others.
	port, _ = findFlow(t, func(f l4.Flow) bool { return tableNow(f).String() == b })
	if got := p.sentTo(t, port); got.String() != b {
		t.Fatalf("flow went to %s, want %s", got, b)
	}
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, b, c)))
	if got := p.sentTo(t, port); got.String() != b {
		t.Errorf("removing a backend moved a flow of another to %s", got)
	}
}

func TestFlowOffADownBackendStaysOnItsNewBackend(t *testing.T) {
	p := loadLB(t)
	a, b := "10.1.0.11", "10.1.0.12"
	svc := service("web", vip4, 443, l4.ModeDSRIPIP, a, b)
	must(t, p.rec.Set(svc))
	port, _ := findFlow(t, func(f l4.Flow) bool { return p.backendOf(t, "web", f).String() == a })
	if got := p.sentTo(t, port); got.String() != a {
		t.Fatalf("flow went to %s, want %s", got, a)
	}

	// a goes down: the flow misses, rehashes to b, and its entry says b.
	down := svc
	down.Backends = append([]l4.Backend(nil), svc.Backends...)
	down.Backends[0].State = l4.Down
	must(t, p.rec.Set(down))
	s0 := p.flowStats(t)
	if got := p.sentTo(t, port); got.String() != b {
		t.Fatalf("flow off a down backend went to %s, want %s", got, b)
	}
	s1 := p.flowStats(t)
	if s1.Misses != s0.Misses+1 || s1.Hits != s0.Hits {
		t.Errorf("rehash of a flow off a down backend: hits %d → %d, misses %d → %d, want one miss", s0.Hits, s1.Hits, s0.Misses, s1.Misses)
	}
	if got := p.sentTo(t, port); got.String() != b {
		t.Fatalf("next packet went to %s, want %s", got, b)
	}
	s2 := p.flowStats(t)
	if s2.Hits != s1.Hits+1 || s2.Misses != s1.Misses {
		t.Errorf("next packet: hits %d → %d, misses %d → %d, want one hit", s1.Hits, s2.Hits, s1.Misses, s2.Misses)
	}

	// a is back: the established flow keeps b, the backend its entry names.
	must(t, p.rec.Set(svc))
	if got := p.sentTo(t, port); got.String() != b {
		t.Errorf("flow moved back to %s when a came up, want it to stay on %s", got, b)
	}
}

func TestNoBackendDrops(t *testing.T) {
	p := loadLB(t)
	svc := service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11")
	svc.Backends[0].State = l4.Down
	must(t, p.rec.Set(svc))
	before, err := p.stats.Drops()
	must(t, err)
	pkt := tcp4(t, client4, 1, vip4, 443, 10, false)
	v, out := p.runOut(t, pkt)
	expectFrame(t, "no backend", v, xdpDrop, out, pkt)
	after, err := p.stats.Drops()
	must(t, err)
	if after[maps.DropLBNoBackend].Packets != before[maps.DropLBNoBackend].Packets+1 {
		t.Errorf("lb_no_backend drops %d → %d, want one more", before[maps.DropLBNoBackend].Packets, after[maps.DropLBNoBackend].Packets)
	}
}

func TestUDPFlowsIdleOut(t *testing.T) {
	p := loadLB(t)
	svc := service("dns", vip4, 53, l4.ModeDSRL2, "10.1.0.41")
	svc.Proto = l4.UDP
	must(t, p.rec.Set(svc))
	pkt := udpPacket4(t, client4, 5353, vip4, 53)

	misses := func() uint64 { return p.flowStats(t).Misses }
	p.runOut(t, pkt)
	m := misses()
	p.runOut(t, pkt)
	if misses() != m {
		t.Fatalf("second packet of a fresh UDP flow missed the connection table")
	}
	must(t, p.lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, UDPTimeout: time.Nanosecond}))
	time.Sleep(time.Millisecond)
	if v, _ := p.runOut(t, pkt); v != xdpTX || misses() != m+1 {
		t.Errorf("an idle UDP flow kept its entry (verdict %d, misses %d → %d)", v, m, misses())
	}

	// A timeout of 100 ms or more is timed with the coarse clock, which
	// lags the fine one (the last stamp) by up to a tick.
	must(t, p.lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, UDPTimeout: 100 * time.Millisecond}))
	m = misses()
	p.runOut(t, pkt)
	p.runOut(t, pkt)
	if misses() != m {
		t.Fatalf("a fresh UDP flow missed the connection table with a 100 ms timeout (misses %d → %d)", m, misses())
	}
	time.Sleep(150 * time.Millisecond)
	if v, _ := p.runOut(t, pkt); v != xdpTX || misses() != m+1 {
		t.Errorf("a UDP flow idle for 150 ms kept its entry with a 100 ms timeout (verdict %d, misses %d → %d)", v, m, misses())
	}

	// A flow that keeps sending keeps its entry past the timeout: its last
	// packet's time is refreshed (at most once a second).
	must(t, p.lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, UDPTimeout: 1500 * time.Millisecond}))
	p.runOut(t, pkt)
	m = misses()
	for range 10 { // 3 s, twice the timeout
		time.Sleep(300 * time.Millisecond)
		p.runOut(t, pkt)
	}
	if misses() != m {
		t.Errorf("a UDP flow sending every 300 ms lost its entry with a 1.5 s timeout (misses %d → %d)", m, misses())
	}
}

// A UDP flow that keeps sending keeps its entry with a timeout of a second:
// its last-seen time is refreshed every quarter of the timeout, where a
// refresh once a second took it for idle at every refresh.
func TestUDPFlowSendingKeepsAShortTimeout(t *testing.T) {
	p := loadLB(t)
	svc := service("dns", vip4, 53, l4.ModeDSRL2, "10.1.0.41")
	svc.Proto = l4.UDP
	must(t, p.rec.Set(svc))
	must(t, p.lb.SetSettings(maps.LBSettings{EncapSrc4: encap4, UDPTimeout: time.Second}))
	pkt := udpPacket4(t, client4, 5353, vip4, 53)
	// A gap of 750 ms (the timeout less a quarter) would be a real idle
	// time: a run with one over 500 ms (a loaded machine) is run again.
	for attempt := 0; attempt < 3; attempt++ {
		p.runOut(t, pkt)
		s0 := p.flowStats(t)
		var longest time.Duration
		last := time.Now()
		for range 50 { // 2.5 s
			time.Sleep(50 * time.Millisecond)
			p.runOut(t, pkt)
			now := time.Now()
			longest = max(longest, now.Sub(last))
			last = now
		}
		if longest > 500*time.Millisecond {
			continue
		}
		if s1 := p.flowStats(t); s1.Misses != s0.Misses {
			t.Errorf("a UDP flow sending every 50 ms lost its entry %d times in 2.5 s with a 1 s timeout", s1.Misses-s0.Misses)
		}
		return
	}
	t.Fatal("the machine never sent 50 packets with gaps under 500 ms")
}

func TestCountersPerServiceAndBackend(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRL2, "10.1.0.11")))
	pkt := tcp4(t, client4, 1000, vip4, 443, 10, false)
	for range 3 {
		p.runOut(t, pkt)
	}
	p.runOut(t, tcp4(t, client4, 1001, vip4, 443, 10, false))
	id, ids, _ := p.rec.IDs("web")
	sc, err := p.lb.ServiceStats(id)
	must(t, err)
	bc, err := p.lb.BackendStats(ids[netip.MustParseAddr("10.1.0.11")])
	must(t, err)
	want := maps.LBCounter{Packets: 4, Bytes: uint64(4 * len(pkt)), NewFlows: 2}
	if sc != want || bc != want {
		t.Errorf("service counted %+v, backend %+v, want %+v", sc, bc, want)
	}
	n, err := p.lb.Flows()
	must(t, err)
	if n != 2 {
		t.Errorf("connection table holds %d flows, want 2", n)
	}
}

func TestEchoRepliesForVIPs(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11")))
	must(t, p.rec.Set(service("web6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:1::11")))

	echo4 := func(src, dst netip.Addr, typ uint8, ttl uint8, swap bool) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Id: 9, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		e := ether(layers.EthernetTypeIPv4)
		if swap {
			e = &layers.Ethernet{SrcMAC: dstMAC, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv4}
		}
		return serialize(t, e, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 77, Seq: 3}, payload())
	}
	v, out := p.runOut(t, echo4(client4, vip4, layers.ICMPv4TypeEchoRequest, 55, false))
	expectFrame(t, "echo", v, xdpTX, out, echo4(vip4, client4, layers.ICMPv4TypeEchoReply, 64, true))

	echo6 := func(src, dst netip.Addr, typ uint8, hop uint8, swap bool) []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: hop, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		_ = ic.SetNetworkLayerForChecksum(ip)
		e := ether(layers.EthernetTypeIPv6)
		if swap {
			e = &layers.Ethernet{SrcMAC: dstMAC, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv6}
		}
		return serialize(t, e, ip, ic, &layers.ICMPv6Echo{Identifier: 77, SeqNumber: 3}, payload())
	}
	v, out = p.runOut(t, echo6(client6, vip6, layers.ICMPv6TypeEchoRequest, 55, false))
	expectFrame(t, "echo6", v, xdpTX, out, echo6(vip6, client6, layers.ICMPv6TypeEchoReply, 64, true))

	// Not a VIP: the stack answers, or not.
	other := echo4(client4, netip.MustParseAddr("203.0.113.99"), layers.ICMPv4TypeEchoRequest, 55, false)
	v, out = p.runOut(t, other)
	expectFrame(t, "echo to another address", v, xdpPass, out, other)

	// Requests the program does not answer in place go to the stack as
	// they came: a fragment, a header checksum that is wrong, IPv4
	// options, IPv6 extension headers.
	req4 := func(change func(*layers.IPv4)) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 55, Protocol: layers.IPProtocolICMPv4, SrcIP: client4.AsSlice(), DstIP: vip4.AsSlice()}
		change(ip)
		return serialize(t, ether(layers.EthernetTypeIPv4), ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0)}, payload())
	}
	hopByHop := func() []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 55, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		_ = ic.SetNetworkLayerForChecksum(ip)
		hop := &layers.IPv6HopByHop{}
		hop.NextHeader = layers.IPProtocolICMPv6
		hop.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
		return serialize(t, ether(layers.EthernetTypeIPv6), ip, hop, ic, &layers.ICMPv6Echo{Identifier: 77, SeqNumber: 3}, payload())
	}
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"a first fragment", req4(func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments })},
		{"a later fragment", req4(func(ip *layers.IPv4) { ip.FragOffset = 185 })},
		{"a bad header checksum", mutate(req4(func(*layers.IPv4) {}), func(b []byte) []byte { b[24] ^= 0xff; return b })},
		{"IPv4 options", req4(func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		})},
		{"an IPv6 extension header", hopByHop()},
	} {
		v, out := p.runOut(t, c.pkt)
		expectFrame(t, "echo in "+c.name, v, xdpPass, out, c.pkt)
	}
}

func TestTooBigForTheTunnelAnswersICMP(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11")))
	must(t, p.rec.Set(service("web6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:1::11")))
	must(t, p.lb.SetIface(loIfindex, lbMAC, 1400))

	// 1400 bytes of IPv4 need 1420 in the tunnel: DF gets "fragmentation needed", MTU 1380.
	pkt := tcp4(t, client4, 2000, vip4, 443, 1400-40, true)
	quote := pkt[14 : 14+20+8]
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: vip4.AsSlice(), DstIP: client4.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded),
		Seq: 1380}
	want := serialize(t, &layers.Ethernet{SrcMAC: dstMAC, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv4}, ip, icmp, gopacket.Payload(quote))
	v, out := p.runOut(t, pkt)
	expectFrame(t, "frag needed", v, xdpTX, out, want)

	// Without DF it cannot be sent whole, and XDP cannot fragment.
	pkt = tcp4(t, client4, 2001, vip4, 443, 1400-40, false)
	v, _ = p.runOut(t, pkt)
	if v != xdpDrop {
		t.Errorf("oversized non-DF packet: verdict %d, want drop", v)
	}
	// One byte less fits.
	pkt = tcp4(t, client4, 2002, vip4, 443, 1400-41, true)
	if v, _ = p.runOut(t, pkt); v != xdpTX {
		t.Errorf("packet that fits: verdict %d, want tx", v)
	}

	// IPv6: 1361 + 40 > 1400 → packet too big, MTU 1360.
	pkt = tcp6(t, client6, 2003, vip6, 443, 1361-60)
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: vip6.AsSlice(), DstIP: client6.AsSlice()}
	ic6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	_ = ic6.SetNetworkLayerForChecksum(ip6)
	body := binary.BigEndian.AppendUint32(nil, 1360)
	want = serialize(t, &layers.Ethernet{SrcMAC: dstMAC, DstMAC: srcMAC, EthernetType: layers.EthernetTypeIPv6}, ip6, ic6,
		gopacket.Payload(append(body, pkt[14:14+48]...)))
	v, out = p.runOut(t, pkt)
	expectFrame(t, "packet too big", v, xdpTX, out, want)
}

func TestICMPErrorsGoToTheFlowsBackend(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11", "10.1.0.12", "10.1.0.13")))
	f := flow(client4, 45000, vip4, 443)
	owner := p.sentTo(t, 45000)
	if owner != p.backendOf(t, "web", f) {
		t.Fatalf("flow went to %s, table says %s", owner, p.backendOf(t, "web", f))
	}
	// A router on the way back to the client could not forward the
	// backend's reply (VIP:443 → client:45000) and tells the VIP.
	reply := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: vip4.AsSlice(), DstIP: client4.AsSlice(),
		Length: 1500}
	rt := &layers.TCP{SrcPort: 443, DstPort: 45000, ACK: true}
	_ = rt.SetNetworkLayerForChecksum(reply)
	rb := serialize(t, reply, rt)
	router := netip.MustParseAddr("198.51.100.1")
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: router.AsSlice(), DstIP: vip4.AsSlice()}
	pkt := serialize(t, ether(layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded), Seq: 1400},
		gopacket.Payload(rb[:28]))
	flowsBefore, err := p.lb.Flows()
	must(t, err)
	v, out := p.runOut(t, pkt)
	expectFrame(t, "icmp error", v, xdpTX, out, ipip(t, pkt, 14, owner, l4.TunnelHash(f)))
	if n, _ := p.lb.Flows(); n != flowsBefore {
		t.Errorf("an ICMP error made a connection-table entry (%d → %d)", flowsBefore, n)
	}
	if s, _ := p.lb.FlowStats(); s.ICMPRouted != 1 {
		t.Errorf("icmp_routed = %d, want 1", s.ICMPRouted)
	}
}

func TestACLRunsBeforeServices(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11")))
	must(t, p.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1}))
	p.lists(t, 0, client4.String()+"/32")
	pkt := tcp4(t, client4, 1, vip4, 443, 10, false)
	v, out := p.runOut(t, pkt)
	expectFrame(t, "denied client to a VIP", v, xdpDrop, out, pkt)
}

func TestDecapRestoresTheClientsPacket(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11")))
	must(t, p.rec.Set(service("web6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:1::11")))
	var objs bpf.DecapObjects
	must(t, bpf.LoadDecapObjects(&objs, nil))
	defer objs.Close()
	decap := func(pkt []byte) (int, []byte) {
		opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256)}
		ret, err := objs.SluiceDecap.Run(opts)
		must(t, err)
		return int(ret), opts.DataOut
	}
	must(t, objs.DecapVips.Put(decapKey(vip4), uint32(1)))

	for _, pkt := range [][]byte{tcp4(t, client4, 3000, vip4, 443, 50, true), tcp6(t, client6, 3000, vip6, 443, 50)} {
		v, tunnelled := p.runOut(t, pkt)
		if v != xdpTX {
			t.Fatalf("encap verdict %d", v)
		}
		want := append(append([]byte(nil), tunnelled[:14]...), pkt[14:]...)
		dv, out := decap(tunnelled)
		if pkt[12] == 0x86 {
			// vip6 is not local yet: passed untouched.
			expectFrame(t, "decap not local", dv, xdpPass, out, tunnelled)
			must(t, objs.DecapVips.Put(decapKey(vip6), uint32(1)))
			dv, out = decap(tunnelled)
		}
		expectFrame(t, "decap", dv, xdpPass, out, want)
	}
	// Not a tunnel: untouched.
	plain := tcp4(t, client4, 3001, vip4, 443, 10, false)
	dv, out := decap(plain)
	expectFrame(t, "plain", dv, xdpPass, out, plain)
	// A tunnel whose outer header checksum is wrong: the stack drops it.
	_, tunnelled := p.runOut(t, tcp4(t, client4, 3002, vip4, 443, 10, false))
	bad := mutate(tunnelled, func(b []byte) []byte { b[24] ^= 0xff; return b })
	dv, out = decap(bad)
	expectFrame(t, "bad outer checksum", dv, xdpPass, out, bad)
}

// decapKey is a VIP's key in decap_vips.
func decapKey(a netip.Addr) bpf.XDPSvcKey {
	k := bpf.XDPSvcKey{Family: 6}
	if a.Is4() {
		k.Family = 4
		b := a.As4()
		copy(k.Addr[:], b[:])
	} else {
		k.Addr = a.As16()
	}
	return k
}

// flowKey is the connection-table key (lb_flows4) of a TCP flow from
// client4 to vip4:443 (addresses and ports in network order).
func flowKey(sport uint16) bpf.XDPFlowKey4 {
	be16 := func(v uint16) uint16 { return v>>8 | v<<8 }
	c, v := client4.As4(), vip4.As4()
	return bpf.XDPFlowKey4{Src: binary.NativeEndian.Uint32(c[:]), Dst: binary.NativeEndian.Uint32(v[:]),
		Sport: be16(sport), Dport: be16(443), Proto: 6}
}

func TestReusedServiceIDDoesNotCaptureOldFlows(t *testing.T) {
	p := loadLB(t)
	other := netip.MustParseAddr("203.0.113.20")
	a, c := netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("10.1.0.13")
	k1 := maps.ServiceKey{VIP: vip4, Port: 443, Proto: maps.ProtoTCP}
	k2 := maps.ServiceKey{VIP: other, Port: 443, Proto: maps.ProtoTCP}
	put := func(k maps.ServiceKey, id, bid uint32, be netip.Addr) {
		must(t, p.lb.PutBackend(bid, maps.BackendEntry{Addr: be, MAC: backendMAC(be), Service: id}))
		must(t, p.lb.SwapTable(id, []uint32{bid}))
		must(t, p.lb.PutService(k, maps.ServiceEntry{ID: id, TableSize: 1, Mode: bpf.XDPLbModeLB_MODE_DSR_IPIP}))
		must(t, p.lb.PutVIP(k.VIP))
	}
	put(k1, 7, 70, a)
	if got := p.sentTo(t, 1234); got != a {
		t.Fatalf("flow went to %s, want %s", got, a)
	}
	// The service goes; its id, and its backend's, go to a service on
	// another VIP. The flow's entry names both ids, but the VIP is no
	// longer the id's: the flow's packets are no service's.
	must(t, p.lb.DeleteService(k1))
	put(k2, 7, 70, a)
	pkt := tcp4(t, client4, 1234, vip4, 443, 10, false)
	if v, out := p.runOut(t, pkt); v != xdpPass {
		t.Fatalf("flow of a removed service: verdict %d, frame %x; want pass", v, out)
	}
	// A service on the first VIP again, with another id: the flow is its.
	put(k1, 8, 80, c)
	if got := p.sentTo(t, 1234); got != c {
		t.Errorf("flow of the first VIP went to %s, want %s (the reused id's backend captured it)", got, c)
	}
}

func TestEntryOfAnOlderProgramKeepsItsBackend(t *testing.T) {
	p := loadLB(t)
	a, b := "10.1.0.11", "10.1.0.12"
	must(t, p.rec.Set(service("web", vip4, 443, l4.ModeDSRIPIP, a, b)))
	port, _ := findFlow(t, func(f l4.Flow) bool { return p.backendOf(t, "web", f).String() == a })
	if got := p.sentTo(t, port); got.String() != a {
		t.Fatalf("flow went to %s, want %s", got, a)
	}
	id, ids, _ := p.rec.IDs("web")
	k := flowKey(port)
	var st bpf.XDPFlowState
	must(t, p.objs.LbFlows4.Lookup(k, &st))
	if st.Svc != id+1 {
		t.Fatalf("entry names service %d, want %d (its id + 1)", st.Svc, id+1)
	}
	// An older program left the field zero; its entry names b, which the
	// table does not give the flow: only a hit sends it there.
	st.Svc, st.Backend = 0, ids[netip.MustParseAddr(b)]
	must(t, p.objs.LbFlows4.Put(k, st))
	// As whoever writes the table does, so that no CPU's flow cache keeps a.
	must(t, p.lb.InvalidateFlowCache())
	before := p.flowStats(t)
	if got := p.sentTo(t, port); got.String() != b {
		t.Fatalf("flow with an older entry went to %s, want %s", got, b)
	}
	after := p.flowStats(t)
	if after.Hits != before.Hits+1 || after.Misses != before.Misses {
		t.Errorf("hits %d → %d, misses %d → %d, want one hit", before.Hits, after.Hits, before.Misses, after.Misses)
	}
	must(t, p.objs.LbFlows4.Lookup(k, &st))
	if st.Svc != id+1 || st.Backend != ids[netip.MustParseAddr(b)] {
		t.Errorf("entry after the hit = %+v, want service %d and backend %d", st, id+1, ids[netip.MustParseAddr(b)])
	}
}

// With hash input src-ip a client keeps its backend whatever its source
// port (client affinity), the slot is the one Go's FlowHash computes for
// that input, and clients still spread over the backends.
func TestSourceIPHashGivesClientAffinity(t *testing.T) {
	p := loadLB(t)
	svc := service("web", vip4, 443, l4.ModeDSRIPIP, "10.1.0.11", "10.1.0.12", "10.1.0.13")
	svc.HashInput = l4.HashSrcIP
	must(t, p.rec.Set(svc))
	id, ids, _ := p.rec.IDs("web")
	table, err := p.lb.Table(id)
	must(t, err)
	seen := map[netip.Addr]bool{}
	for c := range 40 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + c)})
		want := netip.Addr{}
		bid := table[l4.FlowHash(flow(client, 0, vip4, 443), l4.HashSrcIP)%uint32(len(table))]
		for a, i := range ids {
			if i == bid {
				want = a
			}
		}
		for port := uint16(40000); port < 40010; port++ {
			v, out := p.runOut(t, tcp4(t, client, port, vip4, 443, 10, false))
			if v != xdpTX || len(out) < 34 {
				t.Fatalf("verdict %d, frame %x", v, out)
			}
			got, _ := netip.AddrFromSlice(out[30:34])
			if got != want {
				t.Fatalf("client %s port %d went to %s, want %s (its source address's slot)", client, port, got, want)
			}
		}
		seen[want] = true
	}
	if len(seen) != 3 {
		t.Errorf("40 clients reached %d of 3 backends", len(seen))
	}
}

// The same for IPv6: a Packet Too Big about the backend's reply goes, in
// IP6IP6, to the backend that owns the flow.
func TestICMPv6ErrorsGoToTheFlowsBackend(t *testing.T) {
	p := loadLB(t)
	must(t, p.rec.Set(service("web6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13")))
	f := flow(client6, 45000, vip6, 443)
	owner := p.backendOf(t, "web6", f)
	v, out := p.runOut(t, tcp6(t, client6, 45000, vip6, 443, 10))
	expectFrame(t, "the flow's first packet", v, xdpTX, out, ip6ip6(t, tcp6(t, client6, 45000, vip6, 443, 10), 14, owner, l4.TunnelHash(f)))

	reply := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: vip6.AsSlice(), DstIP: client6.AsSlice(), Length: 1440}
	rt := &layers.TCP{SrcPort: 443, DstPort: 45000, ACK: true}
	_ = rt.SetNetworkLayerForChecksum(reply)
	rb := serialize(t, reply, rt)
	router := netip.MustParseAddr("2001:db8:ee::1")
	ip := &layers.IPv6{Version: 6, HopLimit: 61, TrafficClass: 0x28, NextHeader: layers.IPProtocolICMPv6, SrcIP: router.AsSlice(), DstIP: vip6.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	pkt := serialize(t, ether(layers.EthernetTypeIPv6), ip, icmp, gopacket.Payload(append([]byte{0, 0, 0x05, 0x00}, rb...)))
	flowsBefore, err := p.lb.Flows()
	must(t, err)
	v, out = p.runOut(t, pkt)
	expectFrame(t, "icmpv6 error", v, xdpTX, out, ip6ip6(t, pkt, 14, owner, l4.TunnelHash(f)))
	if n, _ := p.lb.Flows(); n != flowsBefore {
		t.Errorf("an ICMPv6 error made a connection-table entry (%d → %d)", flowsBefore, n)
	}
	if s, _ := p.lb.FlowStats(); s.ICMPRouted != 1 {
		t.Errorf("icmp_routed = %d, want 1", s.ICMPRouted)
	}
}
