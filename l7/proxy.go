// Package l7 is Sluice's reverse proxy: connections the intercept steers to
// its listeners are served as HTTP/1.1, HTTP/2 (TLS with ALPN, or h2c),
// WebSocket and gRPC, routed by host and path to upstream pools, and counted
// per virtual server, location and upstream server. Its whole configuration
// is swapped atomically by Apply; nothing is ever reloaded.
package l7

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/fifopoll"
	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/tlcp"
	"github.com/sluicelb/sluice/l7/upstream"
)

// Options are the proxy's fixed settings.
type Options struct {
	Logger *slog.Logger
	Stats  *stats.Registry // nil: a new one
	Limits Limits
}

// Proxy is the L7 reverse proxy. It is safe for concurrent use.
type Proxy struct {
	log    *slog.Logger
	stats  *stats.Registry
	access *accesslog.Logger
	limits Limits

	tab atomic.Pointer[table]

	mu        sync.Mutex // serializes Apply; guards pools and transports
	pools     map[string]*upstream.Pool
	upstreams map[string]*upstreamTransport

	plain, secure, gm *connQueue // connections by protocol, each served by one http.Server
	h1                h1conns    // plain connections served by the proxy's own HTTP/1.1 loop
	shuttingDown      atomic.Bool
	tunnels           atomic.Int64 // upgraded connections (WebSockets) open: Shutdown waits for them
	servers           []*http.Server
	rp                *httputil.ReverseProxy
	tlsConfig         *tls.Config
	tlcpConfig        *tlcp.Config
	h2                *http2.Server    // HTTP/2 over TLCP
	poll              *fifopoll.Poller // accepted clients and the loop's upstream connections wait here, served in the kernel's order
	closed            chan struct{}
	closeOnce         sync.Once
	noCertWarned      atomic.Int64 // when a handshake without a certificate was last logged (Unix ns)
}

// New builds a proxy with an empty configuration: it answers 404 until the
// first Apply.
func New(opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stats == nil {
		opts.Stats = stats.NewRegistry()
	}
	access, err := accesslog.New(accesslog.Config{})
	if err != nil {
		return nil, err
	}
	poll, err := fifopoll.New()
	if err != nil {
		access.Close()
		return nil, err
	}
	p := &Proxy{log: opts.Logger, poll: poll, stats: opts.Stats, access: access, limits: opts.Limits.withDefaults(),
		pools: map[string]*upstream.Pool{}, upstreams: map[string]*upstreamTransport{},
		closed: make(chan struct{})}
	p.plain, p.secure, p.gm = newConnQueue(p.stats.ClientClosed), newConnQueue(p.stats.ClientClosed), newConnQueue(p.stats.ClientClosed)
	p.tab.Store(&table{endpoints: map[netip.AddrPort]*endpoint{}, tlsCerts: newCertSet(nil), tlcpCerts: newCertSet(nil)})
	p.tlsConfig = &tls.Config{GetCertificate: p.tlsCertificate, NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12}
	p.tlcpConfig = &tlcp.Config{GetCertificate: p.tlcpCertificate, NextProtos: []string{"h2", "http/1.1"},
		SessionCache: tlcp.NewSessionCache(4096, 10*time.Minute)}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    roundTripperFunc(p.roundTrip),
		ErrorHandler: p.upstreamError,
		BufferPool:   bufferPool{},
		ErrorLog:     log.New(discard{}, "", 0),
	}
	var h1h2c, h1h2 http.Protocols
	h1h2c.SetHTTP1(true)
	h1h2c.SetUnencryptedHTTP2(true)
	h1h2.SetHTTP1(true)
	h1h2.SetHTTP2(true)
	mk := func(protos *http.Protocols, scheme string) *http.Server {
		return &http.Server{
			Handler:           p,
			Protocols:         protos,
			ReadHeaderTimeout: time.Duration(p.limits.ReadHeaderTimeout),
			IdleTimeout:       time.Duration(p.limits.IdleTimeout),
			MaxHeaderBytes:    p.limits.MaxHeaderBytes,
			ErrorLog:          log.New(discard{}, "", 0),
			// The loop hands connections over to it (counted at
			// dispatch): they end here, or in a tunnel (counted there).
			ConnState: func(_ net.Conn, st http.ConnState) {
				if st == http.StateClosed || st == http.StateHijacked {
					p.stats.ClientClosed()
				}
			},
			ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, schemeKey{}, scheme)
			},
		}
	}
	var h1 http.Protocols
	h1.SetHTTP1(true)
	p.servers = []*http.Server{mk(&h1h2c, "http"), mk(&h1h2, "https"), mk(&h1, "https")}
	p.h2 = &http2.Server{IdleTimeout: time.Duration(p.limits.IdleTimeout)}
	for i, q := range []*connQueue{p.plain, p.secure, p.gm} {
		go func() { _ = p.servers[i].Serve(q) }()
	}
	return p, nil
}

type schemeKey struct{}

func (p *Proxy) current() *table { return p.tab.Load() }

// Stats is the registry the proxy counts into.
func (p *Proxy) Stats() *stats.Registry { return p.stats }

// AccessLog is the proxy's access log, for Reopen on SIGUSR1 and its counters.
func (p *Proxy) AccessLog() *accesslog.Logger { return p.access }

// Apply validates cfg and makes it the proxy's configuration in one swap:
// requests already routed finish on the pools they picked; upstream servers
// that stay keep their connections, counters and health. A bad cfg returns
// an error wrapping ErrInvalidConfig and changes nothing.
func (p *Proxy) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Build every new piece before touching the running ones.
	pools := map[string]*upstream.Pool{}
	fresh := map[string]bool{}
	for _, uc := range cfg.Upstreams {
		if old := p.pools[uc.Name]; old != nil {
			pools[uc.Name] = old
			continue
		}
		pool, err := upstream.NewPool(uc)
		if err != nil {
			return fmt.Errorf("%w: upstream %q: %w", ErrInvalidConfig, uc.Name, err)
		}
		pools[uc.Name], fresh[uc.Name] = pool, true
	}
	transports := map[string]*upstreamTransport{}
	for _, uc := range cfg.Upstreams {
		tr, err := p.transportFor(uc)
		if err != nil {
			return err
		}
		transports[uc.Name] = tr
	}
	tab, err := compile(&cfg, pools, transports, p.stats)
	if err != nil {
		return err
	}
	if err := p.access.Configure(cfg.AccessLog); err != nil {
		return fmt.Errorf("%w: access log: %w", ErrInvalidConfig, err)
	}
	for _, uc := range cfg.Upstreams {
		if !fresh[uc.Name] {
			if err := pools[uc.Name].Update(uc); err != nil {
				// Validated above, so this is a bug rather than bad input;
				// the pool keeps its old servers.
				p.log.Error("upstream update", "upstream", uc.Name, "err", err)
			}
		}
	}
	p.tab.Store(tab)
	for name, tr := range p.upstreams {
		if transports[name] != tr {
			tr.closeIdle()
		}
	}
	p.pools, p.upstreams = pools, transports
	p.retainStats(&cfg)
	p.warnUncertified(tab)
	return nil
}

// warnUncertified logs the TLS services no certificate can serve yet: a
// configuration the API takes (a certificate may come next), whose
// handshakes fail until then.
func (p *Proxy) warnUncertified(tab *table) {
	if tab.tlsCerts.def != nil || tab.tlcpCerts.def != nil {
		return
	}
	warned := map[string]bool{}
	for _, ep := range tab.endpoints {
		if ep.tls && !warned[ep.service] {
			warned[ep.service] = true
			p.log.Warn("a TLS service has no certificate: its handshakes fail until one is set (sluice cert set)", "service", ep.service)
		}
	}
}

// retainStats forgets the counters of objects the config no longer has.
func (p *Proxy) retainStats(cfg *Config) {
	var vss []string
	var locs, srvs [][2]string
	for _, v := range cfg.VServers {
		vss = append(vss, v.Name)
		for _, l := range v.Locations {
			locs = append(locs, [2]string{v.Name, l.Name})
		}
	}
	for _, u := range cfg.Upstreams {
		for _, s := range u.Servers {
			srvs = append(srvs, [2]string{u.Name, s.Addr})
		}
	}
	p.stats.Retain(vss, locs, srvs)
}

// Pool returns the running pool of an upstream, for its servers' state.
func (p *Proxy) Pool(name string) *upstream.Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pools[name]
}

// Serve accepts connections from a listener the intercept fills and hands
// each to the server of its service's protocol. It returns when ln fails
// or the proxy is closed.
//
// A TCP listener's connections are accepted straight into the proxy's
// poller (fifopoll): they never enter Go's, which would cost a
// registration, a duplicate and a deregistration each to move them.
func (p *Proxy) Serve(ln net.Listener) error {
	if tl, ok := ln.(*net.TCPListener); ok {
		err := p.poll.Accept(tl, func(c *fifopoll.Conn) { p.dispatch(c) })
		select {
		case <-p.closed:
			return nil
		default:
			return err
		}
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-p.closed:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		p.dispatch(c)
	}
}

func (p *Proxy) dispatch(c net.Conn) {
	p.stats.ClientOpened()
	t := p.current()
	ep := t.endpoints[localAddrPort(c.LocalAddr())]
	switch {
	case ep == nil:
		c.Close() // steered here, but the service is gone
		p.stats.ClientClosed()
	case !ep.tls:
		c = adopt(p.poll, c)
		go p.guarded(c, func() bool { return p.serveHTTP1(c, h1opts{scheme: "http", probe: probeSocket, handOver: p.plain}) })
	case t.tlcpCerts.def == nil:
		go p.guarded(c, func() bool { return p.serveTLS(tls.Server(c, p.tlsConfig)) })
	default:
		// TLS and TLCP share the port: the first record's version tells
		// them apart. Peek off the accept loop, so a silent client holds
		// only its own goroutine.
		go p.guarded(c, func() bool {
			first, pc, err := tlcp.PeekConn(c, 3, time.Duration(p.limits.ReadHeaderTimeout))
			if err != nil {
				c.Close()
				return false
			}
			if tlcp.IsTLCPRecord(first) {
				return p.serveTLCP(tlcp.Server(pc, p.tlcpConfig))
			}
			return p.serveTLS(tls.Server(pc, p.tlsConfig))
		})
	}
}

// guarded runs serve, the life of connection c in the proxy's own hands:
// until it ends, or serve reports it handed c over to a net/http server
// (which counts its end). A panic in serve becomes a logged error and a
// closed connection, as net/http does for its handlers: a bug that one
// client's bytes reach ends that client's connection, not the daemon with
// every other one.
func (p *Proxy) guarded(c net.Conn, serve func() (handedOver bool)) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		c.Close()
		p.stats.ClientClosed()
		stack := make([]byte, 64<<10)
		stack = stack[:runtime.Stack(stack, false)]
		p.log.Error("panic serving a connection: closed it", "client", c.RemoteAddr().String(),
			"local", c.LocalAddr().String(), "panic", fmt.Sprint(r), "stack", string(stack))
	}()
	if !serve() {
		p.stats.ClientClosed()
	}
}

// handshake completes c's TLS or TLCP handshake within the header timeout,
// or closes c.
func (p *Proxy) handshake(c interface {
	net.Conn
	Handshake() error
}) bool {
	_ = c.SetDeadline(time.Now().Add(time.Duration(p.limits.ReadHeaderTimeout)))
	if err := c.Handshake(); err != nil {
		c.Close()
		// A client's failed handshake is its own business, unless no
		// certificate could serve it: that is the operator's, said at most
		// every 10 s.
		if now, last := time.Now().UnixNano(), p.noCertWarned.Load(); errors.Is(err, errNoCertificate) &&
			now-last >= int64(10*time.Second) && p.noCertWarned.CompareAndSwap(last, now) {
			p.log.Warn("TLS handshake failed: no certificate for it (sluice cert set)", "client", c.RemoteAddr().String(),
				"local", c.LocalAddr().String(), "err", err)
		}
		return false
	}
	_ = c.SetDeadline(time.Time{})
	return true
}

// serveTLS completes a TLS handshake and serves the connection over the
// protocol ALPN picked: HTTP/2 through net/http, else the HTTP/1.1 loop.
// It reports whether net/http took the connection.
func (p *Proxy) serveTLS(c *tls.Conn) (handedOver bool) {
	if !p.handshake(c) {
		return false
	}
	st := c.ConnectionState()
	if st.NegotiatedProtocol == "h2" {
		p.secure.push(c)
		return true
	}
	return p.serveHTTP1(c, h1opts{scheme: "https", tls: tlsVersionName(st.Version), probe: probeRead, handOver: p.secure})
}

// serveTLCP completes a TLCP handshake and serves the connection over the
// protocol ALPN picked: HTTP/2 through x/net's server (net/http speaks
// HTTP/2 only over crypto/tls connections), else HTTP/1.1.
func (p *Proxy) serveTLCP(c *tlcp.Conn) (handedOver bool) {
	if !p.handshake(c) {
		return false
	}
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		return p.serveHTTP1(c, h1opts{scheme: "https", tls: "TLCP", probe: probeRecords, handOver: p.gm})
	}
	ctx := context.WithValue(context.Background(), schemeKey{}, "https")
	p.h2.ServeConn(c, &http2.ServeConnOpts{Context: ctx, BaseConfig: p.servers[2], Handler: p})
	return false
}

// Close stops serving: listeners given to Serve are the caller's to close;
// open connections are closed.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		for _, s := range p.servers {
			_ = s.Close()
		}
		p.h1.closeIdle(true)
		p.mu.Lock()
		for _, tr := range p.upstreams {
			tr.closeIdle()
		}
		p.mu.Unlock()
		_ = p.access.Close()
		_ = p.poll.Close()
	})
	return nil
}

// Shutdown stops accepting and waits for requests in flight, up to ctx.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.shuttingDown.Store(true)
	var err error
	for _, s := range p.servers {
		if e := s.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	// The HTTP/1.1 loop's idle connections close now, busy ones once their
	// request is answered; upgraded ones (WebSockets), which net/http's
	// Shutdown neither closes nor waits for, once they end.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for (p.h1.closeIdle(false) > 0 || p.tunnels.Load() > 0) && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	_ = p.Close()
	return err
}

func localAddrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// connQueue is a net.Listener fed by the dispatcher. A connection it
// never hands to Accept, pushed after Close or still queued then, it
// closes, and tells dropped (the client-connection gauge's end).
type connQueue struct {
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
	dropped func()
}

func newConnQueue(dropped func()) *connQueue {
	return &connQueue{ch: make(chan net.Conn, 128), done: make(chan struct{}), dropped: dropped}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
		select {
		case <-q.done: // closed meanwhile: nobody may take it
			q.drain()
		default:
		}
	case <-q.done:
		q.drop(c)
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() {
		close(q.done)
		q.drain()
	})
	return nil
}

// drain drops what the queue holds.
func (q *connQueue) drain() {
	for {
		select {
		case c := <-q.ch:
			q.drop(c)
		default:
			return
		}
	}
}

func (q *connQueue) drop(c net.Conn) {
	c.Close()
	q.dropped()
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// bufferPool lends the 32 KiB copy buffers of response bodies.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

var _ net.Listener = (*connQueue)(nil)
var _ httputil.BufferPool = bufferPool{}
