// Package stats counts the L7 proxy's traffic per virtual server, location
// and upstream server, like nginx's VTS module: requests, response classes,
// bytes, active requests and latency histograms. The proxy resolves the
// *Counters it needs when it builds its configuration and records into them
// on the hot path without locks or allocations; Snapshot (JSON for the API
// and the web UI) and Collector (Prometheus) read them.
package stats

import (
	"maps"
	"sync"
	"sync/atomic"
)

type pair = [2]string

// Registry holds the Counters by name. It is safe for concurrent use: lookups
// of existing Counters read an immutable map without locking; creating,
// forgetting and resetting take a mutex.
type Registry struct {
	mu        sync.Mutex // serializes writers of the maps below
	vservers  atomic.Pointer[map[string]*Counters]
	locations atomic.Pointer[map[pair]*Counters] // {vserver, location}
	servers   atomic.Pointer[map[pair]*Counters] // {upstream, addr}

	// The proxy's client connections: accepted, open now (idle keep-alive
	// ones and those in a handshake included), and upgraded ones
	// (WebSockets), which the HTTP server no longer holds once it hands
	// them to the tunnel.
	accepted      atomic.Uint64
	open, tunnels atomic.Int64
}

// ClientOpened counts a client connection the proxy accepted.
func (r *Registry) ClientOpened() {
	r.accepted.Add(1)
	r.open.Add(1)
}

// ClientClosed counts the end of a connection ClientOpened counted, or
// its hand-over to a tunnel.
func (r *Registry) ClientClosed() { r.open.Add(-1) }

// TunnelOpened and TunnelClosed count an upgraded connection's tunnel.
func (r *Registry) TunnelOpened() { r.tunnels.Add(1) }
func (r *Registry) TunnelClosed() { r.tunnels.Add(-1) }

// activeClients is the client connections open now, tunnels included.
func (r *Registry) activeClients() int64 { return r.open.Load() + r.tunnels.Load() }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.vservers.Store(&map[string]*Counters{})
	r.locations.Store(&map[pair]*Counters{})
	r.servers.Store(&map[pair]*Counters{})
	return r
}

// lookup returns the Counters of key in the map at p, adding them (copy on
// write) on first use.
func lookup[K comparable](mu *sync.Mutex, p *atomic.Pointer[map[K]*Counters], key K) *Counters {
	if c := (*p.Load())[key]; c != nil {
		return c
	}
	mu.Lock()
	defer mu.Unlock()
	old := *p.Load()
	if c := old[key]; c != nil {
		return c
	}
	m := make(map[K]*Counters, len(old)+1)
	maps.Copy(m, old)
	c := newCounters()
	m[key] = c
	p.Store(&m)
	return c
}

// VServer returns the counters of a virtual server, created on first use;
// later calls return the same pointer until Retain forgets it.
func (r *Registry) VServer(name string) *Counters {
	return lookup(&r.mu, &r.vservers, name)
}

// Location returns the counters of a location of a virtual server.
func (r *Registry) Location(vserver, location string) *Counters {
	return lookup(&r.mu, &r.locations, pair{vserver, location})
}

// Server returns the counters of one server (addr) of an upstream.
func (r *Registry) Server(upstream, addr string) *Counters {
	return lookup(&r.mu, &r.servers, pair{upstream, addr})
}

// retain keeps the entries of the map at p whose key is in keep.
func retain[K comparable](p *atomic.Pointer[map[K]*Counters], keep []K) {
	old := *p.Load()
	m := make(map[K]*Counters, len(keep))
	for _, k := range keep {
		if c := old[k]; c != nil {
			m[k] = c
		}
	}
	p.Store(&m)
}

// Retain forgets the counters of every virtual server, location and server
// not listed, so that the label sets stay those of the configuration. A
// forgotten name starts again from zero if it is used again; a Counters
// still held by an in-flight request keeps counting, unseen.
func (r *Registry) Retain(vservers []string, locations [][2]string, servers [][2]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	retain(&r.vservers, vservers)
	retain(&r.locations, locations)
	retain(&r.servers, servers)
}

// ResetUpstream zeroes the counters of every server of upstream. Active
// gauges are kept: they count requests still in flight.
func (r *Registry) ResetUpstream(upstream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range *r.servers.Load() {
		if k[0] == upstream {
			c.reset()
		}
	}
}
