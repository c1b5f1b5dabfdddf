// Package intercept steers connections to the L7 VIPs onto the proxy's
// listeners.
//
// An Interceptor owns two listening sockets (127.0.0.1:0 and [::1]:0), the
// sk_lookup program of bpf/sk_lookup.c attached to the network namespace,
// and one `local` route on lo for each VIP that is not local already. A
// connection to a steered VIP:port is delivered locally (the route), and the
// program hands the kernel's socket lookup to the listener of its family (a
// SOCKMAP), whatever port that listener is bound to. The accepted
// connection keeps the address the client dialled, so the proxy reads the
// VIP:port from conn.LocalAddr().
//
// Why sk_lookup and not iptables TPROXY: TPROXY needs netfilter rules for
// the VIPs and ports (mangle table, or an ipset), a fwmark with its policy
// route, and IP_TRANSPARENT listeners; the rules run for every packet and
// live in tables that other software (firewalls, container runtimes)
// rewrites, and a change is a rule reload. sk_lookup runs in the socket
// lookup itself, once per new connection (per datagram for UDP); one hash
// lookup covers any number of VIPs and ports on one listener, a change is
// one map update, and nothing is left behind when the program's link
// closes. Nor does the proxy bind a socket per VIP:port: that needs a
// socket (and a file descriptor and accept loop) per port, and "every port
// of a VIP" would need 65535 of them.
//
// Everything runs in the network namespace New was called in: the program
// is attached there, the listeners and the netlink socket live there, so
// the methods may be called from any goroutine afterwards.
package intercept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/l7/fifopoll"
)

// Defaults of Options.
const (
	// DefaultRouteTable is the kernel's local table.
	DefaultRouteTable = 255
	// DefaultRouteProtocol marks the routes an Interceptor adds ('s').
	DefaultRouteProtocol = 0x73
)

// ErrNoIPv6 is returned by Add for an IPv6 endpoint when New could not set
// up the IPv6 listener (IPv6 disabled, or no ::1 on lo).
var ErrNoIPv6 = errors.New("no IPv6 listener")

// ErrClosed is returned by the methods of a closed Interceptor.
var ErrClosed = errors.New("interceptor closed")

// Options configure an Interceptor.
type Options struct {
	// Logger receives the interceptor's events; nil discards them.
	Logger *slog.Logger
	// RouteTable is the table of the VIPs' local routes; 0 means
	// DefaultRouteTable, the local table.
	RouteTable int
	// RouteProtocol marks the routes the interceptor adds, so that they
	// are told from everyone else's: New removes leftovers with it, Close
	// removes its own. 0 means DefaultRouteProtocol. One Interceptor per
	// namespace and protocol.
	RouteProtocol int
	// Inherit are the listeners of the Interceptor this one takes over
	// from (a daemon upgraded in place: see Handoff), an IPv4 one and
	// optionally an IPv6 one. New then listens on them instead of new
	// sockets, so connections queued there are not lost, and keeps the
	// routes the other one added: Add adopts them, DropStale removes the
	// rest.
	Inherit []*net.TCPListener
}

// Interceptor steers TCP connections for endpoints (VIP:port, or VIP:0 for
// every port) to its listeners. It is safe for concurrent use.
type Interceptor struct {
	log    *slog.Logger
	objs   bpf.SkLookupObjects
	maps   *Maps
	link   link.Link
	routes routes
	ln4    net.Listener
	ln6    net.Listener // nil: no IPv6
	mu     sync.Mutex   // guards what follows
	eps    map[netip.AddrPort]bool
	addrs  map[netip.Addr]*vip
	stale  map[netip.Addr]bool // inherited routes no endpoint has adopted yet
	closed bool
}

// vip is an address the interceptor steers some ports of.
type vip struct {
	endpoints int  // steered endpoints with this address
	owned     bool // the interceptor added its local route
}

// New loads and attaches the sk_lookup program to the calling goroutine's
// network namespace and creates the listeners there: 127.0.0.1:0, and
// [::1]:0 (v6-only) when the namespace has ::1 (IPv6 enabled and lo up);
// without it a warning is logged and Add refuses IPv6 endpoints with
// ErrNoIPv6. New removes the local routes with opts.RouteProtocol that an
// earlier Interceptor left behind (one that did not close). It returns an
// error when the program cannot be loaded or attached (no root, no
// sk_lookup support), or the IPv4 listener, the netlink socket or the
// clean-up of old routes fails.
func New(opts Options) (_ *Interceptor, err error) {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	i := &Interceptor{
		log:   log.With("component", "intercept"),
		eps:   map[netip.AddrPort]bool{},
		addrs: map[netip.Addr]*vip{},
		stale: map[netip.Addr]bool{},
	}
	defer func() {
		if err != nil {
			i.release()
		}
	}()

	if err := bpf.LoadSkLookupObjects(&i.objs, nil); err != nil {
		return nil, fmt.Errorf("load sk_lookup program: %w", err)
	}
	i.maps = NewMaps(&i.objs.SkLookupMaps)

	// Everything that belongs to a namespace is made on one locked
	// thread, so it all lands in the namespace of that thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	defer ns.Close()
	if i.routes, err = newRoutes(opts); err != nil {
		return nil, err
	}

	if len(opts.Inherit) > 0 {
		if err := i.inherit(opts.Inherit); err != nil {
			return nil, err
		}
	} else {
		if i.ln4, err = listen("tcp4", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if i.ln6, err = listen("tcp6", "[::1]:0"); err != nil {
			i.log.Warn("no IPv6 listener: IPv6 endpoints cannot be steered", "err", err)
			i.ln6 = nil
		}
	}
	if err := i.maps.SetListener(SlotTCP4, i.ln4.(*net.TCPListener)); err != nil {
		return nil, err
	}
	if i.ln6 != nil {
		if err := i.maps.SetListener(SlotTCP6, i.ln6.(*net.TCPListener)); err != nil {
			return nil, err
		}
	}

	stale, err := i.routes.owned()
	if err != nil {
		return nil, err
	}
	if len(opts.Inherit) > 0 {
		for _, a := range stale {
			i.stale[a] = true // the predecessor's, in use until it hands off
		}
	} else {
		removed, err := i.routes.delAll(stale)
		for _, a := range removed {
			i.log.Info("removed a local route left by an earlier run", "addr", a)
		}
		if err != nil {
			return nil, err
		}
	}

	if i.link, err = link.AttachNetNs(int(ns.Fd()), i.objs.SluiceSkLookup); err != nil {
		return nil, fmt.Errorf("attach sk_lookup to the network namespace: %w", err)
	}
	i.log.Info("intercept ready", "ipv4", i.ln4.Addr(), "ipv6", addrOf(i.ln6))
	return i, nil
}

// listen makes a plain TCP listener: Go's listeners are MPTCP by default,
// and a SOCKMAP refuses MPTCP sockets. tcp6 listeners are v6-only.
func (o Options) withDefaults() Options {
	if o.RouteTable == 0 {
		o.RouteTable = DefaultRouteTable
	}
	if o.RouteProtocol == 0 {
		o.RouteProtocol = DefaultRouteProtocol
	}
	return o
}

// newRoutes opens a netlink handle in the calling thread's namespace for
// the routes of opts (with defaults).
func newRoutes(opts Options) (routes, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return routes{}, fmt.Errorf("netlink: %w", err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		h.Close()
		return routes{}, fmt.Errorf("find lo: %w", err)
	}
	return routes{h: h, lo: lo.Attrs().Index, table: opts.RouteTable, protocol: netlink.RouteProtocol(opts.RouteProtocol)}, nil
}

// RemoveStaleRoutes removes, in the calling goroutine's network namespace,
// the local routes an Interceptor with opts left behind (killed, or handed
// off to a daemon that runs without the proxy), and returns their
// addresses. New does the same for itself; a daemon without the proxy
// calls this instead.
func RemoveStaleRoutes(opts Options) ([]netip.Addr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newRoutes(opts.withDefaults())
	if err != nil {
		return nil, err
	}
	defer r.h.Close()
	stale, err := r.owned()
	if err != nil {
		return nil, err
	}
	return r.delAll(stale)
}

func listen(network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// inherit takes over a predecessor's listeners, one per family.
func (i *Interceptor) inherit(lns []*net.TCPListener) error {
	for _, ln := range lns {
		a := ln.Addr().(*net.TCPAddr).AddrPort().Addr()
		switch {
		case a.Is4() && i.ln4 == nil:
			i.ln4 = ln
		case a.Is6() && !a.Is4In6() && i.ln6 == nil:
			i.ln6 = ln
		default:
			return fmt.Errorf("inherited listener %s: want one IPv4 and at most one IPv6 listener", a)
		}
	}
	if i.ln4 == nil {
		return errors.New("inherited listeners: none is IPv4")
	}
	i.log.Info("took over the listeners of the daemon before", "ipv4", i.ln4.Addr(), "ipv6", addrOf(i.ln6))
	return nil
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return "none"
	}
	return ln.Addr().String()
}

// Listeners returns the listeners connections are steered to: the IPv4
// one, then the IPv6 one if there is one. Accept on each; the accepted
// connection's LocalAddr is the endpoint the client dialled. A local
// process may also connect to a listener's own loopback address; such a
// connection's LocalAddr is no steered endpoint, and the proxy should
// close it.
func (i *Interceptor) Listeners() []net.Listener {
	if i.ln6 == nil {
		return []net.Listener{i.ln4}
	}
	return []net.Listener{i.ln4, i.ln6}
}

// Add steers TCP connections for ep to the listener of its family; port 0
// steers every port of the address, and a steered exact port wins over it.
// Unless the address is local already, Add makes it local with a route
// (type local, dev lo, scope host, the interceptor's table and protocol).
// An IPv4-mapped address counts as IPv4. Adding an endpoint twice is no
// error. It returns an error wrapping ErrInvalidEndpoint, ErrNoIPv6 or
// ErrClosed, or the map or netlink error; on error nothing changed.
func (i *Interceptor) Add(ep netip.AddrPort) error {
	ep, err := normalize(ep)
	if err != nil {
		return err
	}
	slot := SlotTCP4
	if ep.Addr().Is6() {
		if i.ln6 == nil {
			return fmt.Errorf("steer %s: %w", ep, ErrNoIPv6)
		}
		slot = SlotTCP6
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return ErrClosed
	}
	if i.eps[ep] {
		return nil
	}
	// Steer first, then make the address local: the first packet that is
	// delivered locally already finds the listener.
	if err := i.maps.Steer(ep, slot); err != nil {
		return err
	}
	a := ep.Addr()
	v := i.addrs[a]
	if v == nil {
		v = &vip{}
		if i.stale[a] {
			// The predecessor's route: this interceptor's from now on.
			delete(i.stale, a)
			v.owned = true
		} else if !i.routes.isLocal(a) {
			if err := i.routes.add(a); err != nil {
				return errors.Join(err, i.maps.Unsteer(ep))
			}
			v.owned = true
		}
		i.addrs[a] = v
	}
	v.endpoints++
	i.eps[ep] = true
	i.log.Debug("steering", "endpoint", ep, "route", v.owned)
	return nil
}

// Remove stops steering ep, and removes the address's route once no
// endpoint uses it (only a route the interceptor added). Removing an
// endpoint that is not steered is no error. It returns an error wrapping
// ErrInvalidEndpoint or ErrClosed, or the map or netlink error.
func (i *Interceptor) Remove(ep netip.AddrPort) error {
	ep, err := normalize(ep)
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return ErrClosed
	}
	a := ep.Addr()
	v := i.addrs[a]
	if !i.eps[ep] {
		if v != nil && v.endpoints == 0 && v.owned { // a route whose removal failed
			if err := i.routes.del(a); err != nil {
				return err
			}
			delete(i.addrs, a)
		}
		return nil
	}
	if err := i.maps.Unsteer(ep); err != nil {
		return err
	}
	delete(i.eps, ep)
	v.endpoints--
	if v.endpoints > 0 {
		return nil
	}
	if v.owned {
		// On failure the address stays known, with no endpoint: the
		// next Remove of it, or Close, tries again.
		if err := i.routes.del(a); err != nil {
			return err
		}
	}
	delete(i.addrs, a)
	return nil
}

// Endpoints returns the steered endpoints, sorted.
func (i *Interceptor) Endpoints() []netip.AddrPort {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(i.eps))
	for ep := range i.eps {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

// Steered returns how many connections the program has handed to the
// listeners since New, or the error reading its counter.
func (i *Interceptor) Steered() (uint64, error) {
	s, err := i.Stats()
	return s.Steered, err
}

// Stats returns the program's counters, or the error reading them.
func (i *Interceptor) Stats() (Stats, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return Stats{}, ErrClosed
	}
	return i.maps.Stats()
}

// DropStale removes the inherited routes (Options.Inherit) that no Add has
// adopted: addresses the predecessor steered and this one does not. Call
// it once the endpoints are added. It returns the netlink errors, joined.
func (i *Interceptor) DropStale() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	removed, err := i.routes.delAll(slices.Collect(maps.Keys(i.stale)))
	for _, a := range removed {
		delete(i.stale, a)
		i.log.Info("removed a local route the daemon before used and this one does not", "addr", a)
	}
	return err
}

// ListenerFiles returns duplicates of the listeners' descriptors (IPv4,
// then IPv6 if there is one), to hand to a successor (Options.Inherit).
// The caller closes them. It returns ErrClosed after Close or Handoff.
//
// Unlike (*net.TCPListener).File's, their Fd (which exec calls) leaves the
// socket nonblocking: a duplicate shares the listener's open file, so
// blocking mode there would be the accept loop's too, and an accept with
// nothing queued would then block, holding Close.
func (i *Interceptor) ListenerFiles() ([]*os.File, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, ErrClosed
	}
	var fs []*os.File
	for _, ln := range i.Listeners() {
		f, err := dupNonblocking(ln.(*net.TCPListener))
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return nil, fmt.Errorf("duplicate listener %s: %w", ln.Addr(), err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func dupNonblocking(ln *net.TCPListener) (*os.File, error) {
	fd, err := fifopoll.Dup(ln)
	if err != nil {
		return nil, err
	}
	// os.NewFile, not the net package's File: its Fd keeps the mode.
	return os.NewFile(uintptr(fd), "listener "+ln.Addr().String()), nil
}

// Handoff is Close for an interceptor whose successor took over its
// listeners (ListenerFiles) and attached its own program: it detaches this
// one's program and closes its descriptors of the listeners, whose sockets
// the successor keeps open and steered to, and leaves the routes, which
// the successor adopted. Connections already accepted stay open.
func (i *Interceptor) Handoff() error { return i.shut(false) }

// Close detaches the program, closes the listeners (Accept returns
// net.ErrClosed) and removes the routes the interceptor added. Connections
// already accepted stay open. Closing twice is no error. It returns the
// errors of the steps that failed, joined; the other steps still run.
func (i *Interceptor) Close() error { return i.shut(true) }

// shut is Close, or Handoff when the routes stay.
func (i *Interceptor) shut(removeRoutes bool) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	var errs []error
	if removeRoutes {
		for a, v := range i.addrs {
			if v.owned {
				errs = append(errs, i.routes.del(a))
			}
		}
		for a := range i.stale {
			errs = append(errs, i.routes.del(a))
		}
	}
	i.addrs, i.eps, i.stale = map[netip.Addr]*vip{}, map[netip.AddrPort]bool{}, map[netip.Addr]bool{}
	errs = append(errs, i.release())
	return errors.Join(errs...)
}

// release closes what New made, whatever got made.
func (i *Interceptor) release() error {
	var errs []error
	if i.link != nil {
		if err := i.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach sk_lookup: %w", err))
		}
		i.link = nil
	}
	for _, ln := range []net.Listener{i.ln4, i.ln6} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, i.objs.Close())
	if i.routes.h != nil {
		i.routes.h.Close()
	}
	return errors.Join(errs...)
}
