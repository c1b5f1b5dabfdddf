package bench_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/sluicelb/sluice/bpf/bench"
)

// loop_back turns what a load balancer forwarded (a dsr-ipip tunnel, a
// DNATed frame with its TTL spent by the kernel's forwarding) into the next
// client frame to the VIP: the next source port, TTL 64, a valid checksum,
// the clients' link's MACs; with loop_out set it redirects, without it
// drops (the loop stopped).
func TestLoopMakesTheNextClientFrame(t *testing.T) {
	spec, err := bench.LoadLoop()
	must(t, err)
	for name, v := range map[string]any{"lb_mac": [6]byte(lbMAC), "gen_mac": [6]byte(clientMAC),
		"vip": vip.As4(), "ports": uint32(4)} {
		must(t, spec.Variables[name].Set(v))
	}
	var objs bench.LoopObjects
	must(t, spec.LoadAndAssign(&objs, nil))
	defer objs.Close()

	client, backend := netip.MustParseAddr("10.98.0.1"), netip.MustParseAddr("10.97.0.7")
	beMAC := net.HardwareAddr{0x02, 0xbe, 0, 0, 0, 7}
	inner := func(dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
		ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: client.AsSlice(), DstIP: dst.AsSlice()}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
		must(t, udp.SetNetworkLayerForChecksum(ip))
		return []gopacket.SerializableLayer{ip, udp, gopacket.Payload("0123456789abcdef")}
	}
	eth := &layers.Ethernet{SrcMAC: lbMAC, DstMAC: beMAC, EthernetType: layers.EthernetTypeIPv4}
	tunnel := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolIPv4,
		SrcIP: net.IP{10, 98, 200, 9}, DstIP: backend.AsSlice()}
	frames := map[string][]byte{
		"dsr-ipip":  serialize(t, append([]gopacket.SerializableLayer{eth, tunnel}, inner(vip, 64)...)...),
		"dsr-l2":    serialize(t, append([]gopacket.SerializableLayer{eth}, inner(vip, 64)...)...),
		"dnat, ttl": serialize(t, append([]gopacket.SerializableLayer{eth}, inner(backend, 1)...)...),
	}
	for _, name := range []string{"dsr-ipip", "dsr-l2", "dnat, ttl"} {
		ret, out := run(t, objs.LoopBack, frames[name])
		if ret != xdpDrop {
			t.Errorf("%s, loop open: returned %d, want XDP_DROP", name, ret)
		}
		p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
		e, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if e == nil || ip == nil || udp == nil {
			t.Fatalf("%s: out is not Ethernet/IPv4/UDP: %x", name, out)
		}
		if e.DstMAC.String() != lbMAC.String() || e.SrcMAC.String() != clientMAC.String() {
			t.Errorf("%s: MACs %s > %s, want %s > %s", name, e.SrcMAC, e.DstMAC, clientMAC, lbMAC)
		}
		if got, _ := netip.AddrFromSlice(ip.DstIP); got != vip || ip.TTL != 64 || ip.Protocol != layers.IPProtocolUDP {
			t.Errorf("%s: to %s, ttl %d, proto %v, want %s, 64, UDP", name, ip.DstIP, ip.TTL, ip.Protocol, vip)
		}
		hdr := out[14:34]
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			t.Errorf("%s: IPv4 header checksum wrong: %x", name, hdr)
		}
		if udp.DstPort != 53 || udp.SrcPort < 10000 || udp.SrcPort >= 10004 || string(udp.Payload) != "0123456789abcdef" {
			t.Errorf("%s: udp %d > %d %q, want a source port of 10000-10003 to 53 and the payload", name, udp.SrcPort, udp.DstPort, udp.Payload)
		}
	}
	must(t, objs.LoopOut.Put(uint32(0), uint32(loIfindex)))
	if ret, _ := run(t, objs.LoopBack, frames["dsr-l2"]); ret != xdpRedirect {
		t.Errorf("loop closed: returned %d, want XDP_REDIRECT", ret)
	}
	var came []uint64
	must(t, objs.LoopStats.Lookup(uint32(0), &came))
	var n uint64
	for _, c := range came {
		n += c
	}
	if n != 4 {
		t.Errorf("counted %d frames come round, want 4", n)
	}
}
