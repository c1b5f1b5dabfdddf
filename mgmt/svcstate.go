package mgmt

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/sluicelb/sluice/l4"
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

// svcState is the desired L4 services: validated, applied through the
// reconciler, then stored; one writer at a time.
type svcState struct {
	mu       sync.Mutex
	store    svcStore
	rec      *l4.Reconciler
	counters svcCounters
	versions map[string]uint64
	log      *slog.Logger
}

func newSvcState(store svcStore, rec *l4.Reconciler, counters svcCounters, log *slog.Logger) *svcState {
	return &svcState{store: store, rec: rec, counters: counters, versions: map[string]uint64{}, log: log}
}

// restore applies the stored services, then removes what the pinned maps
// still hold of services deleted while the daemon was down.
func (s *svcState) restore(st State) error {
	for _, svc := range st.Services {
		if err := s.rec.Set(svc.Service); err != nil {
			return fmt.Errorf("restore service %s: %w", svc.Name, err)
		}
		s.versions[svc.Name] = svc.Version
	}
	return s.rec.Prune()
}

// ServiceView is a service as the API shows it.
type ServiceView struct {
	l4.Service
	Version uint64 `json:"version"`
}

func (s *svcState) find(name string) (l4.Service, bool) {
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
	svcs := s.rec.Services()
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
	if err := s.rec.Set(svc); err != nil {
		return ServiceView{}, svcError(err)
	}
	version := s.versions[svc.Name] + 1
	if err := s.store.PutService(StoredService{Service: svc, Version: version}); err != nil {
		if existed {
			err = errors.Join(err, s.rec.Set(old))
		} else {
			err = errors.Join(err, s.rec.Delete(svc.Name))
		}
		return ServiceView{}, fmt.Errorf("store service %s: %w", svc.Name, err)
	}
	s.versions[svc.Name] = version
	return ServiceView{Service: svc, Version: version}, nil
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
	if _, ok := s.find(name); !ok {
		return errNotFound("no service %q", name)
	}
	if err := checkIfMatch(true, s.versions[name], ifMatch); err != nil {
		return err
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
