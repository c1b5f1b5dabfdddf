package l4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sluicelb/sluice/bpf"
	"github.com/sluicelb/sluice/maps"
)

// NextHop is where frames for a backend go: the next hop's MAC and the
// egress interface (0: the interface the packet came in on).
type NextHop struct {
	MAC     net.HardwareAddr
	Ifindex int
}

// Resolver finds the next hop towards a backend.
type Resolver func(backend netip.Addr) (NextHop, error)

// Datapath is what the reconciler writes: maps.LB, or a fake.
type Datapath interface {
	PutService(maps.ServiceKey, maps.ServiceEntry) error
	DeleteService(maps.ServiceKey) error
	Services() (map[maps.ServiceKey]maps.ServiceEntry, error)
	PutVIP(netip.Addr) error
	DeleteVIP(netip.Addr) error
	PutBackend(uint32, maps.BackendEntry) error
	ClearBackend(uint32) error
	Backends() (map[uint32]maps.BackendEntry, error)
	SwapTable(svc uint32, table []uint32) error
	DeleteTable(svc uint32) error
	ResetServiceStats(uint32) error
	ResetBackendStats(uint32) error
}

// Capacities of the id spaces (MAX_SERVICES and MAX_BACKENDS in bpf/include/consts.h).
const (
	MaxServices = 4096
	MaxBackends = 1 << 18
)

// ErrFull is returned when the datapath has no service or backend id left.
var ErrFull = errors.New("datapath full")

type applied struct {
	svc      Service
	id       uint32
	backends map[netip.Addr]uint32 // backend address → backend id
	stale    []uint32              // adopted backend ids the service no longer has
	hops     []NextHop             // by backend index; no MAC: unresolved
}

// Reconciler keeps the L4 maps equal to the desired services. Ids outlive
// the daemon: on start it adopts the ids the pinned maps hold, so the
// connection table's entries keep naming the same backends and a restart
// breaks no flow.
type Reconciler struct {
	mu      sync.Mutex
	dp      Datapath
	resolve Resolver
	byName  map[string]*applied
	vipRefs map[netip.Addr]int

	// Ids found in the maps at start and not yet claimed by a service.
	adoptSvc     map[maps.ServiceKey]uint32
	adoptBackend map[uint32]map[netip.Addr]uint32 // service id → address → backend id

	svcIDs, backendIDs idPool

	// OnUnresolved hears of a backend left without a next hop; it takes no
	// new flows until Refresh finds one.
	OnUnresolved func(service string, backend netip.Addr, err error)
	// ResolveTunnel, when set, resolves the backends of dsr-ipip services
	// instead of the neighbour resolver: a configured router MAC
	// (StaticMACResolver). dsr-l2 needs each backend's own MAC and keeps
	// the neighbour table.
	ResolveTunnel Resolver
}

// idPool hands out ids, reusing freed ones last (first in, first out), so a
// connection-table entry of a removed backend is unlikely to meet its id
// given to another.
type idPool struct {
	limit uint32
	next  uint32
	free  []uint32
	used  map[uint32]bool
}

func newPool(limit uint32) idPool { return idPool{limit: limit, used: map[uint32]bool{}} }

func (p *idPool) take() (uint32, error) {
	for p.next < p.limit {
		id := p.next
		p.next++
		if !p.used[id] {
			p.used[id] = true
			return id, nil
		}
	}
	for len(p.free) > 0 {
		id := p.free[0]
		p.free = p.free[1:]
		if !p.used[id] {
			p.used[id] = true
			return id, nil
		}
	}
	return 0, ErrFull
}

func (p *idPool) claim(id uint32) { p.used[id] = true }

func (p *idPool) release(id uint32) {
	if p.used[id] {
		delete(p.used, id)
		p.free = append(p.free, id)
	}
}

// NewReconciler reads the maps' current services and backends for adoption.
func NewReconciler(dp Datapath, resolve Resolver) (*Reconciler, error) {
	r := &Reconciler{dp: dp, resolve: resolve, byName: map[string]*applied{}, vipRefs: map[netip.Addr]int{},
		adoptSvc: map[maps.ServiceKey]uint32{}, adoptBackend: map[uint32]map[netip.Addr]uint32{},
		svcIDs: newPool(MaxServices), backendIDs: newPool(MaxBackends)}
	svcs, err := dp.Services()
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	for k, e := range svcs {
		r.adoptSvc[k] = e.ID
		r.svcIDs.claim(e.ID)
	}
	bes, err := dp.Backends()
	if err != nil {
		return nil, fmt.Errorf("read backends: %w", err)
	}
	for id, b := range bes {
		if r.adoptBackend[b.Service] == nil {
			r.adoptBackend[b.Service] = map[netip.Addr]uint32{}
		}
		r.adoptBackend[b.Service][b.Addr] = id
		r.backendIDs.claim(id)
	}
	return r, nil
}

func keyOf(s *Service) maps.ServiceKey {
	proto := maps.ProtoTCP
	if s.Proto == UDP {
		proto = maps.ProtoUDP
	}
	return maps.ServiceKey{VIP: s.VIP, Port: s.Port, Proto: proto}
}

// Services returns the applied services, sorted by name.
func (r *Reconciler) Services() []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Service, 0, len(r.byName))
	for _, a := range r.byName {
		out = append(out, a.svc)
	}
	slices.SortFunc(out, func(a, b Service) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// IDs returns a service's id and its backends' ids, for the counters.
func (r *Reconciler) IDs(name string) (uint32, map[netip.Addr]uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byName[name]
	if !ok {
		return 0, nil, false
	}
	ids := make(map[netip.Addr]uint32, len(a.backends))
	for addr, id := range a.backends {
		ids[addr] = id
	}
	return a.id, ids, true
}

// Set creates or replaces a service. The order keeps every packet served:
// backends first, then the new Maglev table in one swap, then the service
// entry; only then are removed backends freed, and their flows rehash.
func (r *Reconciler) Set(s Service) error {
	s.Normalize()
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Mode == ModeL7 {
		return invalid("mode", "an l7 service belongs to the proxy, not the L4 datapath")
	}
	hops := r.resolveWait(&s)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set(s, hops)
}

// set applies s with the given next hops; r.mu is held.
func (r *Reconciler) set(s Service, hops []NextHop) error {
	others := make([]Service, 0, len(r.byName)+1)
	for name, a := range r.byName {
		if name != s.Name {
			others = append(others, a.svc)
		}
	}
	if err := ValidateSet(append(others, s)); err != nil {
		return err
	}

	old := r.byName[s.Name]
	keepKnownHops(&s, hops, old)
	k := keyOf(&s)
	a, fresh, err := r.claimIDs(&s, old, k)
	if err != nil {
		return err
	}
	undo := func() {
		if fresh {
			r.svcIDs.release(a.id)
		}
		for addr, id := range a.backends {
			if old == nil || old.backends[addr] != id {
				r.backendIDs.release(id)
			}
		}
	}
	if err := r.write(&s, a, hops, k, old, fresh); err != nil {
		undo()
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	// Adopted backends the service no longer has are in no table now.
	for _, id := range a.stale {
		_ = r.dp.ClearBackend(id)
		r.backendIDs.release(id)
	}
	a.stale = nil
	// The new reference first: unreferencing the old one must not take a
	// VIP that both use out of the datapath's VIP map.
	r.vipRefs[s.VIP]++
	if old != nil {
		for addr, id := range old.backends {
			if a.backends[addr] != id {
				// Best effort: a slot left set names a backend of this
				// service that is in no table; its flows keep going there.
				_ = r.dp.ClearBackend(id)
				r.backendIDs.release(id)
			}
		}
		ok := keyOf(&old.svc)
		if ok != k {
			_ = r.dp.DeleteService(ok)
		}
		r.unrefVIP(old.svc.VIP)
	}
	a.svc = s
	a.hops = hops
	r.byName[s.Name] = a
	return nil
}

// ResolveWait bounds how long Set waits for new backends' neighbours to
// answer, so that a fresh service takes flows at once.
var ResolveWait = time.Second

func (r *Reconciler) resolveWait(s *Service) []NextHop {
	deadline := time.Now().Add(ResolveWait)
	for {
		hops, missing := r.resolveAll(s)
		if missing == nil || time.Now().After(deadline) {
			for addr, err := range missing {
				if r.OnUnresolved != nil {
					r.OnUnresolved(s.Name, addr, err)
				}
			}
			return hops
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resolveAll finds each backend's next hop. A backend without one (no route,
// no neighbour answer yet) stays out of the table until Refresh finds it:
// frames to an unknown MAC would be lost.
func (r *Reconciler) resolveAll(s *Service) ([]NextHop, map[netip.Addr]error) {
	hops := make([]NextHop, len(s.Backends))
	var missing map[netip.Addr]error
	resolve := r.resolve
	if s.Mode == ModeDSRIPIP && r.ResolveTunnel != nil {
		resolve = r.ResolveTunnel
	}
	for i, b := range s.Backends {
		if b.State == Down {
			continue
		}
		h, err := resolve(b.Addr)
		if err != nil {
			if missing == nil {
				missing = map[netip.Addr]error{}
			}
			missing[b.Addr] = err
			continue
		}
		hops[i] = h
	}
	return hops, missing
}

// Refresh resolves every backend again and rewrites the services whose next
// hops changed (a neighbour answered, a MAC or a route moved). The daemon
// calls it periodically. Resolving happens outside the lock; a service
// changed meanwhile is left to its new version.
func (r *Reconciler) Refresh() error {
	r.mu.Lock()
	snap := make([]*applied, 0, len(r.byName))
	for _, a := range r.byName {
		snap = append(snap, a)
	}
	r.mu.Unlock()
	type change struct {
		a    *applied
		hops []NextHop
	}
	var changed []change
	for _, a := range snap {
		hops, _ := r.resolveAll(&a.svc)
		keepKnownHops(&a.svc, hops, a)
		for i := range hops {
			if hops[i].MAC.String() != a.hops[i].MAC.String() || hops[i].Ifindex != a.hops[i].Ifindex {
				changed = append(changed, change{a, hops})
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, c := range changed {
		if r.byName[c.a.svc.Name] == c.a {
			errs = append(errs, r.set(c.a.svc, c.hops))
		}
	}
	return errors.Join(errs...)
}

// keepKnownHops gives a backend of s that resolves to no next hop now
// (hops[i] empty: its neighbour entry is being probed again, or was
// flushed) the one it had in old, the service as applied: taking it out
// would move its flows to other backends for good over what is most often
// a lapse. A backend the operator took down, or a changed mode, keeps none.
func keepKnownHops(s *Service, hops []NextHop, old *applied) {
	if old == nil || old.svc.Mode != s.Mode {
		return
	}
	for i, b := range s.Backends {
		if hops[i].MAC != nil || b.State == Down {
			continue
		}
		if j := slices.IndexFunc(old.svc.Backends, func(o Backend) bool { return o.Addr == b.Addr }); j >= 0 && j < len(old.hops) {
			hops[i] = old.hops[j]
		}
	}
}

// claimIDs finds the ids of the service and of each backend: kept from the
// applied version, adopted from the maps, or new.
func (r *Reconciler) claimIDs(s *Service, old *applied, k maps.ServiceKey) (*applied, bool, error) {
	a := &applied{backends: map[netip.Addr]uint32{}}
	fresh := false
	var adopted map[netip.Addr]uint32
	switch id, ok := r.adoptSvc[k]; {
	case old != nil:
		a.id = old.id
	case ok:
		a.id = id
		delete(r.adoptSvc, k)
		adopted = r.adoptBackend[id]
		delete(r.adoptBackend, id)
	default:
		id, err := r.svcIDs.take()
		if err != nil {
			return nil, false, fmt.Errorf("%w: %d services", ErrFull, MaxServices)
		}
		a.id, fresh = id, true
	}
	for _, b := range s.Backends {
		if old != nil {
			if id, ok := old.backends[b.Addr]; ok {
				a.backends[b.Addr] = id
				continue
			}
		}
		if id, ok := adopted[b.Addr]; ok {
			a.backends[b.Addr] = id
			delete(adopted, b.Addr)
			continue
		}
		id, err := r.backendIDs.take()
		if err != nil {
			for addr, id := range a.backends {
				if old == nil || old.backends[addr] != id {
					r.backendIDs.release(id)
				}
			}
			if fresh {
				r.svcIDs.release(a.id)
			}
			return nil, false, fmt.Errorf("%w: %d backends", ErrFull, MaxBackends)
		}
		a.backends[b.Addr] = id
	}
	for _, id := range adopted {
		a.stale = append(a.stale, id)
	}
	return a, fresh, nil
}

func (r *Reconciler) write(s *Service, a *applied, hops []NextHop, k maps.ServiceKey, old *applied, fresh bool) error {
	if fresh {
		if err := r.dp.ResetServiceStats(a.id); err != nil {
			return err
		}
	}
	for i, b := range s.Backends {
		id := a.backends[b.Addr]
		if old == nil || old.backends[b.Addr] != id {
			if err := r.dp.ResetBackendStats(id); err != nil {
				return err
			}
		}
		e := maps.BackendEntry{Addr: b.Addr, MAC: hops[i].MAC, Ifindex: uint32(hops[i].Ifindex),
			Service: a.id, Down: b.State == Down || hops[i].MAC == nil}
		if err := r.dp.PutBackend(id, e); err != nil {
			return err
		}
	}
	var active []MaglevBackend
	for i, b := range s.Backends {
		if (b.State == Active || b.State == "") && hops[i].MAC != nil {
			active = append(active, MaglevBackend{Addr: b.Addr, Weight: b.Weight})
		}
	}
	idx, err := BuildTable(active, s.TableSize)
	if err != nil {
		return err
	}
	table := make([]uint32, len(idx))
	for i, j := range idx {
		table[i] = maps.NoBackend
		if j != NoBackend {
			table[i] = a.backends[active[j].Addr]
		}
	}
	if err := r.dp.SwapTable(a.id, table); err != nil {
		return err
	}
	mode, hash := bpf.XDPLbModeLB_MODE_DSR_IPIP, bpf.XDPLbHashLB_HASH_5TUPLE
	if s.Mode == ModeDSRL2 {
		mode = bpf.XDPLbModeLB_MODE_DSR_L2
	}
	if s.HashInput == HashSrcIP {
		hash = bpf.XDPLbHashLB_HASH_SRC_IP
	}
	if err := r.dp.PutService(k, maps.ServiceEntry{ID: a.id, TableSize: s.TableSize, Mode: mode, Hash: hash}); err != nil {
		return err
	}
	return r.dp.PutVIP(s.VIP)
}

func (r *Reconciler) unrefVIP(vip netip.Addr) {
	r.vipRefs[vip]--
	if r.vipRefs[vip] <= 0 {
		delete(r.vipRefs, vip)
		_ = r.dp.DeleteVIP(vip)
	}
}

// ErrNoService is returned for a service name that is not set.
var ErrNoService = errors.New("no such service")

// Delete removes a service: its entry first, so no packet meets a
// half-removed service, then its table and backends.
func (r *Reconciler) Delete(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byName[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoService, name)
	}
	if err := r.dp.DeleteService(keyOf(&a.svc)); err != nil {
		return err
	}
	delete(r.byName, name)
	r.unrefVIP(a.svc.VIP)
	var errs []error
	errs = append(errs, r.dp.DeleteTable(a.id))
	for _, id := range a.backends {
		errs = append(errs, r.dp.ClearBackend(id))
		r.backendIDs.release(id)
	}
	r.svcIDs.release(a.id)
	return errors.Join(errs...)
}

// Prune removes what the maps held at start and no desired service claimed:
// services deleted while the daemon was down. Call it after restoring every
// service.
func (r *Reconciler) Prune() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, id := range r.adoptSvc {
		errs = append(errs, r.dp.DeleteService(k), r.dp.DeleteTable(id))
		if r.vipRefs[k.VIP] == 0 {
			errs = append(errs, r.dp.DeleteVIP(k.VIP))
		}
		r.svcIDs.release(id)
	}
	r.adoptSvc = map[maps.ServiceKey]uint32{}
	for _, bs := range r.adoptBackend {
		for _, id := range bs {
			errs = append(errs, r.dp.ClearBackend(id))
			r.backendIDs.release(id)
		}
	}
	r.adoptBackend = map[uint32]map[netip.Addr]uint32{}
	return errors.Join(errs...)
}
