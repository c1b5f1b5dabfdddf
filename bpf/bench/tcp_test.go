package bench_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/sluicelb/sluice/bpf/bench"
)

const (
	xdpDrop, xdpPass, xdpTX, xdpRedirect = 1, 2, 3, 4
	loIfindex                            = 1
	port                                 = 9100
)

var (
	lbMAC     = net.HardwareAddr{0x02, 0x1b, 0, 0, 0, 1}
	clientMAC = net.HardwareAddr{0x02, 0xc1, 0, 0, 0, 1}
	vip       = netip.MustParseAddr("203.0.113.10")
	clients   = netip.MustParsePrefix("10.99.0.0/16")
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func loadTCP(t *testing.T) *bench.TCPObjects {
	t.Helper()
	spec, err := bench.LoadTCP()
	must(t, err)
	for name, v := range map[string]any{
		"lb_mac": [6]byte(lbMAC), "client_mac": [6]byte(clientMAC), "vip": vip.As4(),
		"vport": [2]byte{port >> 8, port & 0xff}, "client_net": clients.Addr().As4(), "client_mask": [4]byte{255, 255, 0, 0},
	} {
		must(t, spec.Variables[name].Set(v))
	}
	var objs bench.TCPObjects
	must(t, spec.LoadAndAssign(&objs, nil))
	t.Cleanup(func() { objs.Close() })
	must(t, objs.ToClients.Put(uint32(0), uint32(loIfindex)))
	return &objs
}

func run(t *testing.T, prog *ebpf.Program, frame []byte) (int, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	ret, err := prog.Run(opts)
	must(t, err)
	return int(ret), opts.DataOut
}

// segment decodes an Ethernet/IPv4/TCP frame and fails the test unless both
// checksums are right.
func segment(t *testing.T, frame []byte) (*layers.Ethernet, *layers.IPv4, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tcp == nil {
		t.Fatalf("not a TCP/IPv4 frame: %x", frame)
	}
	// Serialized again with checksums computed, the frame must not change.
	ip2, tcp2 := *ip, *tcp
	_ = tcp2.SetNetworkLayerForChecksum(&ip2)
	buf := gopacket.NewSerializeBuffer()
	must(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true},
		&ip2, &tcp2, gopacket.Payload(tcp.Payload)))
	if !bytes.Equal(buf.Bytes(), frame[14:14+int(ip.Length)]) {
		t.Fatalf("checksums: got %x, want %x", frame[14:14+int(ip.Length)], buf.Bytes())
	}
	return eth, ip, tcp
}

func flags(tcp *layers.TCP) string {
	s := ""
	for _, f := range []struct {
		on   bool
		name string
	}{{tcp.SYN, "S"}, {tcp.ACK, "A"}, {tcp.PSH, "P"}, {tcp.FIN, "F"}, {tcp.RST, "R"}} {
		if f.on {
			s += f.name
		}
	}
	return s
}

func expect(t *testing.T, step string, ret, wantRet int, frame []byte, src, dst netip.Addr, fl string, seq, ack uint32, payload string) {
	t.Helper()
	if ret != wantRet {
		t.Fatalf("%s: verdict %d, want %d", step, ret, wantRet)
	}
	_, ip, tcp := segment(t, frame)
	if ip.SrcIP.String() != src.String() || ip.DstIP.String() != dst.String() || flags(tcp) != fl ||
		tcp.Seq != seq || tcp.Ack != ack || string(tcp.Payload) != payload || len(tcp.Options) != 0 {
		t.Fatalf("%s: %s -> %s %s seq %d ack %d options %v payload %q; want %s -> %s %s seq %d ack %d payload %q",
			step, ip.SrcIP, ip.DstIP, flags(tcp), tcp.Seq, tcp.Ack, tcp.Options, tcp.Payload, src, dst, fl, seq, ack, payload)
	}
}

func events(t *testing.T, objs *bench.TCPObjects, ev uint32) uint64 {
	t.Helper()
	var vs []uint64
	must(t, objs.TcpEvents.Lookup(ev, &vs))
	var n uint64
	for _, v := range vs {
		n += v
	}
	return n
}

// A connection from the generator's SYN to the last ACK, each segment fed
// to the endpoint that receives it: the sequence numbers add up, the
// checksums are right, the echo is counted once.
func TestStatelessEndpointsCarryAConnection(t *testing.T) {
	objs := loadTCP(t)
	ret, syn := run(t, objs.TcpSynGen, make([]byte, 54))
	if ret != xdpTX {
		t.Fatalf("generator: verdict %d", ret)
	}
	eth, ip, tcp := segment(t, syn[:54])
	client, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	if !clients.Contains(client) || ip.DstIP.String() != vip.String() || tcp.DstPort != port || flags(tcp) != "S" ||
		!bytes.Equal(eth.DstMAC, lbMAC) || !bytes.Equal(eth.SrcMAC, clientMAC) {
		t.Fatalf("generator: %v %v %v", eth, ip, tcp)
	}
	isn := tcp.Seq
	// The second SYN comes from another client.
	_, syn2 := run(t, objs.TcpSynGen, make([]byte, 54))
	if _, ip2, tcp2 := segment(t, syn2[:54]); ip2.SrcIP.Equal(ip.SrcIP) && tcp2.SrcPort == tcp.SrcPort {
		t.Fatalf("the generator sent the same 4-tuple twice")
	}

	// The backends see the SYN in IPIP (dsr-ipip): the answer goes to the
	// clients' link.
	outer := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4,
		SrcIP: net.IP{10, 97, 1, 9}, DstIP: net.IP{10, 97, 0, 1}}
	tunnelled := serialize(t, &layers.Ethernet{SrcMAC: lbMAC, DstMAC: clientMAC, EthernetType: layers.EthernetTypeIPv4},
		outer, gopacket.Payload(syn[14:54]))
	ret, synack := run(t, objs.TcpServer, tunnelled)
	expect(t, "server, SYN", ret, xdpRedirect, synack, vip, client, "SA", 0x5eed0000, isn+1, "")
	if e, _, _ := segment(t, synack); !bytes.Equal(e.DstMAC, clientMAC) || !bytes.Equal(e.SrcMAC, lbMAC) {
		t.Fatalf("server, SYN: MACs %s -> %s", e.SrcMAC, e.DstMAC)
	}
	ret, req := run(t, objs.TcpClient, synack[:54])
	expect(t, "client, SYN-ACK", ret, xdpTX, req, client, vip, "AP", isn+1, 0x5eed0001, "sluice-bench-req")
	ret, echo := run(t, objs.TcpServer, req[:70])
	expect(t, "server, request", ret, xdpRedirect, echo, vip, client, "APF", 0x5eed0001, isn+17, "sluice-bench-req")
	ret, fin := run(t, objs.TcpClient, echo[:70])
	expect(t, "client, echo", ret, xdpTX, fin, client, vip, "AF", isn+17, 0x5eed0012, "")
	ret, last := run(t, objs.TcpServer, fin[:54])
	expect(t, "server, FIN", ret, xdpRedirect, last, vip, client, "A", 0x5eed0012, isn+18, "")
	if ret, _ := run(t, objs.TcpClient, last[:54]); ret != xdpDrop {
		t.Fatalf("client, last ACK: verdict %d, want a drop", ret)
	}
	if got := events(t, objs, 1); got != 1 {
		t.Fatalf("%d echoes counted, want 1", got)
	}

	// Through HAProxy the echo and the FIN come apart, and the proxy's FIN
	// crosses the client's: it does not acknowledge the client's FIN, and
	// the last ACK must come after that FIN all the same.
	echoOnly := append([]byte(nil), echo[:70]...)
	echoOnly[14+20+13] &^= 0x01 // FIN off (the checksum is not checked here)
	ret, fin = run(t, objs.TcpClient, echoOnly)
	if ret != xdpTX {
		t.Fatalf("client, echo alone: verdict %d", ret)
	}
	_, _, f := segment(t, fin[:54])
	if flags(f) != "AF" || f.Seq != isn+17 || f.Ack != 0x5eed0011 {
		t.Fatalf("client, echo alone: %s seq %d ack %d", flags(f), f.Seq, f.Ack)
	}
	crossing := serialize(t, &layers.Ethernet{SrcMAC: lbMAC, DstMAC: clientMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: vip.AsSlice(), DstIP: client.AsSlice()},
		withChecksum(&layers.TCP{SrcPort: port, DstPort: tcp.SrcPort, FIN: true, ACK: true, Seq: 0x5eed0011, Ack: isn + 17, Window: 512},
			vip, client))
	ret, last = run(t, objs.TcpClient, crossing)
	expect(t, "client, crossing FIN", ret, xdpTX, last, client, vip, "A", isn+18, 0x5eed0012, "")
}

// A paced generator sends a SYN when its interval has passed and drops the
// frames before.
func TestGeneratorKeepsItsPace(t *testing.T) {
	objs := loadTCP(t)
	must(t, objs.GenPace.Put(uint32(0), bench.TCPGenPace{IntervalNs: uint64(time.Hour)}))
	verdicts := []int{}
	for range 3 {
		ret, _ := run(t, objs.TcpSynGen, make([]byte, 54))
		verdicts = append(verdicts, ret)
	}
	if verdicts[0] != xdpTX || verdicts[1] != xdpDrop || verdicts[2] != xdpDrop {
		t.Fatalf("verdicts %v, want a SYN then drops", verdicts)
	}
	var pace bench.TCPGenPace
	must(t, objs.GenPace.Lookup(uint32(0), &pace))
	if pace.Sent != 1 {
		t.Fatalf("%d sent, want 1", pace.Sent)
	}
}

func withChecksum(tcp *layers.TCP, src, dst netip.Addr) *layers.TCP {
	_ = tcp.SetNetworkLayerForChecksum(&layers.IPv4{Version: 4, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()})
	return tcp
}

// HAProxy's connection to a backend: its SYN carries options, which the
// SYN-ACK does not return, and the answer goes back where it came from.
func TestServerAnswersAProxyOnItsOwnLink(t *testing.T) {
	objs := loadTCP(t)
	proxy, backend := net.IP{10, 97, 0, 254}, net.IP{10, 97, 0, 1}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: proxy, DstIP: backend}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: port, SYN: true, Seq: 1000, Window: 64240, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	proxyMAC := net.HardwareAddr{0x02, 0x1b, 0, 0, 0, 2}
	backendMAC := net.HardwareAddr{0x02, 0xbe, 0, 0, 0, 1}
	frame := serialize(t, &layers.Ethernet{SrcMAC: proxyMAC, DstMAC: backendMAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp)
	ret, out := run(t, objs.TcpServer, frame)
	b, _ := netip.AddrFromSlice(backend)
	p, _ := netip.AddrFromSlice(proxy)
	expect(t, "server, SYN with options", ret, xdpTX, out, b, p, "SA", 0x5eed0000, 1001, "")
	if e, _, _ := segment(t, out); !bytes.Equal(e.DstMAC, proxyMAC) || !bytes.Equal(e.SrcMAC, backendMAC) {
		t.Fatalf("MACs %s -> %s", e.SrcMAC, e.DstMAC)
	}
	// Anything but the test's port passes, as does anything but TCP/IPv4.
	tcp.DstPort = 22
	if ret, _ := run(t, objs.TcpServer, serialize(t, &layers.Ethernet{SrcMAC: proxyMAC, DstMAC: backendMAC,
		EthernetType: layers.EthernetTypeIPv4}, ip, tcp)); ret != xdpPass {
		t.Fatalf("another port: verdict %d, want pass", ret)
	}
	arp := serialize(t, &layers.Ethernet{SrcMAC: proxyMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: proxyMAC, SourceProtAddress: proxy,
			DstHwAddress: make([]byte, 6), DstProtAddress: backend})
	if ret, _ := run(t, objs.TcpServer, arp); ret != xdpPass {
		t.Fatalf("ARP: verdict %d, want pass", ret)
	}
}

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	must(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...))
	return buf.Bytes()
}
