package bpf_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/maps"
)

const xdpRedirect = 4

// fuzzDenied is the deny list of FuzzXDP.
var fuzzDenied = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:bad::/48")}

// FuzzXDP runs the whole program over arbitrary frames, with a deny list
// and dsr-ipip and dsr-l2 services loaded, and checks what must hold for
// any input: a frame whose IP source is denied is dropped, however the
// rest of it is malformed or whichever VIP it is for; the verdict is one
// the program means; and what it sends back out is well formed (headers
// whose checksums and lengths agree with the frame, the client's packet
// intact inside a tunnel, ICMP it writes itself with a valid checksum).
func FuzzXDP(f *testing.F) {
	p := loadLB(f)
	must(f, p.policy.SetPolicy(maps.Policy{Mode: maps.PolicyDeny, DenyLists: 1}))
	if _, err := p.acl.Replace(0, fuzzDenied); err != nil {
		f.Fatal(err)
	}
	must(f, p.rec.Set(service("ipip4", vip4, 443, l4.ModeDSRIPIP, "172.16.0.1", "172.16.0.2")))
	must(f, p.rec.Set(service("ipip6", vip6, 443, l4.ModeDSRIPIP, "2001:db8:be::1", "2001:db8:be::2")))
	l2 := service("l2udp", vip4, 0, l4.ModeDSRL2, "172.16.1.1")
	l2.Proto = l4.UDP
	must(f, p.rec.Set(l2))

	client, denied4 := client4, netip.MustParseAddr("10.7.7.7")
	for _, seed := range [][]byte{
		tcp4(f, client, 40000, vip4, 443, 10, false),
		tcp4(f, client, 40001, vip4, 443, 1480, true), // too big for the tunnel: frag-needed
		tcp4(f, denied4, 40000, vip4, 443, 10, false),
		tcp6(f, client6, 40000, vip6, 443, 10),
		tcp6(f, client6, 40001, vip6, 443, 1460), // Packet Too Big
		tcp6(f, netip.MustParseAddr("2001:db8:bad::1"), 40000, vip6, 443, 10),
		echo4(f, client, vip4),
		echo4(f, denied4, vip4),
		udp4(f, "198.51.100.1"),
		vlan(f, "10.200.0.1", layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q),
		options4(f, "10.200.0.1"),
		arp(f),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
		verdict, err := p.objs.SluiceXdp.Run(opts)
		if err != nil {
			if len(frame) < 14 || len(frame) > 4096 {
				return // the kernel refuses to run a frame shorter than Ethernet or longer than a page
			}
			t.Fatalf("prog.Run: %v", err)
		}
		in := readFrame(frame)
		if in.src.IsValid() && isDenied(in.src) && verdict != xdpDrop {
			t.Fatalf("source %s is denied, verdict %d: %s", in.src, verdict, hex.EncodeToString(frame))
		}
		switch verdict {
		case xdpDrop, xdpPass:
		case xdpTX, xdpRedirect:
			if err := checkSent(frame, in, opts.DataOut); err != nil {
				t.Fatalf("sent a bad frame: %v\ninput:  %s\noutput: %s", err, hex.EncodeToString(frame), hex.EncodeToString(opts.DataOut))
			}
		default:
			t.Fatalf("verdict %d: %s", verdict, hex.EncodeToString(frame))
		}
	})
}

func echo4(t testing.TB, src, dst netip.Addr) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}
	return serialize(t, ether(layers.EthernetTypeIPv4), ip, ic, gopacket.Payload("ping"))
}

func isDenied(a netip.Addr) bool {
	for _, p := range fuzzDenied {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// l3Frame is where a frame's IP header is as the kernel reads it, and the
// source it names; l3 is -1 when the frame carries no IP header the
// kernel would read (a third VLAN tag, another EtherType, too short).
type l3Frame struct {
	l3   int
	v6   bool
	src  netip.Addr
	tags int
}

func readFrame(b []byte) l3Frame {
	f := l3Frame{l3: -1}
	if len(b) < 14 {
		return f
	}
	typ, off := binary.BigEndian.Uint16(b[12:]), 14
	for typ == 0x8100 || typ == 0x88a8 {
		if f.tags == 2 || len(b) < off+4 {
			return f
		}
		typ, off = binary.BigEndian.Uint16(b[off+2:]), off+4
		f.tags++
	}
	switch {
	case typ == 0x0800 && len(b) >= off+20:
		f.src = netip.AddrFrom4([4]byte(b[off+12 : off+16]))
	case typ == 0x86dd && len(b) >= off+40:
		f.src, f.v6 = netip.AddrFrom16([16]byte(b[off+8:off+24])), true
	default:
		return f
	}
	f.l3 = off
	return f
}

// checkSent checks a frame the program sends out: a packet forwarded by
// its MAC (dsr-l2) is the client's, unchanged; any other has an IP header
// the program wrote, which agrees with the frame's length (and, for IPv4,
// with its checksum), and is a tunnel holding the client's packet
// unchanged or an ICMP message with a valid checksum (an echo reply only
// when the request had one).
func checkSent(in []byte, inFrame l3Frame, out []byte) error {
	o := readFrame(out)
	if o.l3 < 0 || inFrame.l3 < 0 || o.l3 != inFrame.l3 {
		return fmt.Errorf("no IP header at the input's offset %d (out %d)", inFrame.l3, o.l3)
	}
	ip, inIP := out[o.l3:], in[inFrame.l3:]
	if bytes.Equal(ip, inIP) {
		return nil // dsr-l2: only the addresses of the frame changed; the packet is the client's, right or wrong
	}
	var proto byte
	var body []byte
	if !o.v6 {
		ihl, tot := int(ip[0]&0xf)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < 20 || tot < ihl || tot > len(ip) {
			return fmt.Errorf("IPv4 header: version/ihl %#x, total length %d in %d bytes", ip[0], tot, len(ip))
		}
		if onesSum(ip[:ihl]) != 0xffff {
			return fmt.Errorf("IPv4 header checksum")
		}
		proto, body = ip[9], ip[ihl:tot]
	} else {
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || 40+plen > len(ip) {
			return fmt.Errorf("IPv6 header: version %d, payload %d in %d bytes", ip[0]>>4, plen, len(ip))
		}
		proto, body = ip[6], ip[40:40+plen]
	}
	switch {
	case proto == 4 || proto == 41: // a tunnel: the client's packet, as it came
		if !bytes.HasPrefix(inIP, body) || len(body) < 20 {
			return fmt.Errorf("the tunnel does not hold the client's packet")
		}
	case !o.v6 && proto == 1:
		if onesSum(body) != 0xffff && (body[0] != 0 || validEcho4(inIP)) {
			return fmt.Errorf("ICMP checksum")
		}
	case o.v6 && proto == 58:
		if icmp6Sum(ip[8:40], body) != 0xffff && (body[0] != 129 || validEcho6(inIP)) {
			return fmt.Errorf("ICMPv6 checksum")
		}
	default:
		return fmt.Errorf("a packet that is neither the client's nor a tunnel nor ICMP (protocol %d)", proto)
	}
	return nil
}

// validEcho4 and validEcho6 report whether an echo request's checksum was
// valid: a reply to one that was not may carry its error on.
func validEcho4(ip []byte) bool {
	ihl, tot := int(ip[0]&0xf)*4, int(binary.BigEndian.Uint16(ip[2:]))
	return tot <= len(ip) && onesSum(ip[ihl:tot]) == 0xffff
}

func validEcho6(ip []byte) bool {
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	return 40+plen <= len(ip) && ip[6] == 58 && icmp6Sum(ip[8:40], ip[40:40+plen]) == 0xffff
}

func icmp6Sum(addrs, body []byte) uint16 {
	pseudo := append(append([]byte(nil), addrs...), 0, 0, byte(len(body)>>8), byte(len(body)), 0, 0, 0, 58)
	return onesSum(append(pseudo, body...))
}

// onesSum is the ones' complement sum of b's 16-bit words (0xffff over a
// header or message whose checksum is right).
func onesSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// FuzzDecap runs the backend's decapsulation over arbitrary frames, with
// one IPv4 and one IPv6 VIP local, and checks that every frame passes,
// either as it came or as the same frame without its outer header; that a
// tunnel stripped was one the stack would read (IPIP or IP6IP6, an outer
// IPv4 header that is whole, unfragmented and right by its checksum) to a
// local VIP; and that such a tunnel is always stripped.
func FuzzDecap(f *testing.F) {
	var objs bpf.DecapObjects
	must(f, bpf.LoadDecapObjects(&objs, nil))
	f.Cleanup(func() { objs.Close() })
	for _, vip := range []netip.Addr{vip4, vip6} {
		must(f, objs.DecapVips.Put(decapKey(vip), uint32(1)))
	}
	backend4, backend6 := netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("2001:db8:1::11")
	for _, seed := range [][]byte{
		tunnel4(f, tcp4(f, client4, 40000, vip4, 443, 10, false), backend4),
		tunnel4(f, tcp4(f, client4, 40000, netip.MustParseAddr("203.0.113.99"), 443, 10, false), backend4), // not a local VIP
		tunnel6(f, tcp6(f, client6, 40000, vip6, 443, 10), backend6),
		tcp4(f, client4, 40000, vip4, 443, 10, false),
		vlan(f, "198.51.100.1", layers.EthernetTypeDot1Q),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
		verdict, err := objs.SluiceDecap.Run(opts)
		if err != nil {
			if len(frame) < 14 || len(frame) > 4096 {
				return
			}
			t.Fatalf("prog.Run: %v", err)
		}
		if verdict != xdpPass {
			t.Fatalf("verdict %d: %s", verdict, hex.EncodeToString(frame))
		}
		in, out := readFrame(frame), opts.DataOut
		outer := strippable(frame, in)
		switch {
		case bytes.Equal(out, frame):
			if outer > 0 {
				t.Fatalf("a tunnel to a local VIP was not stripped: %s", hex.EncodeToString(frame))
			}
		case outer > 0 && bytes.Equal(out, append(append([]byte(nil), frame[:in.l3]...), frame[in.l3+outer:]...)):
		default:
			t.Fatalf("stripped what it should not have\ninput:  %s\noutput: %s", hex.EncodeToString(frame), hex.EncodeToString(out))
		}
	})
}

// strippable is the length of the outer header the backend strips from a
// frame (readFrame's in), 0 when it strips none.
func strippable(frame []byte, in l3Frame) int {
	if in.l3 < 0 {
		return 0
	}
	ip := frame[in.l3:]
	if !in.v6 {
		if len(ip) < 40 || ip[0] != 0x45 || ip[9] != 4 || ip[20]>>4 != 4 ||
			binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || onesSum(ip[:20]) != 0xffff {
			return 0
		}
		if netip.AddrFrom4([4]byte(ip[36:40])) != vip4 {
			return 0
		}
		return 20
	}
	if len(ip) < 80 || ip[0]>>4 != 6 || ip[6] != 41 || ip[40]>>4 != 6 || netip.AddrFrom16([16]byte(ip[64:80])) != vip6 {
		return 0
	}
	return 40
}
