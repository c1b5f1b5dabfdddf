package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// exchange is one request's state between the handler, the round trip and
// the error handler.
type exchange struct {
	route        *route
	in           *http.Request
	body         *countingBody
	upstreamAddr string
	upstreamTime time.Duration
	status       int // set by the error handler, or the upstream's for an upgrade
}

type exchangeKey struct{}

// ServeHTTP routes one request: the service by the connection's VIP:port,
// the virtual server by Host, the location by path; then the reverse proxy
// forwards it, and the counters and the access log get what happened.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	var ep *endpoint
	if la != nil {
		ep = p.current().endpoints[localAddrPort(la)]
	}
	if ep == nil {
		http.Error(w, "no service here", http.StatusMisdirectedRequest)
		return
	}
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// RFC 9112 6.1: a request with both Content-Length and
		// Transfer-Encoding may be an attempt at smuggling, and a server
		// that reads it must close after it. net/http drops the
		// Content-Length of such a request, so here (where the proxy's own
		// loop, which refuses it, handed the connection over) it cannot be
		// told from a plain chunked one: every request with a transfer
		// coding closes its connection.
		w.Header().Set("Connection", "close")
	}
	vs := ep.vserverFor(r.Host)
	vs.stats.ConnOpen()
	defer vs.stats.ConnClose()
	cw := &countingWriter{ResponseWriter: w}
	x := &exchange{in: r}
	if r.Body != nil && r.Body != http.NoBody {
		x.body = &countingBody{rc: r.Body}
		r.Body = x.body
		if r.ProtoMajor == 1 {
			cw.body = x.body
		}
	}
	rt := vs.routeFor(r.URL.Path)
	locName := ""
	if rt == nil {
		http.Error(cw, "no location for this path", http.StatusNotFound)
	} else {
		locName = rt.name
		rt.stats.ConnOpen()
		x.route = rt
		p.rp.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
		rt.stats.ConnClose()
	}
	status := cw.status
	if status == 0 {
		status = x.status
	}
	body := cw.n.Load()
	s := stats.Sample{Status: status, BytesIn: requestHeadSize(r.Method, r.RequestURI, r.Host, r.Header) + x.body.count(),
		BytesOut: cw.head.Load() + body, Duration: time.Since(start), UpstreamDuration: x.upstreamTime}
	vs.stats.Observe(s)
	if rt != nil {
		rt.stats.Observe(s)
	}
	p.logAccess(r, x, vs.name, locName, s, body, start)
}

func (p *Proxy) logAccess(r *http.Request, x *exchange, vs, loc string, s stats.Sample, body int64, start time.Time) {
	e := accesslog.Entry{
		Time: start, RemoteAddr: r.RemoteAddr, Method: r.Method, Host: r.Host, URI: r.RequestURI,
		Proto: r.Proto, Status: s.Status, RequestLength: s.BytesIn, BytesSent: s.BytesOut, BodyBytesSent: body,
		Duration: s.Duration, UpstreamAddr: x.upstreamAddr, UpstreamTime: x.upstreamTime, Referer: r.Referer(),
		UserAgent: r.UserAgent(), VServer: vs, Location: loc, TLS: tlsName(r),
	}
	if x.route != nil {
		e.Upstream = x.route.upstream
	}
	p.access.Log(&e)
}

func tlsName(r *http.Request) string {
	if r.TLS != nil {
		return tlsVersionName(r.TLS.Version)
	}
	if r.Context().Value(schemeKey{}) == "https" {
		return "TLCP"
	}
	return ""
}

// tlsVersionName is the access log's name of a TLS version.
func tlsVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	}
	return "TLS"
}

// rewrite prepares the outbound request: the client's address appended to
// X-Forwarded-For and Forwarded, the scheme in X-Forwarded-Proto, the
// Host the client asked for, its query unchanged. ReverseProxy has already
// removed hop-by-hop headers (Connection and the ones it names,
// Keep-Alive, TE, …).
func rewrite(pr *httputil.ProxyRequest) {
	in := pr.In
	if xff, ok := in.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
	scheme, _ := in.Context().Value(schemeKey{}).(string)
	if scheme == "" {
		scheme = "http"
	}
	pr.Out.Header.Set("X-Forwarded-Proto", scheme)
	client, _, _ := net.SplitHostPort(in.RemoteAddr)
	pr.Out.Header.Set("Forwarded", forwardedValue(in.Header.Get("Forwarded"), in.Host, client, scheme))
	pr.Out.Host = in.Host
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "upstream" // the round trip picks the server
	// The query as the client sent it, as nginx passes it and the loop
	// does: ReverseProxy drops the parameters it cannot parse ("q%1",
	// "a;b"), which the proxy never reads; the upstream judges them.
	pr.Out.URL.RawQuery = in.URL.RawQuery
}

var (
	errNoServer       = errors.New("no upstream server available")
	errUpstreamTimout = errors.New("upstream timed out")
	errBadRequestBody = errors.New("reading the request body")
)

// roundTrip sends one request to the location's upstream: pick a server,
// try it, and on failure move on to the next while that is safe: always
// after a connection error (nothing was sent), after other errors only for
// idempotent requests (or when the location allows any), and never once
// the request body has started to flow.
func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	x, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if x == nil || x.route == nil || x.route.pool == nil {
		return nil, errNoServer
	}
	rt := x.route
	tr := rt.tr
	key := rt.pool.KeyFor(x.in)
	if req.Body != nil {
		req.Body = io.NopCloser(req.Body) // the transport closes bodies on errors; a retry needs it open
	}
	var resp *http.Response
	err := rt.tryServers(key, req.Method, time.Time{}, func(srv *upstream.Server) (bool, error) {
		var err error
		resp, err = p.attempt(req, x, tr, srv)
		return err == nil, err
	}, func(error) bool { return req.Context().Err() != nil || x.body.count() > 0 || x.body.failed() })
	return resp, err
}

// tryServers calls attempt on servers of rt's pool picked for key, one
// after another, until one is done; the first pick is at the clock now
// (zero: read it), as serving the request began. It moves on while tries
// remain and the failure allows it: always after a connection error
// (nothing was sent), after other errors only for idempotent methods or
// when the location allows any, never when stop says so (the client went
// away, a request body started to flow). It returns the last error,
// errNoServer when no server was tried.
func (rt *route) tryServers(key, method string, now time.Time, attempt func(*upstream.Server) (done bool, err error), stop func(error) bool) error {
	var triedBuf [4]*upstream.Server
	tried := triedBuf[:0]
	var err error
	for len(tried) < rt.tries {
		if now.IsZero() || len(tried) > 0 {
			now = time.Now()
		}
		srv := rt.pool.PickAt(key, tried, now)
		if srv == nil {
			break
		}
		var done bool
		if done, err = attempt(srv); done {
			return nil
		}
		tried = append(tried, srv)
		if stop(err) || !(isConnectError(err) || rt.retryAny || idempotent(method)) {
			break
		}
	}
	if err == nil {
		err = errNoServer
	}
	return err
}

// attempt is one try against one server. The server is held (active
// count, counters) until the response body is closed.
func (p *Proxy) attempt(req *http.Request, x *exchange, tr *upstreamTransport, srv *upstream.Server) (*http.Response, error) {
	rt := x.route
	addr := srv.Addr()
	ss := p.stats.Server(rt.upstream, addr)
	srv.Acquire()
	ss.ConnOpen()
	ctx, cancel := context.WithCancel(req.Context())
	if rt.connectTimeout > 0 {
		ctx = context.WithValue(ctx, connectTimeoutKey{}, rt.connectTimeout)
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(rt.readTimeout, func() { timedOut.Store(true); cancel() })
	start := time.Now()
	// A shallow copy with its own URL: ReverseProxy already gave this
	// request its own headers, and the transport changes neither.
	out := req.WithContext(ctx)
	u := *req.URL
	u.Host, u.Scheme = addr, tr.scheme
	out.URL = &u
	resp, err := tr.pick(out).RoundTrip(out)
	stopped := timer.Stop()
	took := time.Since(start)
	if err != nil || !stopped {
		// A request body that could not be read is the client's doing:
		// the server is not to blame (else a client could take servers
		// out of the pool).
		clients := false
		switch {
		case err == nil:
			resp.Body.Close()
			err = errUpstreamTimout
		case x.body.failed():
			err, clients = fmt.Errorf("%w: %w", errBadRequestBody, err), true
		case timedOut.Load():
			err = errUpstreamTimout
		}
		cancel()
		srv.Release()
		ss.ConnClose()
		if req.Context().Err() == nil && !clients {
			srv.Report(false)
			ss.Observe(stats.Sample{Status: statusFor(err), UpstreamDuration: took})
		}
		return nil, err
	}
	srv.Report(true)
	x.upstreamAddr, x.upstreamTime = addr, took
	status := resp.StatusCode
	sent := requestHeadSize(out.Method, out.URL.RequestURI(), out.Host, out.Header)
	got := responseHeadSize(status, resp.Header)
	done := func(n int64) {
		cancel()
		srv.Release()
		ss.ConnClose()
		ss.Observe(stats.Sample{Status: status, BytesIn: sent + x.body.count(), BytesOut: got + n, UpstreamDuration: took})
	}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && status == http.StatusSwitchingProtocols {
		x.status = status // the upgrade hijacks the connection; the writer never sees it
		p.tunnels.Add(1)  // until the tunnel ends, which closes the body
		p.stats.TunnelOpened()
		resp.Body = &upgradedBody{ReadWriteCloser: rw, done: func(n int64) { done(n); p.tunnels.Add(-1); p.stats.TunnelClosed() }}
	} else {
		resp.Body = &heldBody{rc: resp.Body, done: done}
	}
	return resp, nil
}

type connectTimeoutKey struct{}

func statusFor(err error) int {
	switch {
	case errors.Is(err, errBadRequestBody):
		return http.StatusBadRequest
	case errors.Is(err, errNoServer):
		return http.StatusServiceUnavailable
	case errors.Is(err, errUpstreamTimout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// upstreamError answers when no server could: 503 without a usable
// server, 504 on a timeout, 400 when the request's body could not be read
// (its framing was bad), 502 otherwise, 499 (nginx's "client closed
// request", not sent) when the client went away.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusFor(err)
	if r.Context().Err() != nil {
		status = 499
	}
	if x, _ := r.Context().Value(exchangeKey{}).(*exchange); x != nil {
		x.status = status
	}
	if status == 499 {
		return
	}
	p.log.Debug("upstream error", "host", r.Host, "path", r.URL.Path, "status", status, "err", err)
	http.Error(w, http.StatusText(status), status)
}

func isConnectError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// heldBody releases the server when the proxy is done with the response.
type heldBody struct {
	rc   io.ReadCloser
	n    int64
	once atomic.Bool
	done func(int64)
}

func (b *heldBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *heldBody) Close() error {
	err := b.rc.Close()
	if b.once.CompareAndSwap(false, true) {
		b.done(b.n)
	}
	return err
}

// upgradedBody is heldBody for a 101 answer: ReverseProxy needs to write
// to it (WebSocket and other upgrades).
type upgradedBody struct {
	io.ReadWriteCloser
	once atomic.Bool
	done func(int64)
}

func (b *upgradedBody) Close() error {
	err := b.ReadWriteCloser.Close()
	if b.once.CompareAndSwap(false, true) {
		b.done(0)
	}
	return err
}

// countingBody counts the request body bytes read.
type countingBody struct {
	rc     io.ReadCloser
	n      atomic.Int64
	eof    atomic.Bool // read to its end (the transport may read it on another goroutine)
	broken atomic.Bool // a read failed: the client's framing was bad, or it went away
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	switch {
	case err == io.EOF:
		b.eof.Store(true)
	case err != nil:
		b.broken.Store(true)
	}
	return n, err
}

// failed reports whether reading the body failed: what went wrong was the
// client's, not the upstream's.
func (b *countingBody) failed() bool { return b != nil && b.broken.Load() }

// unread reports whether the body was not read to its end: the upstream
// answered first, or its framing was bad.
func (b *countingBody) unread() bool { return b != nil && !b.eof.Load() }

func (b *countingBody) Close() error { return b.rc.Close() }

func (b *countingBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

// Heads on the paths net/http serves (HTTP/2, HTTP/1.1 handed over) are
// counted as HTTP/1.1 would send them, as nginx counts HTTP/2's: on the
// wire they are compressed, or parsed where the counters do not see. The
// headers net/http adds itself (Date, framing) and trailers are not among
// them.

// requestHeadSize is the size of a request head: its line, Host and fields.
func requestHeadSize(method, target, host string, h http.Header) int64 {
	n := len(method) + len(target) + len("  HTTP/1.1\r\n") + fieldsSize(h)
	if host != "" {
		n += len("Host: \r\n") + len(host)
	}
	return int64(n)
}

// responseHeadSize is the size of a response head: its status line and fields.
func responseHeadSize(status int, h http.Header) int64 {
	return int64(len("HTTP/1.1 000 \r\n") + len(http.StatusText(status)) + fieldsSize(h))
}

// fieldsSize is the size of "Name: value\r\n" for each field, and the empty line.
func fieldsSize(h http.Header) int {
	n := 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// countingWriter records the status and counts the bytes written: the
// heads (as responseHeadSize) and the body.
// Unwrap lets http.ResponseController (used by ReverseProxy for flushing
// and upgrades) reach the real writer.
//
// An HTTP/1.x answer sent before the request body was read to its end
// closes the connection (Connection: close): net/http would read the rest
// after the handler and, on an error there (a malformed chunk or trailer),
// go on to read what follows as the next request, which is how requests
// are smuggled past a front proxy that framed them otherwise.
type countingWriter struct {
	http.ResponseWriter
	status int
	head   atomic.Int64  // the heads sent, interim ones included
	n      atomic.Int64  // the body
	body   *countingBody // an HTTP/1.x request's body; nil for none and for HTTP/2
}

func (w *countingWriter) WriteHeader(code int) {
	sent := w.status < 200 // net/http sends no second final head
	if sent {
		w.status = code
	}
	if code >= 200 && w.body.unread() {
		w.Header().Set("Connection", "close")
	}
	if sent {
		w.head.Add(responseHeadSize(code, w.Header()))
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status < 200 { // none yet, or only interim ones: net/http sends a 200 now
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
