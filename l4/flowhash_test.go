package l4

import (
	"net/netip"
	"testing"
)

// TestTunnelHashSpreadsFlows: the low bits of the tunnel hash, which fill
// the host bits of a dsr-ipip tunnel's source, spread the flows of one
// client to one VIP (only the source port differs) and of many clients
// from one port evenly over a /24's 256 sources, so a backend's RSS can
// spread them over its queues.
func TestTunnelHashSpreadsFlows(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.10")
	for _, c := range []struct {
		name string
		flow func(i int) Flow
	}{
		{"source ports", func(i int) Flow {
			return Flow{Src: netip.MustParseAddr("198.51.100.7"), Dst: vip, SrcPort: uint16(1024 + i), DstPort: 443, Proto: 6}
		}},
		{"clients", func(i int) Flow {
			return Flow{Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Dst: vip, SrcPort: 40000, DstPort: 443, Proto: 6}
		}},
		{"IPv6 clients", func(i int) Flow {
			a := netip.MustParseAddr("2001:db8::").As16()
			a[13], a[14], a[15] = byte(i>>16), byte(i>>8), byte(i)
			return Flow{Src: netip.AddrFrom16(a), Dst: netip.MustParseAddr("2001:db8::10"), SrcPort: 40000, DstPort: 443, Proto: 6}
		}},
	} {
		const flows, sources = 256 * 256, 256
		var per [sources]int
		for i := range flows {
			per[TunnelHash(c.flow(i))%sources]++
		}
		for s, n := range per {
			if want := flows / sources; n < want*80/100 || n > want*120/100 {
				t.Errorf("%s: source .%d carries %d of %d flows, want %d ± 20%%", c.name, s, n, flows, want)
				break
			}
		}
	}
}
