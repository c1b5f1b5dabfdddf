package l4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoNeighbour is returned while the next hop's MAC is not known yet.
var ErrNoNeighbour = errors.New("next hop's MAC not known yet")

// NetlinkResolver resolves backends the way the kernel would forward to
// them: the route gives the egress interface and the gateway (or the backend
// itself, on link), the neighbour table gives the MAC. When the neighbour is
// unknown it asks the kernel to resolve it and returns ErrNoNeighbour;
// the caller tries again.
func NetlinkResolver(backend netip.Addr) (NextHop, error) {
	routes, err := netlink.RouteGet(backend.AsSlice())
	if err != nil || len(routes) == 0 {
		return NextHop{}, fmt.Errorf("no route to %s: %v", backend, err)
	}
	rt := routes[0]
	hop := backend
	if rt.Gw != nil {
		if a, ok := netip.AddrFromSlice(rt.Gw); ok {
			hop = a.Unmap()
		}
	}
	family := netlink.FAMILY_V4
	if hop.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(rt.LinkIndex, family)
	if err != nil {
		return NextHop{}, fmt.Errorf("neighbours of link %d: %w", rt.LinkIndex, err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != hop || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(unix.NUD_REACHABLE|unix.NUD_STALE|unix.NUD_DELAY|unix.NUD_PROBE|unix.NUD_PERMANENT|unix.NUD_NOARP) != 0 {
			return NextHop{MAC: n.HardwareAddr, Ifindex: rt.LinkIndex}, nil
		}
	}
	solicit(hop)
	return NextHop{}, fmt.Errorf("%w: %s via link %d", ErrNoNeighbour, hop, rt.LinkIndex)
}

// StaticMACResolver resolves every backend to one configured MAC, the
// router's that all tunnelled frames go to (Katran's default gateway MAC),
// on the interface of the kernel's route to the backend: no neighbour
// table, nothing to lapse.
func StaticMACResolver(mac net.HardwareAddr) Resolver {
	return func(backend netip.Addr) (NextHop, error) {
		routes, err := netlink.RouteGet(backend.AsSlice())
		if err != nil || len(routes) == 0 {
			return NextHop{}, fmt.Errorf("no route to %s: %v", backend, err)
		}
		return NextHop{MAC: mac, Ifindex: routes[0].LinkIndex}, nil
	}
}

// solicit makes the kernel resolve addr: a datagram to the discard port
// needs its MAC, so the kernel sends an ARP request or a neighbour solicitation.
func solicit(addr netip.Addr) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 9)))
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write(nil)
}
