package l4

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Flow is a client's flow to a VIP, as the datapath hashes it.
type Flow struct {
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Proto    uint8 // 6 TCP, 17 UDP
}

// key lays the flow out as struct flow_key in bpf/include/structs.h.
func (f Flow) key() [40]byte {
	var k [40]byte
	if f.Src.Is4() {
		s, d := f.Src.As4(), f.Dst.As4()
		copy(k[0:], s[:])
		copy(k[16:], d[:])
		k[37] = 4
	} else {
		s, d := f.Src.As16(), f.Dst.As16()
		copy(k[0:], s[:])
		copy(k[16:], d[:])
		k[37] = 6
	}
	binary.BigEndian.PutUint16(k[32:], f.SrcPort)
	binary.BigEndian.PutUint16(k[34:], f.DstPort)
	k[36] = f.Proto
	return k
}

// TunnelHash is the datapath's tunnel hash (tunnel_hash in
// bpf/include/lb.h), whose low bits fill a dsr-ipip tunnel's outer source
// (the host bits of the encap range) and an IP6IP6 tunnel's flow label, so
// the backends' RSS spreads the flows: the little-endian words of the flow
// key, the source's four folded and rotated 16 bits, XORed with the rest,
// multiplied by 0x9e3779b1, the high half folded into the low.
func TunnelHash(f Flow) uint32 {
	k := f.key()
	var h uint32
	for i := range 10 {
		if i == 4 {
			h = bits.RotateLeft32(h, 16)
		}
		h ^= binary.LittleEndian.Uint32(k[i*4:])
	}
	h *= 0x9e3779b1
	return h ^ h>>16
}

// FlowHash is the datapath's flow hash (flow_hash in bpf/include/lb.h):
// MurmurHash3 x86_32, seed 0, over the little-endian words of the flow key,
// the source address alone for HashSrcIP. The flow's Maglev slot is
// FlowHash % table size.
func FlowHash(f Flow, in HashInput) uint32 {
	k := f.key()
	n := 10
	if in == HashSrcIP {
		n = 4
	}
	var h uint32
	for i := range n {
		x := binary.LittleEndian.Uint32(k[i*4:])
		x *= 0xcc9e2d51
		x = bits.RotateLeft32(x, 15)
		x *= 0x1b873593
		h ^= x
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	h ^= uint32(n * 4)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
