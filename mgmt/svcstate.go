package mgmt

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sluicelb/sluice/l4"
	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/maps"
)

// svcStore is where services are kept: the Store, or a fake in tests.
type svcStore interface {
	PutService(StoredService) error
	DeleteService(name string) error
}

// svcCounters reads the L4 counters: maps.LB, or nil when there is no datapath.
type svcCounters interface {
	ServiceStats(id uint32) (maps.LBCounter, error)
	BackendStats(id uint32) (maps.LBCounter, error)
	FlowStats() (maps.FlowStats, error)
	Flows() (int, error)
}

// svcState is the desired services: validated, applied (L4 through the
// reconciler, L7 to the proxy), then stored; one writer at a time.
//
// L4 services live in the reconciler; L7 services (mode l7) live here and
// go to the proxy through onL7, which gets every L7 endpoint after a change
// and may refuse it (a virtual server still listens on a service).
type svcState struct {
	mu       sync.Mutex
	store    svcStore
	rec      *l4.Reconciler
	counters svcCounters
	versions map[string]uint64
	l7       map[string]l4.Service
	onL7     func(map[string]netip.AddrPort) error
	log      *slog.Logger
}

func newSvcState(store svcStore, rec *l4.Reconciler, counters svcCounters, log *slog.Logger) *svcState {
	return &svcState{store: store, rec: rec, counters: counters, versions: map[string]uint64{},
		l7: map[string]l4.Service{}, onL7: func(map[string]netip.AddrPort) error { return nil }, log: log}
}

// restore applies the stored services, then removes what the pinned maps
// still hold of services deleted while the daemon was down. L7 services
// are only collected: the daemon hands them to the proxy with the rest of
// the L7 state.
func (s *svcState) restore(st State) error {
	for _, svc := range st.Services {
		if svc.Mode == l4.ModeL7 {
			s.l7[svc.Name] = svc.Service
		} else if err := s.rec.Set(svc.Service); err != nil {
			return fmt.Errorf("restore service %s: %w", svc.Name, err)
		}
		s.versions[svc.Name] = svc.Version
	}
	return s.rec.Prune()
}

// l7Endpoints returns the VIP:port of every L7 service by name.
func (s *svcState) l7Endpoints() map[string]netip.AddrPort {
	out := make(map[string]netip.AddrPort, len(s.l7))
	for name, svc := range s.l7 {
		out[name] = netip.AddrPortFrom(svc.VIP, svc.Port)
	}
	return out
}

// L7Endpoints is l7Endpoints under the lock.
func (s *svcState) L7Endpoints() map[string]netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l7Endpoints()
}

// all returns every service, L4 and L7, sorted by name.
func (s *svcState) all() []l4.Service {
	out := s.rec.Services()
	for _, svc := range s.l7 {
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b l4.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ServiceView is a service as the API shows it.
type ServiceView struct {
	l4.Service
	Version uint64 `json:"version"`
}

func (s *svcState) find(name string) (l4.Service, bool) {
	if svc, ok := s.l7[name]; ok {
		return svc, true
	}
	for _, svc := range s.rec.Services() {
		if svc.Name == name {
			return svc, true
		}
	}
	return l4.Service{}, false
}

func (s *svcState) list() []ServiceView {
	s.mu.Lock()
	defer s.mu.Unlock()
	svcs := s.all()
	out := make([]ServiceView, len(svcs))
	for i, svc := range svcs {
		out[i] = ServiceView{Service: svc, Version: s.versions[svc.Name]}
	}
	return out
}

func (s *svcState) get(name string) (ServiceView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.find(name)
	if !ok {
		return ServiceView{}, errNotFound("no service %q", name)
	}
	return ServiceView{Service: svc, Version: s.versions[name]}, nil
}

// put creates or replaces a service. Invalid input changes nothing (400);
// the store is written after the maps, and a store failure puts the old
// service back.
func (s *svcState) put(svc l4.Service, ifMatch string) (ServiceView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existed := s.find(svc.Name)
	if err := checkIfMatch(existed, s.versions[svc.Name], ifMatch); err != nil {
		return ServiceView{}, err
	}
	return s.apply(svc, old, existed)
}

func (s *svcState) apply(svc l4.Service, old l4.Service, existed bool) (ServiceView, error) {
	svc.Normalize()
	if err := s.set(svc, old, existed); err != nil {
		return ServiceView{}, err
	}
	version := s.versions[svc.Name] + 1
	if err := s.store.PutService(StoredService{Service: svc, Version: version}); err != nil {
		if existed {
			err = errors.Join(err, s.set(old, svc, true))
		} else {
			err = errors.Join(err, s.unset(svc))
		}
		return ServiceView{}, fmt.Errorf("store service %s: %w", svc.Name, err)
	}
	s.versions[svc.Name] = version
	return ServiceView{Service: svc, Version: version}, nil
}

// set applies svc where its mode belongs, taking old (of the other kind,
// when the mode changed) out of the other place.
func (s *svcState) set(svc, old l4.Service, existed bool) error {
	if svc.Mode != l4.ModeL7 {
		if err := s.rec.Set(svc); err != nil {
			return svcError(err)
		}
		if existed && old.Mode == l4.ModeL7 {
			delete(s.l7, old.Name)
			return s.onL7(s.l7Endpoints())
		}
		return nil
	}
	if err := svc.Validate(); err != nil {
		return svcError(err)
	}
	others := slices.DeleteFunc(s.all(), func(o l4.Service) bool { return o.Name == svc.Name })
	if err := l4.ValidateSet(append(others, svc)); err != nil {
		return svcError(err)
	}
	prev, had := s.l7[svc.Name]
	s.l7[svc.Name] = svc
	if err := s.onL7(s.l7Endpoints()); err != nil {
		if had {
			s.l7[svc.Name] = prev
		} else {
			delete(s.l7, svc.Name)
		}
		return l7Error(err)
	}
	if existed && old.Mode != l4.ModeL7 {
		return s.rec.Delete(old.Name)
	}
	return nil
}

// unset removes a service from where its mode put it.
func (s *svcState) unset(svc l4.Service) error {
	if svc.Mode != l4.ModeL7 {
		return s.rec.Delete(svc.Name)
	}
	delete(s.l7, svc.Name)
	if err := s.onL7(s.l7Endpoints()); err != nil {
		s.l7[svc.Name] = svc
		return err
	}
	return nil
}

// BackendPatch changes one backend of a service; nil fields stay.
type BackendPatch struct {
	Weight *uint16          `json:"weight,omitempty"`
	State  *l4.BackendState `json:"state,omitempty"`
}

func (s *svcState) patchBackend(name string, addr netip.Addr, p BackendPatch, ifMatch string) (ServiceView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.find(name)
	if !ok {
		return ServiceView{}, errNotFound("no service %q", name)
	}
	if err := checkIfMatch(true, s.versions[name], ifMatch); err != nil {
		return ServiceView{}, err
	}
	svc := old
	svc.Backends = slices.Clone(old.Backends)
	i := slices.IndexFunc(svc.Backends, func(b l4.Backend) bool { return b.Addr == addr })
	if i < 0 {
		return ServiceView{}, errNotFound("service %q has no backend %s", name, addr)
	}
	if p.Weight != nil {
		svc.Backends[i].Weight = *p.Weight
	}
	if p.State != nil {
		svc.Backends[i].State = *p.State
	}
	return s.apply(svc, old, true)
}

func (s *svcState) delete(name, ifMatch string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.find(name)
	if !ok {
		return errNotFound("no service %q", name)
	}
	if err := checkIfMatch(true, s.versions[name], ifMatch); err != nil {
		return err
	}
	if svc.Mode == l4.ModeL7 {
		// The proxy refuses while a virtual server listens here; nothing
		// is stored before that.
		if err := s.unset(svc); err != nil {
			if errors.Is(err, l7.ErrInvalidConfig) {
				return errConflict("service %q is in use: %v", name, err)
			}
			return l7Error(err)
		}
		if err := s.store.DeleteService(name); err != nil {
			s.l7[name] = svc
			return errors.Join(fmt.Errorf("store: %w", err), s.onL7(s.l7Endpoints()))
		}
		delete(s.versions, name)
		return nil
	}
	if err := s.store.DeleteService(name); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := s.rec.Delete(name); err != nil {
		// The store no longer has it; a restart prunes what is left.
		s.log.Error("service removed from the store but not wholly from the datapath", "service", name, "err", err)
	}
	delete(s.versions, name)
	return nil
}

func svcError(err error) error {
	switch {
	case errors.Is(err, l4.ErrInvalidService), errors.Is(err, l4.ErrTableSize):
		return errBadRequest("%v", err)
	case errors.Is(err, l4.ErrVIPClash):
		return errConflict("%v", err)
	case errors.Is(err, l4.ErrFull):
		return &apiError{status: 507, Code: "datapath_full", Message: err.Error()}
	}
	return err
}

// ServiceStats are a service's counters with its backends'.
type ServiceStats struct {
	Name     string                    `json:"name"`
	Counter  maps.LBCounter            `json:"counters"`
	Backends map[string]maps.LBCounter `json:"backends"`
}

// L4Stats are the L4 counters of /v1/stats.
type L4Stats struct {
	Services []ServiceStats `json:"services"`
	Flows    maps.FlowStats `json:"conntrack"`
	Entries  int            `json:"conntrack_entries"`
}

func (s *svcState) stats() (L4Stats, error) {
	var out L4Stats
	if s.counters == nil {
		return out, nil
	}
	var errs []error
	for _, svc := range s.rec.Services() {
		id, ids, ok := s.rec.IDs(svc.Name)
		if !ok {
			continue
		}
		st := ServiceStats{Name: svc.Name, Backends: map[string]maps.LBCounter{}}
		var err error
		st.Counter, err = s.counters.ServiceStats(id)
		errs = append(errs, err)
		for addr, bid := range ids {
			c, err := s.counters.BackendStats(bid)
			errs = append(errs, err)
			st.Backends[addr.String()] = c
		}
		out.Services = append(out.Services, st)
	}
	var err error
	out.Flows, err = s.counters.FlowStats()
	errs = append(errs, err)
	out.Entries, err = s.counters.Flows()
	errs = append(errs, err)
	return out, errors.Join(errs...)
}

func versionTag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }
