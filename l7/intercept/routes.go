package intercept

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routes makes addresses local with `local` routes on lo that carry the
// interceptor's protocol number, so that they can be told from everyone
// else's. Not safe for concurrent use; the Interceptor serializes it.
type routes struct {
	h        *netlink.Handle
	lo       int
	table    int
	protocol netlink.RouteProtocol
}

func (r *routes) route(a netip.Addr) *netlink.Route {
	return &netlink.Route{
		LinkIndex: r.lo,
		Dst:       &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
		Type:      unix.RTN_LOCAL,
		Table:     r.table,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  r.protocol,
	}
}

// isLocal says whether the kernel already delivers packets for a locally:
// an address on an interface, or a local route of anyone's.
func (r *routes) isLocal(a netip.Addr) bool {
	got, err := r.h.RouteGet(a.AsSlice())
	if err != nil {
		return false // unreachable: certainly not local
	}
	for _, rt := range got {
		if rt.Type == unix.RTN_LOCAL {
			return true
		}
	}
	return false
}

// add adds the local route for a.
func (r *routes) add(a netip.Addr) error {
	if err := r.h.RouteAdd(r.route(a)); err != nil {
		return fmt.Errorf("add local route for %s: %w", a, err)
	}
	return nil
}

// del removes the local route for a; a route that is gone is no error.
func (r *routes) del(a netip.Addr) error {
	err := r.h.RouteDel(r.route(a))
	if err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove local route for %s: %w", a, err)
	}
	return nil
}

// delAll removes the local routes for as and returns the addresses whose
// route went; the errors of the others are joined.
func (r *routes) delAll(as []netip.Addr) (removed []netip.Addr, err error) {
	var errs []error
	for _, a := range as {
		if err := r.del(a); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, a)
	}
	return removed, errors.Join(errs...)
}

// owned lists the local routes in the table that carry the protocol: the
// ones this interceptor, or an earlier one that did not close, added.
func (r *routes) owned() ([]netip.Addr, error) {
	filter := &netlink.Route{Table: r.table, Protocol: r.protocol}
	var list []netlink.Route
	var err error
	// A dump that raced a change is incomplete; try again a few times.
	for range 5 {
		list, err = r.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list local routes in table %d: %w", r.table, err)
	}
	var out []netip.Addr
	for _, rt := range list {
		if rt.Type != unix.RTN_LOCAL || rt.Dst == nil {
			continue
		}
		ones, bits := rt.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(rt.Dst.IP)
		if !ok || ones != bits {
			continue
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
