package l7

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// Plain connections are served by the proxy's own HTTP/1.1 loop. Profiling
// the L7 benchmark showed net/http's server spending most of a small
// proxied request in its own machinery: a goroutine hand-off and a
// background read per request, a header map, a request and a context per
// request. This loop reads each request head into the connection's buffer,
// parses it in place (one string per head, every field a substring of it)
// and, when it understands the request completely, forwards it over the
// upstream's keep-alive connections and relays the answer without building
// any object per header.
//
// It serves only what it fully understands: HTTP/1.1 requests without a
// body or with a Content-Length one, in origin form, with exactly one Host,
// no percent-encoding in the path, no Upgrade or Expect, routed to a
// plain-HTTP upstream. At the first request that is anything else
// (HTTP/1.0, a chunked body, WebSocket, h2c, a malformed head, a head
// larger than the buffer), the connection is handed to net/http with the
// bytes not yet consumed, and net/http serves it from that request on,
// answering errors the way it always has.

const (
	h1BufSize = 16 << 10 // request heads up to this size are parsed here
	// clientProbe is how often a request waiting for its upstream checks
	// that its client is still there: a client that left releases the
	// upstream, as with net/http's background read, without paying for a
	// read per request.
	clientProbe  = 250 * time.Millisecond
	maxChunkLine = 4 << 10
	// maxSkippedBody is the most of a body nobody takes (no location, no
	// server) that is read and dropped to keep the connection; a larger
	// one closes it.
	maxSkippedBody = 64 << 10
)

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1BufSize) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, h1BufSize) }}

	errHandOver     = errors.New("request left to net/http")
	errClientGone   = errors.New("client went away")
	errClientWrite  = errors.New("writing to the client failed")
	errBadUpstream  = errors.New("malformed upstream response")
	errHeadTooLarge = errors.New("head larger than the buffer")
)

// h1conn is one client connection served by the loop.
type h1conn struct {
	h1opts
	p      *Proxy
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	local  netip.AddrPort
	remote string // ip:port, as http.Request.RemoteAddr
	client string // ip
	req    h1request
	resp   h1response
	busy   atomic.Bool // a request is being served

	readDeadline time.Time // the client connection's, as last set

	// The request body: when it is all in br it stays there (held) until
	// the exchange is over, so that a retry can send it again; a longer
	// one streams (bodyStreamed) and bodyLeft of it is still unread.
	held         int
	bodyStreamed bool
	bodyLeft     int64
	linger       bool // close with part of a body unread: see lingerClose
}

func (h *h1conn) setReadDeadline(t time.Time) {
	h.readDeadline = t
	_ = h.c.SetReadDeadline(t)
}

// h1conns are the loop's open connections, for Close and Shutdown.
type h1conns struct {
	mu sync.Mutex
	m  map[*h1conn]struct{}
}

func (s *h1conns) add(h *h1conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*h1conn]struct{}{}
	}
	s.m[h] = struct{}{}
	s.mu.Unlock()
}

func (s *h1conns) remove(h *h1conn) {
	s.mu.Lock()
	delete(s.m, h)
	s.mu.Unlock()
}

// closeIdle closes the connections not serving a request (all when all is
// set) and returns how many are left open.
func (s *h1conns) closeIdle(all bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := 0
	for h := range s.m {
		if all || !h.busy.Load() {
			h.c.Close()
		} else {
			left++
		}
	}
	return left
}

// h1opts say what a connection the loop serves runs over.
type h1opts struct {
	scheme   string     // X-Forwarded-Proto: http or https
	tls      string     // for the access log: "", TLSv1.3, TLSv1.2, TLCP
	probe    probeKind  // how clientGone looks at the connection
	handOver *connQueue // the net/http server that takes the connection over
}

type probeKind int

const (
	probeSocket probeKind = iota // a peek at the socket (plain TCP)
	probeRead                    // a read of a millisecond (TLS: it decodes close_notify)
	probeNone                    // not probed (TLCP)
)

// serveHTTP1 serves connection c (plain, or TLS after its handshake) until
// it closes, or hands it to net/http at the first request the loop leaves
// to it.
func (p *Proxy) serveHTTP1(c net.Conn, o h1opts) {
	client, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	h := &h1conn{p: p, c: c, h1opts: o, local: localAddrPort(c.LocalAddr()), remote: c.RemoteAddr().String(), client: client}
	h.br = h1Readers.Get().(*bufio.Reader)
	h.br.Reset(c)
	h.bw = h1Writers.Get().(*bufio.Writer)
	h.bw.Reset(c)
	p.h1.add(h)
	handedOver := false
	defer func() {
		p.h1.remove(h)
		h.bw.Reset(nil)
		h1Writers.Put(h.bw)
		if !handedOver {
			if h.linger {
				lingerClose(c)
			} else {
				c.Close()
			}
			h.br.Reset(nil)
			h1Readers.Put(h.br)
		}
	}()
	headerTimeout, idleTimeout := time.Duration(p.limits.ReadHeaderTimeout), time.Duration(p.limits.IdleTimeout)
	for first := true; ; first = false {
		// Deadlines cost a timer update each: the idle one is moved only
		// when it has drifted by a second, the header one set only when a
		// head did not arrive whole.
		now := time.Now()
		switch {
		case first:
			h.setReadDeadline(now.Add(headerTimeout))
		case h.readDeadline.Sub(now) < idleTimeout-time.Second:
			h.setReadDeadline(now.Add(idleTimeout))
		}
		if _, err := h.br.Peek(1); err != nil {
			return
		}
		h.busy.Store(true) // from its first byte on, a request is in flight, as for net/http
		headerDeadline := first
		n, err := readHead(h.br, func(int) error {
			if !headerDeadline {
				h.setReadDeadline(time.Now().Add(headerTimeout))
				headerDeadline = true
			}
			return nil
		})
		if err != nil && !errors.Is(err, errHandOver) && !errors.Is(err, errHeadTooLarge) {
			return // timed out, or the client closed
		}
		ep := p.current().endpoints[h.local]
		if ep == nil {
			if err == nil {
				h.writeError(http.StatusMisdirectedRequest, "no service here", true) // steered here, but the service is gone
				_ = h.bw.Flush()
			}
			return
		}
		if err == nil && h.req.parse(h.br, n) {
			if rt := ep.vserverFor(h.req.host).routeFor(h.req.path); rt == nil || (rt.pool != nil && rt.tr.fast != nil) {
				_, _ = h.br.Discard(n)
				if p.shuttingDown.Load() {
					h.req.close = true // the answer says so, as net/http's do during Shutdown
				}
				if !h.serve(ep, rt) {
					return
				}
				h.busy.Store(false)
				continue
			}
		}
		// net/http takes the connection with what is left in the buffer.
		_ = c.SetDeadline(time.Time{})
		handedOver = true
		o.handOver.push(&bufferedConn{Conn: c, br: h.br})
		return
	}
}

// lingerClose closes a connection whose client may still be sending: the
// write side first, then what arrives is read and dropped for a moment, so
// the kernel does not answer it with a reset that could destroy the
// response before the client read it (net/http's closeWriteAndWait).
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, c, 1<<20)
	}
	c.Close()
}

// bufferedConn is a connection handed to net/http: reads start with what
// the loop had buffered.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.br.Read(p) }

// readHead returns the length of the head (through its empty line) at the
// start of br's buffer, reading more as needed; fill is called before each
// read that may block. A line ending in a bare LF is errHandOver: net/http
// accepts it leniently, this loop does not parse it.
func readHead(br *bufio.Reader, fill func(int) error) (int, error) {
	scanned := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		for i := scanned; i < len(buf); i++ {
			if buf[i] != '\n' {
				continue
			}
			if i == 0 || buf[i-1] != '\r' {
				return 0, errHandOver
			}
			if i >= 3 && buf[i-2] == '\n' && buf[i-3] == '\r' {
				return i + 1, nil
			}
		}
		scanned = len(buf)
		if len(buf) >= br.Size() {
			return 0, errHeadTooLarge
		}
		if err := fill(len(buf) + 1); err != nil {
			return 0, err
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// h1request is a parsed request head; every string is a substring of head.
type h1request struct {
	head                     string
	method, target, path     string
	host, userAgent, referer string
	forwarded                string   // the first Forwarded value
	xff                      []string // X-Forwarded-For values
	headers                  []h1field
	named                    []string // header names listed in Connection
	close                    bool
	length                   int64 // of the body (Content-Length); 0 without one
}

type h1field struct{ name, value string }

// parse parses the n-byte head at the start of br's buffer and reports
// whether the loop serves the request (see the top of this file).
func (q *h1request) parse(br *bufio.Reader, n int) bool {
	buf, _ := br.Peek(n)
	*q = h1request{headers: q.headers[:0], named: q.named[:0], xff: q.xff[:0], head: string(buf)}
	line, rest := cutLine(q.head)
	method, rem, ok := cutByte(line, ' ')
	if !ok || !isToken(method) {
		return false
	}
	target, proto, ok := cutByte(rem, ' ')
	if !ok || proto != "HTTP/1.1" || target == "" || target[0] != '/' {
		return false
	}
	q.method, q.target, q.path = method, target, target
	for i := 0; i < len(target); i++ {
		switch b := target[i]; {
		case b <= ' ' || b >= 0x7f || b == '%' || b == '#':
			return false // net/http decodes and judges these
		case b == '?' && q.path == target:
			q.path = target[:i]
		}
	}
	hosts, lengths := 0, 0
	for rest != "\r\n" {
		var name, value string
		if name, value, rest, ok = nextField(rest); !ok {
			return false
		}
		switch {
		case equalFold(name, "host"):
			hosts++
			q.host = value
		case equalFold(name, "content-length"):
			v, ok := parseLength(value)
			if !ok || lengths > 0 {
				return false // net/http judges repeated and bad lengths
			}
			q.length, lengths = v, 1
		case equalFold(name, "transfer-encoding"), equalFold(name, "upgrade"), equalFold(name, "expect"):
			return false
		case equalFold(name, "connection"):
			var closing bool
			closing, _, q.named = connectionOptions(value, q.named)
			q.close = q.close || closing
			continue
		case equalFold(name, "x-forwarded-for"):
			q.xff = append(q.xff, value)
			continue
		case equalFold(name, "forwarded"):
			if q.forwarded == "" {
				q.forwarded = value
			}
			continue
		case equalFold(name, "x-forwarded-host"), equalFold(name, "x-forwarded-proto"):
			continue
		case equalFold(name, "user-agent"):
			if q.userAgent == "" {
				q.userAgent = value
			}
		case equalFold(name, "referer"):
			if q.referer == "" {
				q.referer = value
			}
		}
		if isHopByHop(name) {
			continue
		}
		q.headers = append(q.headers, h1field{name, value})
	}
	if hosts != 1 || !httpguts.ValidHostHeader(q.host) {
		return false
	}
	if len(q.named) > 0 {
		kept := q.headers[:0]
		for _, f := range q.headers {
			if !containsFold(q.named, f.name) {
				kept = append(kept, f)
			}
		}
		q.headers = kept
	}
	return true
}

// h1result is what became of one request, for the counters and the log.
type h1result struct {
	status       int
	bytesOut     int64
	upstreamAddr string
	upstreamTime time.Duration
	keep         bool // the client connection may serve another request
}

// serve answers the parsed request on route rt (nil: no location) and
// reports whether the connection stays open.
func (h *h1conn) serve(ep *endpoint, rt *route) bool {
	start := time.Now()
	q := &h.req
	vs := ep.vserverFor(q.host)
	vs.stats.ConnOpen()
	var res h1result
	if rt == nil {
		if !h.endBody() {
			q.close = true
		}
		res = h1result{status: 404, keep: !q.close}
		res.bytesOut = h.writeError(404, "no location for this path", q.close)
	} else {
		rt.stats.ConnOpen()
		res = h.forward(rt)
		rt.stats.ConnClose()
	}
	if h.bw.Flush() != nil {
		res.keep = false
	}
	vs.stats.ConnClose()
	s := stats.Sample{Status: res.status, BytesIn: q.length, BytesOut: res.bytesOut, Duration: time.Since(start),
		UpstreamDuration: res.upstreamTime}
	vs.stats.Observe(s)
	locName, upName := "", ""
	if rt != nil {
		rt.stats.Observe(s)
		locName, upName = rt.name, rt.upstream
	}
	if h.p.access.Enabled() {
		h.p.access.Log(&accesslog.Entry{Time: start, RemoteAddr: h.remote, Method: q.method, Host: q.host, URI: q.target,
			Proto: "HTTP/1.1", TLS: h.tls, Status: s.Status, BytesIn: s.BytesIn, BytesOut: s.BytesOut, Duration: s.Duration,
			UpstreamAddr: res.upstreamAddr, UpstreamTime: res.upstreamTime, Referer: q.referer,
			UserAgent: q.userAgent, VServer: vs.name, Location: locName, Upstream: upName})
	}
	return res.keep
}

// forward sends the request to the route's upstream, trying the next server
// while that is safe (the rules of forwardFast), and answers the client.
func (h *h1conn) forward(rt *route) h1result {
	q := &h.req
	key := ""
	if rt.pool.NeedsKey() {
		key = rt.pool.KeyFor(q.asRequest(h.remote))
	}
	var res h1result
	err := rt.tryServers(key, q.method, func(srv *upstream.Server) (bool, error) {
		return h.attempt(rt, srv, &res)
	}, func(err error) bool { return errors.Is(err, errClientGone) || h.bodyStreamed })
	if !h.endBody() {
		res.keep, q.close = false, true
	}
	switch {
	case err == nil:
		return res
	case errors.Is(err, errClientGone):
		return h1result{status: 499}
	}
	status := statusFor(err)
	h.p.log.Debug("upstream error", "host", q.host, "path", q.path, "status", status, "err", err)
	res = h1result{status: status, keep: !q.close}
	res.bytesOut = h.writeError(status, http.StatusText(status), q.close)
	return res
}

// attempt tries one server. It returns done once an answer went to the
// client (whole or cut short), else the error that lets forward try the
// next server.
func (h *h1conn) attempt(rt *route, srv *upstream.Server, res *h1result) (bool, error) {
	addr := srv.Addr()
	ss := h.p.stats.Server(rt.upstream, addr)
	srv.Acquire()
	ss.ConnOpen()
	defer func() { srv.Release(); ss.ConnClose() }()
	readTimeout := rt.readTimeout
	if readTimeout <= 0 {
		readTimeout = rt.tr.readTimeout
	}
	start := time.Now()
	pc, err := h.exchangeHead(rt, addr, readTimeout)
	took := time.Since(start)
	if err != nil {
		if !errors.Is(err, errClientGone) {
			srv.Report(false)
			ss.Observe(stats.Sample{Status: statusFor(err), UpstreamDuration: took})
		}
		return false, err
	}
	srv.Report(true)
	r := &h.resp
	res.status, res.upstreamAddr, res.upstreamTime = r.status, addr, took
	res.keep = !h.req.close && r.framed(h.req.method)
	h.writeResponseHead(res.keep)
	n, err := h.relayBody(pc, readTimeout)
	res.bytesOut = n
	if err == nil && !r.close {
		rt.tr.fast.put(addr, pc) // idle, it reads nothing; whoever takes it sets its deadline
	} else {
		pc.Close()
	}
	if err != nil {
		res.keep = false // the answer was cut short: only closing tells the client
	}
	ss.Observe(stats.Sample{Status: r.status, BytesOut: n, UpstreamDuration: took})
	return true, nil
}

// exchangeHead writes the request to addr over a pooled connection and
// reads the answer's head into h.resp, skipping interim (1xx) answers. An
// idempotent request on a reused connection the server had closed is sent
// again on a new one.
func (h *h1conn) exchangeHead(rt *route, addr string, readTimeout time.Duration) (*pooledConn, error) {
	for {
		pc, reused, err := rt.upstreamConn(context.Background(), addr)
		if err != nil {
			return nil, err
		}
		// The wait's deadline is the sooner of the read timeout and the
		// first client probe; awaitUpstream moves it on. (Writes have the
		// upstream's write timeout: writeTimeoutConn.)
		deadline := time.Now().Add(readTimeout)
		_ = pc.SetReadDeadline(sooner(deadline, time.Now().Add(clientProbe)))
		h.writeUpstreamRequest(pc.bw)
		if h.req.length > 0 {
			err = h.sendBody(pc)
		}
		if err == nil {
			err = pc.bw.Flush()
		}
		for err == nil {
			var n int
			n, err = readHead(pc.br, func(want int) error { return h.awaitUpstream(pc, want, deadline) })
			if err == nil {
				err = h.resp.parse(pc.br, n)
				_, _ = pc.br.Discard(n)
			}
			if err != nil || h.resp.status >= 200 || h.resp.status == 101 {
				break
			}
		}
		if (err == nil && h.resp.status == 101) || errors.Is(err, errHandOver) {
			// 101 was never asked for (the request had no Upgrade); a line
			// ending in a bare LF is not RFC 9112.
			err = errBadUpstream
		}
		if err == nil {
			return pc, nil
		}
		pc.Close()
		if errors.Is(err, errClientGone) || errors.Is(err, errUpstreamTimout) || errors.Is(err, errBadUpstream) ||
			errors.Is(err, errHeadTooLarge) {
			return nil, err
		}
		if !reused || !idempotent(h.req.method) || h.bodyStreamed {
			return nil, err
		}
	}
}

// sendBody writes the request body to the upstream. A body already in the
// client buffer is written from there and stays held; a longer one streams
// through, the client given the idle timeout between reads.
func (h *h1conn) sendBody(pc *pooledConn) error {
	n := h.req.length
	if n <= int64(h.br.Buffered()) {
		b, _ := h.br.Peek(int(n))
		h.held = int(n)
		_, err := pc.bw.Write(b)
		return err
	}
	h.bodyStreamed, h.bodyLeft = true, n
	for h.bodyLeft > 0 {
		if h.br.Buffered() == 0 {
			if err := pc.bw.Flush(); err != nil {
				return err
			}
			h.setReadDeadline(time.Now().Add(time.Duration(h.p.limits.IdleTimeout)))
			if _, err := h.br.Peek(1); err != nil {
				return errClientGone
			}
		}
		b, _ := h.br.Peek(int(min(int64(h.br.Buffered()), h.bodyLeft)))
		w, err := pc.bw.Write(b)
		_, _ = h.br.Discard(w)
		h.bodyLeft -= int64(w)
		if err != nil {
			return err
		}
	}
	return nil
}

// endBody consumes what is left of the request body once the request is
// answered (or refused) and reports whether the connection can read the
// next request: not when part of the body is still on its way.
func (h *h1conn) endBody() (whole bool) {
	defer func() { h.held, h.bodyStreamed, h.bodyLeft = 0, false, 0 }()
	defer func() { h.linger = !whole }()
	switch n := h.req.length; {
	case h.bodyStreamed:
		return h.bodyLeft == 0
	case n <= int64(h.br.Buffered()): // held, never sent, or none
		_, _ = h.br.Discard(int(n))
		return true
	case n <= maxSkippedBody: // never sent and still on its way: read and dropped
		h.setReadDeadline(time.Now().Add(time.Duration(h.p.limits.ReadHeaderTimeout)))
		_, err := h.br.Discard(int(n))
		return err == nil
	}
	return false
}

// awaitUpstream reads until pc's buffer holds want bytes or deadline
// passes. The connection's own deadline may come sooner (see exchangeHead):
// each time it does, the client is checked to be still there and the wait
// goes on, at most clientProbe at a time.
func (h *h1conn) awaitUpstream(pc *pooledConn, want int, deadline time.Time) error {
	for {
		_, err := pc.br.Peek(want)
		if err == nil {
			return nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return errUpstreamTimout
		}
		if h.clientGone() {
			return errClientGone
		}
		_ = pc.SetReadDeadline(sooner(deadline, now.Add(clientProbe)))
	}
}

func sooner(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// clientGone reports whether the client closed or reset its connection,
// without blocking and without consuming what it sent.
func (h *h1conn) clientGone() bool {
	if h.br.Buffered() > h.held {
		return false // the next request is already here
	}
	switch h.probe {
	case probeNone:
		return false
	case probeRead:
		// A record that arrived is decoded: close_notify reads as EOF,
		// a pipelined request stays in the buffer.
		if h.held >= h.br.Size() {
			return false // a held body fills the buffer: no room to look
		}
		h.setReadDeadline(time.Now().Add(time.Millisecond))
		_, err := h.br.Peek(h.held + 1)
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	sc, ok := h.c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var b [1]byte
	_ = rc.Control(func(fd uintptr) {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN && err != unix.EINTR)
	})
	return gone
}

// writeUpstreamRequest writes the request as the upstream sees it: the
// client's headers but the hop-by-hop ones and those Connection names, the
// client appended to X-Forwarded-For and Forwarded, X-Forwarded-Host and
// -Proto set, as for the other paths.
func (h *h1conn) writeUpstreamRequest(bw *bufio.Writer) {
	q := &h.req
	bw.WriteString(q.method)
	bw.WriteByte(' ')
	bw.WriteString(q.target)
	bw.WriteString(" HTTP/1.1\r\n")
	for _, f := range q.headers {
		bw.WriteString(f.name)
		bw.WriteString(": ")
		bw.WriteString(f.value)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-For: ")
	for _, v := range q.xff {
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(h.client)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	bw.WriteString(q.host)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	bw.WriteString(h.scheme)
	bw.WriteString("\r\nForwarded: ")
	bw.WriteString(forwardedValue(q.forwarded, q.host, h.client, h.scheme))
	bw.WriteString("\r\n\r\n")
}

// h1response is a parsed upstream response head; strings are substrings
// of head.
type h1response struct {
	head     string
	status   int
	reason   string
	headers  []h1field
	named    []string
	length   int64 // -1: not given
	chunked  bool  // Transfer-Encoding: chunked, relayed as it is
	close    bool  // the upstream closes after this answer
	noBody   bool  // HEAD, 1xx, 204, 304
	bodyOpen bool  // neither length nor chunked: the body ends when the upstream closes
}

func (r *h1response) parse(br *bufio.Reader, n int) error {
	buf, _ := br.Peek(n)
	*r = h1response{headers: r.headers[:0], named: r.named[:0], head: string(buf), length: -1}
	line, rest := cutLine(r.head)
	proto, rem, ok := cutByte(line, ' ')
	if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") || len(rem) < 3 {
		return errBadUpstream
	}
	code, err := strconv.Atoi(rem[:3])
	if err != nil || code < 100 || code > 999 || (len(rem) > 3 && rem[3] != ' ') {
		return errBadUpstream
	}
	r.status, r.close = code, proto == "HTTP/1.0"
	if len(rem) > 4 {
		r.reason = rem[4:]
	}
	for rest != "\r\n" {
		var name, value string
		if name, value, rest, ok = nextField(rest); !ok {
			return errBadUpstream
		}
		switch {
		case equalFold(name, "content-length"):
			v, ok := parseLength(value)
			if !ok || (r.length >= 0 && r.length != v) {
				return errBadUpstream
			}
			r.length = v
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") || r.chunked {
				return errBadUpstream // as net/http: chunked is the one coding proxies relay
			}
			r.chunked = true
			continue
		case equalFold(name, "connection"):
			var closing, keepAlive bool
			closing, keepAlive, r.named = connectionOptions(value, r.named)
			if keepAlive && !closing && proto == "HTTP/1.0" {
				r.close = false
			}
			r.close = r.close || closing
			continue
		}
		if isHopByHop(name) && !equalFold(name, "trailer") { // the trailers are relayed with the chunks
			continue
		}
		r.headers = append(r.headers, h1field{name, value})
	}
	r.noBody = code < 200 || code == 204 || code == 304
	if r.chunked {
		r.length = -1 // the chunks frame the body, not Content-Length
	}
	r.bodyOpen = !r.noBody && !r.chunked && r.length < 0
	if r.bodyOpen {
		r.close = true
	}
	return nil
}

// framed reports whether the client can tell where this answer ends
// without the connection closing.
func (r *h1response) framed(method string) bool {
	return method == "HEAD" || r.noBody || !r.bodyOpen
}

// writeResponseHead writes the upstream's head to the client: status,
// headers but the hop-by-hop ones and those Connection names, then the
// framing this proxy relays.
func (h *h1conn) writeResponseHead(keep bool) {
	r, bw := &h.resp, h.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(r.status))
	bw.WriteByte(' ')
	bw.WriteString(r.reason)
	bw.WriteString("\r\n")
	for _, f := range r.headers {
		if len(r.named) > 0 && containsFold(r.named, f.name) {
			continue
		}
		if r.chunked && equalFold(f.name, "content-length") {
			continue
		}
		bw.WriteString(f.name)
		bw.WriteString(": ")
		bw.WriteString(f.value)
		bw.WriteString("\r\n")
	}
	if r.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// relayBody copies the answer's body to the client as the upstream sends
// it: what has arrived is flushed to the client before waiting for more, so
// streamed answers (server-sent events, long polls) flow as they come. It
// returns the body bytes relayed (chunk data, not framing).
func (h *h1conn) relayBody(pc *pooledConn, readTimeout time.Duration) (int64, error) {
	r := &h.resp
	switch {
	case h.req.method == "HEAD" || r.noBody:
		return 0, nil
	case r.chunked:
		return h.relayChunked(pc, readTimeout)
	case r.length >= 0:
		return h.relayN(pc, r.length, readTimeout)
	default:
		n, err := h.relayN(pc, -1, readTimeout)
		if errors.Is(err, errUpstreamEOF) {
			err = nil
		}
		return n, err
	}
}

var errUpstreamEOF = errors.New("upstream closed the connection")

// relayN copies n body bytes (n < 0: until the upstream closes, which then
// returns errUpstreamEOF) from the upstream to the client.
func (h *h1conn) relayN(pc *pooledConn, n int64, readTimeout time.Duration) (int64, error) {
	var done int64
	for n < 0 || done < n {
		if pc.br.Buffered() == 0 {
			if h.bw.Flush() != nil {
				return done, errClientWrite
			}
			if err := h.awaitUpstream(pc, 1, time.Now().Add(readTimeout)); err != nil {
				if errors.Is(err, io.EOF) {
					return done, errUpstreamEOF
				}
				return done, err
			}
		}
		k := pc.br.Buffered()
		if n >= 0 && int64(k) > n-done {
			k = int(n - done)
		}
		b, _ := pc.br.Peek(k)
		w, err := h.bw.Write(b)
		_, _ = pc.br.Discard(w)
		done += int64(w)
		if err != nil {
			return done, errClientWrite
		}
	}
	return done, nil
}

// relayChunked relays a chunked body as it is, chunk lines, data and
// trailers, parsing the sizes to know where it ends.
func (h *h1conn) relayChunked(pc *pooledConn, readTimeout time.Duration) (int64, error) {
	var data int64
	for {
		line, err := h.upstreamLine(pc, readTimeout)
		if err != nil {
			return data, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return data, errBadUpstream
		}
		if _, err := h.bw.Write(line); err != nil {
			return data, errClientWrite
		}
		_, _ = pc.br.Discard(len(line))
		if size == 0 {
			for { // trailers, up to the empty line
				line, err := h.upstreamLine(pc, readTimeout)
				if err != nil {
					return data, err
				}
				_, werr := h.bw.Write(line)
				_, _ = pc.br.Discard(len(line))
				if werr != nil {
					return data, errClientWrite
				}
				if len(line) == 2 {
					return data, nil
				}
			}
		}
		n, err := h.relayN(pc, size+2, readTimeout) // the data and its CRLF
		data += max(0, n-2)
		if err != nil {
			return data, err
		}
	}
}

// upstreamLine returns the next line (through its CRLF) in pc's buffer,
// without consuming it.
func (h *h1conn) upstreamLine(pc *pooledConn, readTimeout time.Duration) ([]byte, error) {
	for {
		buf, _ := pc.br.Peek(pc.br.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i == 0 || buf[i-1] != '\r' {
				return nil, errBadUpstream
			}
			return buf[:i+1], nil
		}
		if len(buf) >= maxChunkLine {
			return nil, errBadUpstream
		}
		if h.bw.Flush() != nil {
			return nil, errClientWrite
		}
		if err := h.awaitUpstream(pc, len(buf)+1, time.Now().Add(readTimeout)); err != nil {
			return nil, err
		}
	}
}

// chunkSize parses a chunk-size line ("1a;ext=v\r\n").
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, b := range line[:len(line)-2] {
		var v byte
		switch {
		case '0' <= b && b <= '9':
			v = b - '0'
		case 'a' <= b && b <= 'f':
			v = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			v = b - 'A' + 10
		case b == ';' || b == ' ' || b == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, digits > 0
}

// writeError answers with status and a short text, as http.Error does, and
// returns the body length.
func (h *h1conn) writeError(status int, text string, closing bool) int64 {
	bw := h.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(status))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(text) + 1))
	if closing {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	bw.WriteString(text)
	bw.WriteByte('\n')
	return int64(len(text) + 1)
}

// asRequest is the request as the upstream package's KeyFor reads it, built
// only for hash balancers.
func (q *h1request) asRequest(remote string) *http.Request {
	r := &http.Request{Method: q.method, Host: q.host, RequestURI: q.target, RemoteAddr: remote,
		URL: &url.URL{Path: q.path}, Header: make(http.Header, len(q.headers))}
	for _, f := range q.headers {
		r.Header.Add(f.name, f.value)
	}
	return r
}

// cutLine splits s after its first CRLF; the head's lines all have one
// (readHead made sure).
func cutLine(s string) (line, rest string) {
	i := strings.Index(s, "\r\n")
	return s[:i], s[i+2:]
}

// connectionOptions reads a Connection value: close, keep-alive, and the
// other headers it names, appended to named.
func connectionOptions(value string, named []string) (closing, keepAlive bool, _ []string) {
	for value != "" {
		var tok string
		tok, value, _ = cutByte(value, ',')
		switch tok = trimOWS(tok); {
		case equalFold(tok, "close"):
			closing = true
		case equalFold(tok, "keep-alive"):
			keepAlive = true
		case tok != "":
			named = append(named, tok)
		}
	}
	return closing, keepAlive, named
}

// parseLength parses a Content-Length value as net/http does: decimal
// digits only.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// nextField parses the header field on the first line of rest: a token
// name, a colon, a value without control characters, trimmed.
func nextField(rest string) (name, value, after string, ok bool) {
	line, after := cutLine(rest)
	name, value, ok = cutByte(line, ':')
	if !ok || !isToken(name) {
		return "", "", after, false
	}
	value = trimOWS(value)
	return name, value, after, validValue(value)
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is an RFC 9110 token (a method, a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validValue rejects control characters but horizontal tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// equalFold is ASCII case-insensitive equality, lower being lower case.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != lower[i] {
			return false
		}
	}
	return true
}

func containsFold(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func isHopByHop(name string) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "te")
	case 7:
		return equalFold(name, "trailer") || equalFold(name, "upgrade")
	case 10:
		return equalFold(name, "keep-alive") || equalFold(name, "connection")
	case 16:
		return equalFold(name, "proxy-connection")
	case 17:
		return equalFold(name, "transfer-encoding")
	case 18:
		return equalFold(name, "proxy-authenticate")
	case 19:
		return equalFold(name, "proxy-authorization")
	}
	return false
}
