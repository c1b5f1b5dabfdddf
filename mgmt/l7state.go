package mgmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/sluicelb/sluice/l7"
	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/upstream"
)

// L7State is the desired state of the proxy besides its services: virtual
// servers, upstreams, certificates and the access log, stored as one
// document (a change rewrites it; it is small next to the IP lists).
type L7State struct {
	VServers  []l7.VServer      `json:"vservers"`
	Upstreams []upstream.Config `json:"upstreams"`
	Certs     []l7.Cert         `json:"certs"`
	AccessLog accesslog.Config  `json:"access_log"`
	// Versions of each object, keyed "vserver/NAME", "upstream/NAME", "cert/NAME".
	Versions map[string]uint64 `json:"versions"`
}

func (d L7State) clone() L7State {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // only plain data
	}
	var out L7State
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	if out.Versions == nil {
		out.Versions = map[string]uint64{}
	}
	return out
}

// l7Proxy is the proxy as the state sees it; *l7.Proxy, or a fake.
type l7Proxy interface {
	Apply(l7.Config) error
}

// l7Steerer makes VIP:ports land on the proxy; the intercept, or a fake.
type l7Steerer interface {
	Add(netip.AddrPort) error
	Remove(netip.AddrPort) error
}

type l7Store interface {
	PutL7(L7State) error
}

// l7State owns the L7 desired state: every change is validated by the
// proxy's Apply (one atomic swap), then steered, then stored; a failure at
// any step puts the previous state back. One writer at a time.
type l7State struct {
	mu        sync.Mutex
	store     l7Store
	proxy     l7Proxy
	steer     l7Steerer
	doc       L7State
	endpoints map[string]netip.AddrPort
	steered   map[netip.AddrPort]bool
	log       *slog.Logger
}

func newL7State(store l7Store, proxy l7Proxy, steer l7Steerer, log *slog.Logger) *l7State {
	return &l7State{store: store, proxy: proxy, steer: steer, doc: L7State{Versions: map[string]uint64{}},
		endpoints: map[string]netip.AddrPort{}, steered: map[netip.AddrPort]bool{}, log: log}
}

// restore applies the stored document and the L7 services' endpoints.
func (s *l7State) restore(doc L7State, endpoints map[string]netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if doc.Versions == nil {
		doc.Versions = map[string]uint64{}
	}
	if err := s.apply(doc, endpoints); err != nil {
		return fmt.Errorf("restore l7 state: %w", err)
	}
	return nil
}

// setEndpoints is the services' hook: the L7 services changed.
func (s *l7State) setEndpoints(endpoints map[string]netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apply(s.doc, endpoints)
}

func (s *l7State) config(doc L7State, endpoints map[string]netip.AddrPort) l7.Config {
	return l7.Config{Endpoints: endpoints, VServers: doc.VServers, Upstreams: doc.Upstreams, Certs: doc.Certs,
		AccessLog: doc.AccessLog}
}

// apply makes doc and endpoints current in the proxy and the intercept:
// the proxy learns an endpoint before traffic is steered to it, and
// traffic stops being steered before the proxy forgets it.
func (s *l7State) apply(doc L7State, endpoints map[string]netip.AddrPort) error {
	if err := s.proxy.Apply(s.config(doc, endpoints)); err != nil {
		return err
	}
	want := map[netip.AddrPort]bool{}
	for _, ap := range endpoints {
		want[ap] = true
	}
	var added []netip.AddrPort
	for ap := range want {
		if s.steered[ap] {
			continue
		}
		if err := s.steer.Add(ap); err != nil {
			for _, a := range added {
				_ = s.steer.Remove(a)
			}
			return errors.Join(fmt.Errorf("steer %s to the proxy: %w", ap, err),
				s.proxy.Apply(s.config(s.doc, s.endpoints)))
		}
		added = append(added, ap)
	}
	for ap := range s.steered {
		if !want[ap] {
			if err := s.steer.Remove(ap); err != nil {
				s.log.Warn("stop steering", "endpoint", ap, "err", err)
			}
		}
	}
	s.doc, s.endpoints, s.steered = doc, endpoints, want
	return nil
}

// commit applies doc, then stores it; if the store fails the previous
// document goes back.
func (s *l7State) commit(doc L7State) error {
	prev := s.doc
	if err := s.apply(doc, s.endpoints); err != nil {
		return l7Error(err)
	}
	if err := s.store.PutL7(doc); err != nil {
		return errors.Join(fmt.Errorf("store l7 state: %w", err), s.apply(prev, s.endpoints))
	}
	return nil
}

// edit runs fn on a copy of the document and commits the result.
func (s *l7State) edit(fn func(d *L7State) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.doc.clone()
	if err := fn(&next); err != nil {
		return err
	}
	return s.commit(next)
}

func (s *l7State) read(fn func(d *L7State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.doc)
}

func l7Error(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, l7.ErrInvalidConfig):
		return errBadRequest("%v", err)
	}
	return err
}

// bump raises an object's version and returns it.
func bump(d *L7State, key string) uint64 {
	d.Versions[key]++
	return d.Versions[key]
}

func checkObjectVersion(d *L7State, key string, exists bool, ifMatch string) error {
	return checkIfMatch(exists, d.Versions[key], ifMatch)
}

// namedList is one kind of object the state keeps in a list by name, each
// versioned under kind/name: virtual servers, upstreams, certificates.
type namedList[T any] struct {
	kind string
	list func(d *L7State) *[]T
	name func(T) string
}

var (
	vserverList = namedList[l7.VServer]{"vserver",
		func(d *L7State) *[]l7.VServer { return &d.VServers }, func(v l7.VServer) string { return v.Name }}
	upstreamList = namedList[upstream.Config]{"upstream",
		func(d *L7State) *[]upstream.Config { return &d.Upstreams }, func(u upstream.Config) string { return u.Name }}
	certList = namedList[l7.Cert]{"cert",
		func(d *L7State) *[]l7.Cert { return &d.Certs }, func(c l7.Cert) string { return c.Name }}
)

func (k namedList[T]) index(d *L7State, name string) int {
	return slices.IndexFunc(*k.list(d), func(o T) bool { return k.name(o) == name })
}

// all returns every object, sorted by name, and its version.
func (k namedList[T]) all(d *L7State) (objs []T, versions []uint64) {
	objs = slices.Clone(*k.list(d))
	slices.SortFunc(objs, func(a, b T) int { return strings.Compare(k.name(a), k.name(b)) })
	for _, o := range objs {
		versions = append(versions, d.Versions[k.kind+"/"+k.name(o)])
	}
	return objs, versions
}

// get returns the object named name and its version.
func (k namedList[T]) get(d *L7State, name string) (T, uint64, error) {
	i := k.index(d, name)
	if i < 0 {
		var zero T
		return zero, 0, errNotFound("no %s %q", k.kind, name)
	}
	return (*k.list(d))[i], d.Versions[k.kind+"/"+name], nil
}

// put adds o, or replaces the object of its name, once the version matches
// ifMatch and check (if any) passes, and returns its new version.
func (k namedList[T]) put(d *L7State, o T, ifMatch string, check func() error) (uint64, error) {
	name := k.name(o)
	i := k.index(d, name)
	if err := checkObjectVersion(d, k.kind+"/"+name, i >= 0, ifMatch); err != nil {
		return 0, err
	}
	if check != nil {
		if err := check(); err != nil {
			return 0, err
		}
	}
	if l := k.list(d); i >= 0 {
		(*l)[i] = o
	} else {
		*l = append(*l, o)
	}
	return bump(d, k.kind+"/"+name), nil
}

// delete removes the object named name once the version matches ifMatch
// and check (if any) passes.
func (k namedList[T]) delete(d *L7State, name, ifMatch string, check func() error) error {
	i := k.index(d, name)
	if i < 0 {
		return errNotFound("no %s %q", k.kind, name)
	}
	if err := checkObjectVersion(d, k.kind+"/"+name, true, ifMatch); err != nil {
		return err
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	l := k.list(d)
	*l = slices.Delete(*l, i, i+1)
	delete(d.Versions, k.kind+"/"+name)
	return nil
}

// --- virtual servers

// VServerView is a virtual server as the API shows it.
type VServerView struct {
	l7.VServer
	Version uint64 `json:"version"`
}

func (s *l7State) vservers() []VServerView {
	var out []VServerView
	s.read(func(d *L7State) {
		vs, versions := vserverList.all(d)
		for i, v := range vs {
			out = append(out, VServerView{VServer: v, Version: versions[i]})
		}
	})
	return out
}

func (s *l7State) vserver(name string) (VServerView, error) {
	var out VServerView
	var err error
	s.read(func(d *L7State) {
		out.VServer, out.Version, err = vserverList.get(d, name)
	})
	return out, err
}

func (s *l7State) putVServer(v l7.VServer, ifMatch string) (VServerView, error) {
	var out VServerView
	if v.Locations == nil {
		v.Locations = []l7.Location{}
	}
	err := s.edit(func(d *L7State) error {
		version, err := vserverList.put(d, v, ifMatch, nil)
		out = VServerView{VServer: v, Version: version}
		return err
	})
	return out, err
}

func (s *l7State) deleteVServer(name, ifMatch string) error {
	return s.edit(func(d *L7State) error { return vserverList.delete(d, name, ifMatch, nil) })
}

// putLocation adds or replaces one location of a virtual server.
func (s *l7State) putLocation(vs string, loc l7.Location) (VServerView, error) {
	var out VServerView
	err := s.edit(func(d *L7State) error {
		i := vserverList.index(d, vs)
		if i < 0 {
			return errNotFound("no vserver %q", vs)
		}
		v := &d.VServers[i]
		if j := slices.IndexFunc(v.Locations, func(l l7.Location) bool { return l.Name == loc.Name }); j >= 0 {
			v.Locations[j] = loc
		} else {
			v.Locations = append(v.Locations, loc)
		}
		out = VServerView{VServer: *v, Version: bump(d, "vserver/"+vs)}
		return nil
	})
	return out, err
}

func (s *l7State) deleteLocation(vs, name string) (VServerView, error) {
	var out VServerView
	err := s.edit(func(d *L7State) error {
		i := vserverList.index(d, vs)
		if i < 0 {
			return errNotFound("no vserver %q", vs)
		}
		v := &d.VServers[i]
		j := slices.IndexFunc(v.Locations, func(l l7.Location) bool { return l.Name == name })
		if j < 0 {
			return errNotFound("vserver %q has no location %q", vs, name)
		}
		v.Locations = slices.Delete(v.Locations, j, j+1)
		out = VServerView{VServer: *v, Version: bump(d, "vserver/"+vs)}
		return nil
	})
	return out, err
}

// --- upstreams

// assignIDs gives every server without an id the next free one.
func assignIDs(u *upstream.Config) {
	next := 1
	for _, sc := range u.Servers {
		next = max(next, sc.ID+1)
	}
	for i := range u.Servers {
		if u.Servers[i].ID == 0 {
			u.Servers[i].ID = next
			next++
		}
	}
}

// upstreams returns every upstream, sorted by name, with its version, read
// together.
func (s *l7State) upstreams() (cfgs []upstream.Config, versions []uint64) {
	s.read(func(d *L7State) { cfgs, versions = upstreamList.all(d) })
	return cfgs, versions
}

func (s *l7State) upstream(name string) (out upstream.Config, version uint64, err error) {
	s.read(func(d *L7State) { out, version, err = upstreamList.get(d, name) })
	return out, version, err
}

func (s *l7State) putUpstream(u upstream.Config, ifMatch string) (uint64, error) {
	var version uint64
	assignIDs(&u)
	err := s.edit(func(d *L7State) (err error) {
		version, err = upstreamList.put(d, u, ifMatch, nil)
		return err
	})
	return version, err
}

func (s *l7State) deleteUpstream(name, ifMatch string) error {
	return s.edit(func(d *L7State) error {
		return upstreamList.delete(d, name, ifMatch, func() error {
			cfg := l7.Config{VServers: d.VServers}
			if users := cfg.UpstreamUsers(name); len(users) > 0 {
				return errConflict("upstream %q is used by %s", name, strings.Join(users, ", "))
			}
			return nil
		})
	})
}

// editServers changes an upstream's server list.
func (s *l7State) editServers(name string, fn func(u *upstream.Config) error) error {
	return s.edit(func(d *L7State) error {
		i := upstreamList.index(d, name)
		if i < 0 {
			return errNotFound("no upstream %q", name)
		}
		if err := fn(&d.Upstreams[i]); err != nil {
			return err
		}
		bump(d, "upstream/"+name)
		return nil
	})
}

func (s *l7State) addServer(name string, sc upstream.ServerConfig) (upstream.ServerConfig, error) {
	err := s.editServers(name, func(u *upstream.Config) error {
		if sc.ID != 0 && slices.ContainsFunc(u.Servers, func(o upstream.ServerConfig) bool { return o.ID == sc.ID }) {
			return errConflict("upstream %q already has a server %d", name, sc.ID)
		}
		u.Servers = append(u.Servers, sc)
		assignIDs(u)
		sc = u.Servers[len(u.Servers)-1]
		return nil
	})
	return sc, err
}

func (s *l7State) patchServer(name string, id int, patch func(*upstream.ServerConfig)) (upstream.ServerConfig, error) {
	var out upstream.ServerConfig
	err := s.editServers(name, func(u *upstream.Config) error {
		i := slices.IndexFunc(u.Servers, func(o upstream.ServerConfig) bool { return o.ID == id })
		if i < 0 {
			return errNotFound("upstream %q has no server %d", name, id)
		}
		patch(&u.Servers[i])
		u.Servers[i].ID = id
		out = u.Servers[i]
		return nil
	})
	return out, err
}

func (s *l7State) deleteServer(name string, id int) error {
	return s.editServers(name, func(u *upstream.Config) error {
		i := slices.IndexFunc(u.Servers, func(o upstream.ServerConfig) bool { return o.ID == id })
		if i < 0 {
			return errNotFound("upstream %q has no server %d", name, id)
		}
		u.Servers = slices.Delete(u.Servers, i, i+1)
		return nil
	})
}

// --- certificates

// CertView is a certificate as the API shows it: never its private keys.
type CertView struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Default bool   `json:"default,omitempty"`
	Cert    string `json:"cert,omitempty"`
	Sign    string `json:"sign_cert,omitempty"`
	Enc     string `json:"enc_cert,omitempty"`
	Version uint64 `json:"version"`
}

func certView(c l7.Cert, version uint64) CertView {
	kind := c.Kind
	if kind == "" {
		kind = l7.CertTLS
	}
	return CertView{Name: c.Name, Kind: kind, Default: c.Default, Cert: c.CertPEM, Sign: c.SignCert, Enc: c.EncCert, Version: version}
}

func (s *l7State) certs() []CertView {
	var out []CertView
	s.read(func(d *L7State) {
		cs, versions := certList.all(d)
		for i, c := range cs {
			out = append(out, certView(c, versions[i]))
		}
	})
	return out
}

func (s *l7State) cert(name string) (CertView, error) {
	var out CertView
	var err error
	s.read(func(d *L7State) {
		var c l7.Cert
		var version uint64
		if c, version, err = certList.get(d, name); err == nil {
			out = certView(c, version)
		}
	})
	return out, err
}

func (s *l7State) putCert(c l7.Cert, ifMatch string) (CertView, error) {
	var out CertView
	err := s.edit(func(d *L7State) error {
		version, err := certList.put(d, c, ifMatch, func() error { return l7Error(c.Validate()) })
		out = certView(c, version)
		return err
	})
	return out, err
}

func (s *l7State) deleteCert(name, ifMatch string) error {
	return s.edit(func(d *L7State) error { return certList.delete(d, name, ifMatch, nil) })
}

// --- access log

func (s *l7State) accessLog() accesslog.Config {
	var out accesslog.Config
	s.read(func(d *L7State) { out = d.AccessLog })
	return out
}

func (s *l7State) putAccessLog(c accesslog.Config) error {
	return s.edit(func(d *L7State) error {
		if err := c.Validate(); err != nil {
			return errBadRequest("access log: %v", err)
		}
		d.AccessLog = c
		return nil
	})
}
