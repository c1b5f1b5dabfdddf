package upstream

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is an upstream pool at run time: its configuration, its servers
// with their live state, and its balancer. It is safe for concurrent use.
//
// Readers (Pick, KeyFor, Servers, Config) load an immutable snapshot through
// one atomic pointer and take no pool lock; writers (Update, AddServer,
// UpdateServer, RemoveServer) are serialized by a mutex, build a complete
// new snapshot and swap it in, so a request sees either the old servers or
// the new ones, never a mix. The only lock on the Pick path is the
// round-robin balancer's (also behind hash for requests without a key),
// held for one pass over the servers of the pool, no allocation inside:
// smooth weighted round-robin updates every server's current weight on each
// pick, as nginx does under its upstream lock (see RoundRobin). A Pool must
// not be copied.
type Pool struct {
	mu     sync.Mutex // serializes writers
	nextID int        // guarded by mu: the next id to assign
	snap   atomic.Pointer[snapshot]
	now    func() time.Time
}

// snapshot is one configuration of a pool, never modified once stored.
type snapshot struct {
	cfg                Config    // normalized, every server with its id
	servers            []*Server // in the order of cfg.Servers
	primaries, backups []*Server
	primary, backup    Balancer // nil for an empty tier
	keyKind            int      // keyNone unless the balancer is hash
	keyName            string   // the canonical header or the cookie name
}

// NewPool returns a pool running cfg. Zero fields take their defaults
// (Normalize) and servers without an id get one. It returns a *ConfigError
// (matching ErrInvalid) when cfg is not valid.
func NewPool(cfg Config) (*Pool, error) { return newPool(cfg, time.Now) }

func newPool(cfg Config, now func() time.Time) (*Pool, error) {
	p := &Pool{nextID: 1, now: now}
	if err := p.apply(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.snap.Load().cfg.Name }

// Config returns the pool's configuration, normalized and with every
// server's id. The caller may modify it.
func (p *Pool) Config() Config { return p.snap.Load().cfg.Clone() }

// Servers returns the pool's servers in the order of its configuration.
func (p *Pool) Servers() []*Server { return slices.Clone(p.snap.Load().servers) }

// Server returns the server with id, or nil.
func (p *Pool) Server(id int) *Server {
	for _, s := range p.snap.Load().servers {
		if s.cfg.ID == id {
			return s
		}
	}
	return nil
}

// Update replaces the pool's configuration atomically. A server keeps its
// live state (requests in flight, failures, time out) when the new config
// has a server with its id, or, for a server given without an id, with its
// address (it then keeps its id too); a server whose address changed under
// the same id starts with a clean failure record. Requests in flight finish
// on the servers they picked. A bad cfg returns a *ConfigError (matching
// ErrInvalid) and changes nothing.
func (p *Pool) Update(cfg Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.apply(cfg)
}

// AddServer adds sc to the pool and returns it as the pool keeps it: with
// its defaults and, when sc.ID is 0, a new id. It returns a *ConfigError
// (matching ErrInvalid) for a bad server, an address the pool already has,
// or an id already in use.
func (p *Pool) AddServer(sc ServerConfig) (ServerConfig, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.snap.Load().cfg.Clone()
	if sc.ID == 0 {
		sc.ID = p.nextID
	}
	cfg.Servers = append(cfg.Servers, sc)
	if err := p.apply(cfg); err != nil {
		return ServerConfig{}, err
	}
	s := p.snap.Load().servers
	return s[len(s)-1].cfg, nil
}

// UpdateServer changes the server with id by calling patch on a copy of its
// configuration (patch cannot change the id) and returns the result as the
// pool keeps it. It returns ErrNoServer when the pool has no server id, and
// a *ConfigError (matching ErrInvalid) when the patched config is bad; then
// nothing changes.
func (p *Pool) UpdateServer(id int, patch func(*ServerConfig)) (ServerConfig, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.snap.Load().cfg.Clone()
	i := slices.IndexFunc(cfg.Servers, func(s ServerConfig) bool { return s.ID == id })
	if i < 0 {
		return ServerConfig{}, fmt.Errorf("server %d: %w", id, ErrNoServer)
	}
	patch(&cfg.Servers[i])
	cfg.Servers[i].ID = id
	if err := p.apply(cfg); err != nil {
		return ServerConfig{}, err
	}
	return p.snap.Load().servers[i].cfg, nil
}

// RemoveServer removes the server with id; requests using it finish. It
// returns ErrNoServer when the pool has no server id.
func (p *Pool) RemoveServer(id int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.snap.Load().cfg.Clone()
	i := slices.IndexFunc(cfg.Servers, func(s ServerConfig) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("server %d: %w", id, ErrNoServer)
	}
	cfg.Servers = slices.Delete(cfg.Servers, i, i+1)
	return p.apply(cfg)
}

// apply validates cfg, builds its snapshot over the live state of the
// current one and stores it. p.mu is held (or p is not shared yet).
func (p *Pool) apply(in Config) error {
	cfg := in.Clone()
	cfg.Normalize()
	if err := cfg.validate(); err != nil {
		return err
	}
	old := p.snap.Load()
	byID := map[int]*Server{}
	byAddr := map[string]*Server{}
	if old != nil {
		for _, s := range old.servers {
			byID[s.cfg.ID] = s
			byAddr[strings.ToLower(s.cfg.Addr)] = s
		}
	}
	// Ids first: those given, then the old id of a server matched by
	// address, then new ones.
	taken := map[int]bool{}
	nextID := p.nextID
	for _, sc := range cfg.Servers {
		taken[sc.ID] = sc.ID != 0
		nextID = max(nextID, sc.ID+1)
	}
	for i := range cfg.Servers {
		sc := &cfg.Servers[i]
		if sc.ID != 0 {
			continue
		}
		if o := byAddr[strings.ToLower(sc.Addr)]; o != nil && !taken[o.cfg.ID] {
			sc.ID = o.cfg.ID
		} else {
			sc.ID = nextID
			nextID++
		}
		taken[sc.ID] = true
	}
	sn := &snapshot{cfg: cfg, servers: make([]*Server, len(cfg.Servers))}
	for i, sc := range cfg.Servers {
		st := (*state)(nil)
		if o := byID[sc.ID]; o != nil && strings.EqualFold(o.cfg.Addr, sc.Addr) {
			st = o.st
		} else {
			st = newState(p.now)
		}
		s := &Server{cfg: sc, st: st}
		sn.servers[i] = s
		if sc.Backup {
			sn.backups = append(sn.backups, s)
		} else {
			sn.primaries = append(sn.primaries, s)
		}
	}
	if len(sn.primaries) > 0 {
		sn.primary = newBalancer(cfg.Balancer, sn.primaries)
	}
	if len(sn.backups) > 0 {
		sn.backup = newBalancer(cfg.Balancer, sn.backups)
	}
	if cfg.Balancer == BalancerHash {
		sn.keyKind, sn.keyName, _ = parseHashKey(cfg.HashKey)
	}
	p.nextID = nextID
	p.snap.Store(sn)
	return nil
}

// Pick chooses a server for one request attempt. key is the request's hash
// key (KeyFor; ignored unless the balancer is hash), tried the servers this
// request already tried, which Pick skips so that a retry goes to another
// server. Backup servers are used only when no primary is usable, down
// servers never. When every server that is neither down nor tried is
// unavailable (failed), Pick returns the one whose time out ends soonest,
// a primary if there is one, rather than failing the request outright, as
// nginx does. It returns nil when the pool has no such server.
//
// Pick does not allocate and takes no pool-wide lock.
func (p *Pool) Pick(key string, tried []*Server) *Server { return p.PickAt(key, tried, p.now()) }

// PickAt is Pick at the caller's clock now, for a caller that has just
// read it: failures time out in seconds, and a clock read costs about as
// much as the pick.
func (p *Pool) PickAt(key string, tried []*Server, now time.Time) *Server {
	sn := p.snap.Load()
	f := Filter{Now: now.UnixNano(), Tried: tried}
	if sn.primary != nil {
		if s := pick(sn.primary, key, f); s != nil {
			return s
		}
	}
	if sn.backup != nil {
		if s := pick(sn.backup, key, f); s != nil {
			return s
		}
	}
	if s := soonest(sn.primaries, f); s != nil {
		return s
	}
	return soonest(sn.backups, f)
}

// soonest returns the server, neither down nor tried, whose time out ends
// first.
func soonest(servers []*Server, f Filter) *Server {
	var best *Server
	var until int64
	for _, s := range servers {
		if s.cfg.Down || f.tried(s) {
			continue
		}
		if u := s.st.downUntil.Load(); best == nil || u < until {
			best, until = s, u
		}
	}
	return best
}
