package l7

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// The fast path: HTTP/1.x requests without a body, to plain-HTTP upstreams,
// are forwarded in the handler's goroutine over the upstream's own
// keep-alive connections. Profiling showed ReverseProxy + http.Transport
// spending most of a small request on two goroutine hand-offs per request,
// a request clone, header clones and sorts; here the request is written
// once and the answer copied through a pooled buffer. Everything else
// (bodies, upgrades, HTTP/2 and gRPC, TLS and TLCP upstreams) goes through
// ReverseProxy, which handles it all.

// pooledConn is one idle keep-alive connection to an upstream server.
type pooledConn struct {
	net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time
}

// connPool keeps idle connections per server address, at most max each,
// none older than idle. It is safe for concurrent use.
type connPool struct {
	mu     sync.Mutex
	conns  map[string][]*pooledConn
	max    int
	idle   time.Duration
	closed bool
}

func newConnPool(max int, idle time.Duration) *connPool {
	return &connPool{conns: map[string][]*pooledConn{}, max: max, idle: idle}
}

// get returns the most recently used idle connection to addr, or nil.
func (cp *connPool) get(addr string) *pooledConn {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.conns[addr]
	for len(s) > 0 {
		pc := s[len(s)-1]
		s = s[:len(s)-1]
		if time.Since(pc.since) < cp.idle {
			cp.conns[addr] = s
			return pc
		}
		pc.Close()
	}
	cp.conns[addr] = s
	return nil
}

// put keeps pc for the next request to addr, or closes it when the pool is
// full or closed.
func (cp *connPool) put(addr string, pc *pooledConn) {
	pc.since = time.Now()
	cp.mu.Lock()
	if !cp.closed && len(cp.conns[addr]) < cp.max {
		cp.conns[addr] = append(cp.conns[addr], pc)
		cp.mu.Unlock()
		return
	}
	cp.mu.Unlock()
	pc.Close()
}

// close closes every idle connection; connections given back later are closed.
func (cp *connPool) close() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.closed = true
	for addr, s := range cp.conns {
		for _, pc := range s {
			pc.Close()
		}
		delete(cp.conns, addr)
	}
}

// connectionTokens returns the header names h's Connection header lists,
// in canonical form; nil without one. Parsed once per header set, not per
// header.
func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	return out
}

// forwarded reports whether header k goes on to the other side: not
// hop-by-hop, not named in Connection.
func forwarded(k string, named []string) bool {
	return !isHopByHop(k) && !slices.Contains(named, k)
}

// upstreamConn returns an idle keep-alive connection to addr from the
// route's upstream (reused), or a new one dialled within the route's connect
// timeout.
func (rt *route) upstreamConn(ctx context.Context, addr string) (pc *pooledConn, reused bool, err error) {
	if pc := rt.tr.fast.get(addr); pc != nil {
		return pc, true, nil
	}
	if rt.connectTimeout > 0 {
		ctx = context.WithValue(ctx, connectTimeoutKey{}, rt.connectTimeout)
	}
	c, err := rt.tr.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &pooledConn{Conn: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 8<<10)}, false, nil
}

// forwardFast forwards r when the fast path applies and reports whether it did.
func (p *Proxy) forwardFast(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	rt := x.route
	if r.ProtoMajor != 1 || x.body != nil || rt.pool == nil || rt.tr.fast == nil || r.Header["Upgrade"] != nil {
		return false
	}
	err := rt.tryServers(rt.pool.KeyFor(r), r.Method, func(srv *upstream.Server) (bool, error) {
		return p.attemptFast(w, r, x, srv)
	}, func(error) bool { return r.Context().Err() != nil })
	if err != nil {
		p.upstreamError(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)), err)
	}
	return true
}

// attemptFast tries one server. It returns done once an answer was sent to
// the client (whole or cut short), else the error that lets the caller try
// the next server.
func (p *Proxy) attemptFast(w http.ResponseWriter, r *http.Request, x *exchange, srv *upstream.Server) (bool, error) {
	rt, tr := x.route, x.route.tr
	addr := srv.Addr()
	ss := p.stats.Server(rt.upstream, addr)
	srv.Acquire()
	ss.ConnOpen()
	defer func() { srv.Release(); ss.ConnClose() }()
	readTimeout := rt.readTimeout
	if readTimeout <= 0 {
		readTimeout = tr.readTimeout
	}
	start := time.Now()
	pc, resp, err := p.exchangeHead(r, rt, addr, readTimeout)
	took := time.Since(start)
	if err != nil {
		if r.Context().Err() == nil {
			srv.Report(false)
			ss.Observe(stats.Sample{Status: statusFor(err), UpstreamDuration: took})
		}
		return false, err
	}
	srv.Report(true)
	x.upstreamAddr, x.upstreamTime = addr, took

	h := w.Header()
	named := connectionTokens(resp.Header)
	for k, vv := range resp.Header {
		if forwarded(k, named) {
			h[k] = vv
		}
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	// Streamed answers (no length, or server-sent events) are flushed as
	// they come; others go through the server's buffer.
	flush := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	n, cerr := copyBody(w, resp.Body, pc, readTimeout, flush)
	resp.Body.Close()
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	if cerr == nil && !resp.Close {
		_ = pc.SetDeadline(time.Time{})
		tr.fast.put(addr, pc)
	} else {
		pc.Close()
	}
	ss.Observe(stats.Sample{Status: resp.StatusCode, BytesOut: n, UpstreamDuration: took})
	return true, nil
}

// exchangeHead writes r to addr over a pooled connection and reads the
// answer's head; an idempotent request on a reused connection that the
// server had closed is sent again on a new one. A client that goes away
// ends the wait.
func (p *Proxy) exchangeHead(r *http.Request, rt *route, addr string, readTimeout time.Duration) (*pooledConn, *http.Response, error) {
	for {
		pc, reused, err := rt.upstreamConn(r.Context(), addr)
		if err != nil {
			return nil, nil, err
		}
		_ = pc.SetDeadline(time.Now().Add(readTimeout))
		stop := context.AfterFunc(r.Context(), func() { _ = pc.SetDeadline(time.Unix(1, 0)) })
		writeRequest(pc.bw, r)
		err = pc.bw.Flush()
		var resp *http.Response
		for err == nil {
			resp, err = http.ReadResponse(pc.br, r)
			if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
				break
			}
			resp.Body.Close() // 1xx (103 Early Hints, …): the answer follows
		}
		stop()
		if err == nil {
			return pc, resp, nil
		}
		pc.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && r.Context().Err() == nil {
			return nil, nil, errUpstreamTimout
		}
		// Only a request that may be sent twice is: the server may have
		// acted on it before the connection died (net/http's rule too).
		if !reused || r.Context().Err() != nil || !idempotent(r.Method) {
			return nil, nil, err
		}
	}
}

// copyBody copies an answer's body to the client, giving the upstream
// readTimeout between reads, flushing each piece when asked.
func copyBody(w http.ResponseWriter, body io.Reader, c net.Conn, readTimeout time.Duration, flush bool) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	var n int64
	for {
		_ = c.SetReadDeadline(time.Now().Add(readTimeout))
		nr, rerr := body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if flush {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// writeRequest writes r as the upstream sees it: hop-by-hop headers and
// those named in Connection removed, the client added to X-Forwarded-For and
// Forwarded, X-Forwarded-Host and -Proto set, as rewrite does for the other
// path.
func writeRequest(bw *bufio.Writer, r *http.Request) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	named := connectionTokens(r.Header)
	for k, vv := range r.Header {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded":
			continue
		}
		if !forwarded(k, named) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	bw.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		bw.WriteString(strings.Join(prior, ", "))
		bw.WriteString(", ")
	}
	bw.WriteString(client)
	scheme, _ := r.Context().Value(schemeKey{}).(string)
	if scheme == "" {
		scheme = "http"
	}
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(scheme)
	bw.WriteString("\r\nForwarded: ")
	bw.WriteString(forwardedValue(r.Header.Get("Forwarded"), r.Host, client, scheme))
	bw.WriteString("\r\n\r\n")
}

// forwardedValue is the Forwarded header: the client's element appended to
// the prior value.
func forwardedValue(prior, host, client, scheme string) string {
	if strings.Contains(client, ":") {
		client = `"[` + client + `]"`
	}
	fwd := "for=" + client + ";proto=" + scheme
	if host != "" {
		fwd += `;host="` + host + `"`
	}
	if prior != "" {
		fwd = prior + ", " + fwd
	}
	return fwd
}
