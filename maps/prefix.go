package maps

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// pfx is a compact prefix: the address left-aligned in 128 bits (IPv4 in the
// top 32), and its length. It orders by (address, length), so the prefixes
// inside P form a contiguous run right after P.
type pfx struct {
	hi, lo uint64
	bits   uint8
}

func (a pfx) less(b pfx) bool {
	if a.hi != b.hi {
		return a.hi < b.hi
	}
	if a.lo != b.lo {
		return a.lo < b.lo
	}
	return a.bits < b.bits
}

// masked returns the first n bits of p's address as a prefix of length n.
func (a pfx) masked(n uint8) pfx {
	switch {
	case n == 0:
		return pfx{}
	case n < 64:
		return pfx{hi: a.hi &^ (^uint64(0) >> n), bits: n}
	case n == 64:
		return pfx{hi: a.hi, bits: n}
	case n < 128:
		return pfx{hi: a.hi, lo: a.lo &^ (^uint64(0) >> (n - 64)), bits: n}
	default:
		return pfx{hi: a.hi, lo: a.lo, bits: n}
	}
}

// contains reports whether b lies inside a (a covers b).
func (a pfx) contains(b pfx) bool {
	return b.bits >= a.bits && b.masked(a.bits) == a
}

// toPfx converts a validated prefix; v4 tells which family the caller expects.
func toPfx(p netip.Prefix) pfx {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		return pfx{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32, bits: uint8(p.Bits())}
	}
	b := a.As16()
	return pfx{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: uint8(p.Bits())}
}

func (a pfx) prefix(v4 bool) netip.Prefix {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.hi>>32))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(a.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(a.bits))
}

// CanonicalPrefix validates p for the ACL: valid, no host bits set, and an
// IPv4-mapped IPv6 prefix becomes the IPv4 prefix it denotes (the datapath
// sees IPv4 packets in the IPv4 trie). The error wraps ErrInvalidPrefix.
func CanonicalPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("%w: %s", ErrInvalidPrefix, p)
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("%w: %s: zones are not allowed", ErrInvalidPrefix, p)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%w: %s: host bits set (did you mean %s?)", ErrInvalidPrefix, p, p.Masked())
	}
	return p, nil
}
