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
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/fifopoll"
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
// body, with a Content-Length one or a chunked one, in origin form, with exactly one Host,
// no percent-encoding in the path, no Upgrade, no Expect but 100-continue
// (which the proxy answers itself when it reads the body), routed to a
// plain-HTTP upstream. At the first request that is anything else
// (HTTP/1.0, another transfer coding, WebSocket, h2c, a malformed head, a head
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
	p       *Proxy
	c       net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	local   netip.AddrPort
	remote  string // ip:port, as http.Request.RemoteAddr
	client  string // ip
	req     h1request
	resp    h1response
	busy    atomic.Bool // a request is being served
	in      clientReader
	io      countingIO // br's and bw's: the bytes of each request and answer, for the counters
	scratch []byte     // reused for what is written from pieces

	// The request being read or served: the first on the connection, its
	// deadlines set (waiting) and the header one among them, its route.
	first, waiting, headerDeadline bool
	vs                             *vserver
	rt                             *route
	// When serving it began, and whether an attempt at the upstream took
	// that as its own start (see attemptStart).
	start     time.Time
	attempted bool
	// clock is the end of the last request served, a clock read the next
	// one's deadlines reuse (nextRequest); zero once used.
	clock time.Time
	// bodyWaited: the answer's body did not all come with its head, so
	// the upstream connection was busy past the head (attempt's clock).
	bodyWaited bool

	readDeadline time.Time // the client connection's, as last set

	// The request body: when it is all in br it stays there (held) until
	// the exchange is over, so that a retry can send it again; a longer
	// one, or a chunked one, streams (bodyStreamed) and bodyLeft of it is
	// still unread (a chunked one: 1 until its end is read).
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
			h.abort()
		} else {
			left++
		}
	}
	return left
}

// abort ends h's connection from another goroutine, without waiting. A
// connection served raw (serveRaw) is shut down, not closed: its goroutine
// holds a read of the socket while it serves a request, and Close waits
// for that to end. Its reads then see the end and its writes fail (a
// request waiting for its upstream at the next client probe), and its
// goroutine closes it.
func (h *h1conn) abort() {
	if h.in.rc != nil && h.in.rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) }) == nil {
		return
	}
	h.c.Close()
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
	// probeRecords peeks at the socket under TLCP's record layer, which
	// cannot peek: an end, or an alert record waiting (close_notify or a
	// fatal alert; a client sends no other after the handshake), is the
	// client leaving.
	probeRecords
)

// alertRecord is the content type of a TLS or TLCP alert record.
const alertRecord = 21

// serveHTTP1 serves connection c (plain, or TLS after its handshake) until
// it closes, or hands it to net/http at the first request the loop leaves
// to it, and reports which.
func (p *Proxy) serveHTTP1(c net.Conn, o h1opts) (handedOver bool) {
	client, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	h := &h1conn{p: p, c: c, h1opts: o, local: localAddrPort(c.LocalAddr()), remote: c.RemoteAddr().String(), client: client}
	h.in.c = c
	switch c.(type) {
	case *fifopoll.Conn, *net.TCPConn: // a plain socket: served raw (serveRaw)
		h.in.rc, _ = c.(syscall.Conn).SyscallConn()
	}
	h.io = countingIO{r: &h.in, w: c}
	h.br = h1Readers.Get().(*bufio.Reader)
	h.br.Reset(&h.io)
	h.bw = h1Writers.Get().(*bufio.Writer)
	h.bw.Reset(&h.io)
	p.h1.add(h)
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
	h.first = true
	for {
		var step h1step
		if h.in.rc != nil {
			step = h.serveRaw()
		} else {
			step = h.nextRequest()
		}
		switch step {
		case stepServe:
			if !h.serve(h.vs, h.rt) {
				return
			}
			h.endRequest()
		case stepHandOver:
			// net/http takes the connection with what is left in the
			// buffer, back in Go's poller (splice for upgrades, as before).
			if fc, ok := c.(*fifopoll.Conn); ok {
				nc, err := fc.Release()
				if err != nil {
					return
				}
				c, h.in.c, h.in.rc = nc, nc, nil
			}
			_ = c.SetDeadline(time.Time{})
			handedOver = true
			o.handOver.push(&bufferedConn{Conn: c, br: h.br})
			return
		default:
			return
		}
	}
}

// h1step is what became of the wait for the next request.
type h1step int

const (
	stepServe    h1step = iota // h.req is parsed and routed to h.vs, h.rt; its head consumed
	stepBlocked                // (raw reads) the socket has nothing more yet: wait for it
	stepClose                  // timed out, the client closed, or the service is gone
	stepHandOver               // net/http takes the connection
)

// nextRequest reads the next request head, parses and routes it. Reading
// raw (serveRaw), it may stop at stepBlocked and be called again once the
// socket is readable: it then starts over with what the buffer holds, its
// deadlines set once per request.
func (h *h1conn) nextRequest() h1step {
	p := h.p
	headerTimeout, idleTimeout := time.Duration(p.limits.ReadHeaderTimeout), time.Duration(p.limits.IdleTimeout)
	if !h.waiting {
		// Deadlines cost a timer update each: the idle one is moved only
		// when it has drifted by a second (an eighth of a shorter idle
		// timeout) or lies past it (the first head's), the header one set
		// only when a head did not arrive whole.
		h.waiting, h.headerDeadline = true, h.first
		now := h.clock
		if now.IsZero() {
			now = time.Now()
		}
		h.clock = time.Time{}
		slack := min(time.Second, idleTimeout/8)
		switch d := h.readDeadline.Sub(now); {
		case h.first:
			h.setReadDeadline(now.Add(headerTimeout))
		case d > idleTimeout || d < idleTimeout-slack:
			h.setReadDeadline(now.Add(idleTimeout))
		}
	}
	if h.br.Buffered() == 0 && h.in.drained {
		return stepBlocked // a read now would find nothing: see clientReader
	}
	if _, err := h.br.Peek(1); err != nil {
		return h.readFailed(err)
	}
	h.busy.Store(true) // from its first byte on, a request is in flight, as for net/http
	n, err := readHead(h.br, func(int) error {
		if !h.headerDeadline {
			h.setReadDeadline(time.Now().Add(headerTimeout))
			h.headerDeadline = true
		}
		return nil
	})
	if err != nil && !errors.Is(err, errHandOver) && !errors.Is(err, errHeadTooLarge) {
		return h.readFailed(err)
	}
	ep := p.current().endpoints[h.local]
	if ep == nil {
		if err == nil {
			h.writeError(http.StatusMisdirectedRequest, "no service here", true) // steered here, but the service is gone
			_ = h.bw.Flush()
		}
		return stepClose
	}
	if err == nil && h.req.parse(h.br, n) {
		vs := ep.vserverFor(h.req.host)
		if rt := vs.routeFor(h.req.path); rt == nil || (rt.pool != nil && rt.tr.fast != nil) {
			_, _ = h.br.Discard(n)
			if p.shuttingDown.Load() {
				h.req.close = true // the answer says so, as net/http's do during Shutdown
			}
			h.vs, h.rt = vs, rt
			return stepServe
		}
	}
	if err == nil && framedTwice(h.br, n) {
		// RFC 9112 6.1: such a request may be an attempt at smuggling; a
		// server that reads it must close after it. Refused, as nginx does.
		h.writeError(http.StatusBadRequest, "both Content-Length and Transfer-Encoding", true)
		_ = h.bw.Flush()
		return stepClose
	}
	return stepHandOver
}

func (h *h1conn) readFailed(err error) h1step {
	if errors.Is(err, errWouldBlock) {
		return stepBlocked
	}
	return stepClose
}

// endRequest readies the connection for the next request.
func (h *h1conn) endRequest() {
	h.busy.Store(false)
	h.first, h.waiting = false, false
	h.vs, h.rt = nil, nil
}

// serveRaw serves requests from inside one RawConn.Read of the client
// socket, the way nginx serves a connection from its event loop: a request
// is read when the socket is readable, and once its answer is written the
// connection waits for the next one without a read that would find nothing
// (EAGAIN), which costs a syscall per request otherwise. The poller (Go's,
// or fifopoll's) forgets the readiness it saw when a RawConn.Read starts;
// inside the one RawConn.Read it forgets nothing, however long the answer
// took: a request pipelined meanwhile is read at once.
//
// It returns at a request whose body is not all in the buffer (stepServe:
// the body is read while it streams to the upstream, by ordinary reads),
// at a hand-over, or when the connection ends.
func (h *h1conn) serveRaw() h1step {
	out := stepClose
	err := h.in.rc.Read(func(fd uintptr) bool {
		// Called first, and again each time the socket became readable.
		h.in.fd, h.in.raw, h.in.drained = int(fd), true, false
		defer func() { h.in.raw = false }()
		for {
			switch step := h.nextRequest(); {
			case step == stepBlocked:
				return false
			// A body still on its way is waited for outside: a raw read
			// does not wait.
			case step == stepServe && h.bodyHere():
				if !h.serve(h.vs, h.rt) {
					return true
				}
				h.endRequest()
			default:
				out = step
				return true
			}
		}
	})
	if err != nil {
		return stepClose // the read deadline passed, or the connection was closed
	}
	return out
}

// errWouldBlock is a raw read's EAGAIN.
var errWouldBlock = errors.New("nothing to read yet")

// clientReader reads the client connection for the loop's buffer: through
// the connection, or, inside serveRaw, with read(2) on its socket, which
// only serveRaw may do while it holds the socket's read lock.
type clientReader struct {
	c       net.Conn
	rc      syscall.RawConn // a TCP socket's; nil otherwise (TLS)
	fd      int
	raw     bool
	drained bool // the last raw read left the socket empty: the next is for after a wait
}

func (r *clientReader) Read(p []byte) (int, error) {
	if !r.raw {
		return r.c.Read(p)
	}
	for {
		n, err := fifopoll.ReadFD(r.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			r.drained = true
			return 0, errWouldBlock
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
		case n == 0:
			return 0, io.EOF
		}
		r.drained = n < len(p)
		return n, nil
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

// h1result is what became of one request, for the counters and the log.
type h1result struct {
	status       int
	bytesOut     int64 // of the body
	upstreamAddr string
	upstreamTime time.Duration
	keep         bool // the client connection may serve another request
}

// serve answers the parsed request on route rt of vs (nil: no location) and
// reports whether the connection stays open.
func (h *h1conn) serve(vs *vserver, rt *route) bool {
	start := time.Now()
	h.start, h.attempted = start, false
	q := &h.req
	// What the client sent of this request and got of its answer: from its
	// head, which is consumed already, on.
	readFrom := h.io.read - int64(h.br.Buffered()) - int64(len(q.head))
	wroteFrom := h.io.written + int64(h.bw.Buffered())
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
	took := time.Since(start)
	h.clock = start.Add(took)
	s := stats.Sample{Status: res.status, BytesIn: h.io.read - int64(h.br.Buffered()) - readFrom,
		BytesOut: h.io.written + int64(h.bw.Buffered()) - wroteFrom, Duration: took,
		UpstreamDuration: res.upstreamTime}
	vs.stats.Observe(s)
	locName, upName := "", ""
	if rt != nil {
		rt.stats.Observe(s)
		locName, upName = rt.name, rt.upstream
	}
	if h.p.access.Enabled() {
		e := accesslog.Entry{Time: start, RemoteAddr: h.remote, Method: q.method, Host: q.host, URI: q.target,
			Proto: "HTTP/1.1", TLS: h.tls, Status: s.Status, RequestLength: s.BytesIn, BytesSent: s.BytesOut,
			BodyBytesSent: res.bytesOut, Duration: s.Duration,
			UpstreamAddr: res.upstreamAddr, UpstreamTime: res.upstreamTime, Referer: q.referer,
			UserAgent: q.userAgent, VServer: vs.name, Location: locName, Upstream: upName}
		// The log writes the entry later; the next request reuses the head's buffer.
		ownStrings(&e.Method, &e.Host, &e.URI, &e.Referer, &e.UserAgent)
		h.p.access.Log(&e)
	}
	return res.keep
}

// forward sends the request to the route's upstream, trying the next server
// while that is safe (route.tryServers), and answers the client.
func (h *h1conn) forward(rt *route) h1result {
	q := &h.req
	key := ""
	if rt.pool.NeedsKey() {
		key = rt.pool.KeyFor(q.asRequest(h.remote))
	}
	var res h1result
	err := rt.tryServers(key, q.method, h.start, func(srv *upstream.Server) (bool, error) {
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
	start := h.attemptStart()
	pc, err := h.exchangeHead(rt, addr, readTimeout, start)
	took := time.Since(start)
	if err != nil {
		// A client that left or framed its body wrong is not the server's
		// failure (else a client could take servers out of the pool).
		if !errors.Is(err, errClientGone) && !errors.Is(err, errBadRequestBody) {
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
	h.bodyWaited = false
	n, err := h.relayBody(pc, readTimeout)
	res.bytesOut = n
	sent, got := pc.exchanged()
	if err == nil && !r.close {
		idle := start.Add(took) // the head's arrival, which brought the whole answer
		if h.bodyWaited {
			idle = time.Now()
		}
		rt.tr.fast.put(addr, pc, idle) // idle, it reads nothing; whoever takes it sets its deadline
	} else {
		pc.Close()
	}
	if err != nil {
		res.keep = false // the answer was cut short: only closing tells the client
	}
	ss.Observe(stats.Sample{Status: r.status, BytesIn: sent, BytesOut: got, UpstreamDuration: took})
	return true, nil
}

// attemptStart is when an attempt at the upstream begins: the first one
// as serving the request did, a clock read saved per request (what came
// between, a balancer's pick, takes well under a microsecond); a later one
// now.
func (h *h1conn) attemptStart() time.Time {
	if h.attempted {
		return time.Now()
	}
	h.attempted = true
	return h.start
}

// exchangeHead writes the request to addr over a pooled connection and
// reads the answer's head into h.resp, skipping interim (1xx) answers. An
// idempotent request on a reused connection the server had closed is sent
// again on a new one.
func (h *h1conn) exchangeHead(rt *route, addr string, readTimeout time.Duration, now time.Time) (*pooledConn, error) {
	for again := false; ; again = true {
		if again {
			now = time.Now()
		}
		pc, reused, err := rt.upstreamConn(context.Background(), addr, now)
		if err != nil {
			return nil, err
		}
		pc.startExchange()
		// The wait's deadline is the sooner of the read timeout and the
		// first client probe; awaitUpstream moves it on. (Writes have the
		// upstream's write timeout: writeTimeoutConn.)
		deadline := now.Add(readTimeout)
		pc.setWaitDeadline(now, sooner(deadline, now.Add(clientProbe)))
		h.writeUpstreamRequest(pc.bw)
		switch {
		case h.req.chunked:
			err = h.sendChunked(pc)
		case h.req.length > 0:
			err = h.sendBody(pc)
		}
		switch {
		case err != nil:
		case h.bodyStreamed: // its server may have answered before the end
			err = pc.bw.Flush()
		default:
			err = pc.flushAwaiting()
		}
		for err == nil {
			var n int
			var bareLF bool
			n, bareLF, err = readUpstreamHead(pc.br, func(want int) error { return h.awaitUpstream(pc, want, deadline) })
			if err == nil {
				err = h.resp.parse(pc.br, n, bareLF)
				_, _ = pc.br.Discard(n)
			}
			if err != nil || h.resp.status >= 200 || h.resp.status == 101 {
				break
			}
		}
		if err == nil && h.resp.status == 101 {
			err = errBadUpstream // never asked for: the request had no Upgrade
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
	if err := h.streamBody(pc, n); err != nil {
		return err
	}
	h.bodyLeft = 0
	return nil
}

// streamBody copies the next n bytes of the client's body to the upstream.
func (h *h1conn) streamBody(pc *pooledConn, n int64) error {
	for n > 0 {
		if h.br.Buffered() == 0 {
			if err := h.awaitClient(pc, 1); err != nil {
				return err
			}
		}
		b, _ := h.br.Peek(int(min(int64(h.br.Buffered()), n)))
		w, err := pc.bw.Write(b)
		_, _ = h.br.Discard(w)
		n -= int64(w)
		if err != nil {
			return err
		}
	}
	return nil
}

// bodyHere reports whether the request's body is all in the buffer, or
// known to be misframed: either way it is served without waiting for more.
func (h *h1conn) bodyHere() bool {
	if !h.req.chunked {
		return h.req.length <= int64(h.br.Buffered())
	}
	buf, _ := h.br.Peek(h.br.Buffered())
	_, _, whole, bad := bufferedChunked(buf)
	return whole || bad
}

// awaitClient waits, the client given the idle timeout, until br holds want
// bytes of the body; what the upstream was given of it goes out first, and
// a client that expects it is told to go on (sendContinue).
func (h *h1conn) awaitClient(pc *pooledConn, want int) error {
	if err := pc.bw.Flush(); err != nil {
		return err
	}
	if err := h.sendContinue(); err != nil {
		return errClientGone
	}
	h.setReadDeadline(time.Now().Add(time.Duration(h.p.limits.IdleTimeout)))
	if _, err := h.br.Peek(want); err != nil {
		return errClientGone
	}
	return nil
}

// sendContinue answers Expect: 100-continue with a 100 (Continue) once the
// body is wanted, as nginx does: the upstream is reached and the body is
// not all here. Expect is not forwarded; a request answered without its
// body (a 404, an upstream error) never gets one, and its connection closes
// (endBody), since the client may or may not send the body then.
func (h *h1conn) sendContinue() error {
	if !h.req.expect || h.req.continued {
		return nil
	}
	h.req.continued = true
	_, _ = h.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return h.bw.Flush()
}

// maxRequestTrailers bounds a chunked request's trailer section, within the
// 4 KiB net/http's server reads one in.
const maxRequestTrailers = 2 << 10

// chunkFraming follows a chunked request body line by line, holding it to
// what net/http reads (see sendChunked); the data between the lines is the
// caller's to pass on, want bytes of it at a time.
type chunkFraming struct {
	want       int64 // data bytes of the current chunk still to pass on
	dataEnd    bool  // the next line ends a chunk's data: it must be empty
	inTrailers bool  // past the last chunk
	trailers   int   // bytes of the trailer section so far
	data       int64 // data bytes passed on
	done       bool  // the trailer section's empty line was read
}

// line takes the next line, without its CRLF, and reports whether it is
// framed as it must be there, and fits net/http's 4 KiB read buffer with
// its CRLF.
func (f *chunkFraming) line(l []byte) bool {
	switch {
	case len(l)+2 > maxChunkLine:
		return false
	case f.dataEnd:
		f.dataEnd = false
		return len(l) == 0
	case f.inTrailers:
		f.trailers += len(l) + 2
		f.done = len(l) == 0
		return f.trailers <= maxRequestTrailers && (f.done || trailerField(l))
	}
	size, ok := requestChunkSize(l)
	f.want, f.inTrailers = size, size == 0
	return ok
}

// took records n data bytes passed on.
func (f *chunkFraming) took(n int64) {
	f.want -= n
	f.data += n
	f.dataEnd = f.want == 0
}

// bufferedChunked returns the length of the chunked body at the start of
// buf and its framing when buf holds all of it (whole), or reports it
// misframed (bad); neither when more of it is to come.
func bufferedChunked(buf []byte) (n int, f chunkFraming, whole, bad bool) {
	for !f.done {
		if f.want > 0 {
			if int64(len(buf)-n) < f.want {
				return n, f, false, false
			}
			n += int(f.want)
			f.took(f.want)
			continue
		}
		line, m, ok := crlfLine(buf[n:])
		switch {
		case !ok || m > 0 && !f.line(line):
			return n, f, false, true
		case m == 0:
			return n, f, false, len(buf)-n >= maxChunkLine
		}
		n += m
	}
	return n, f, true, false
}

// crlfLine finds the line at the start of buf: its content without the
// CRLF, and its length with it (0 when buf holds no LF yet). ok is false
// when the LF has no CR before it: a bare LF, which net/http refuses in
// chunk framing.
func crlfLine(buf []byte) (line []byte, n int, ok bool) {
	i := bytes.IndexByte(buf, '\n')
	switch {
	case i < 0:
		return nil, 0, true
	case i == 0 || buf[i-1] != '\r':
		return nil, 0, false
	}
	return buf[:i-1], i + 1, true
}

// sendChunked sends a chunked request body to the upstream: chunk-size
// lines (an extension relayed), data, and the trailer section. Every line
// must end in CRLF and nothing else (RFC 9112 7.1, and erratum 7633: no
// bare LF), as net/http reads them (chunkFraming); a body framed otherwise
// is refused with errBadRequestBody, and what the upstream got of it is cut
// off with its connection. A body all in the buffer stays held there, to
// be sent again to the next server if need be, like a Content-Length one;
// a longer one streams as it comes and is tried on no other server.
func (h *h1conn) sendChunked(pc *pooledConn) error {
	buf, _ := h.br.Peek(h.br.Buffered())
	switch n, f, whole, bad := bufferedChunked(buf); {
	case bad:
		return errBadRequestBody
	case whole:
		h.held, h.req.length = n, f.data
		_, err := pc.bw.Write(buf[:n])
		return err
	}
	h.bodyStreamed, h.bodyLeft = true, 1
	var f chunkFraming
	for !f.done {
		if f.want > 0 {
			if err := h.streamBody(pc, f.want); err != nil {
				return err
			}
			f.took(f.want)
			continue
		}
		line, err := h.chunkLine(pc)
		if err != nil {
			return err
		}
		if !f.line(line) {
			return errBadRequestBody
		}
		h.relayChunkLine(pc, line)
	}
	h.bodyLeft, h.req.length = 0, f.data
	return nil
}

// chunkLine returns the next line of a chunked request body without its
// CRLF, not consumed (relayChunkLine consumes it).
func (h *h1conn) chunkLine(pc *pooledConn) ([]byte, error) {
	for {
		buf, _ := h.br.Peek(h.br.Buffered())
		line, n, ok := crlfLine(buf)
		switch {
		case !ok || n == 0 && len(buf) >= maxChunkLine:
			return nil, errBadRequestBody
		case n > 0:
			return line, nil
		}
		if err := h.awaitClient(pc, len(buf)+1); err != nil {
			return nil, err
		}
	}
}

// relayChunkLine writes line, as chunkLine returned it, and its CRLF to the
// upstream and consumes it.
func (h *h1conn) relayChunkLine(pc *pooledConn, line []byte) {
	_, _ = pc.bw.Write(line)
	_, _ = pc.bw.WriteString("\r\n")
	_, _ = h.br.Discard(len(line) + 2)
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
	case h.req.chunked: // held, or never sent: dropped when it is all here
		buf, _ := h.br.Peek(h.br.Buffered())
		n, _, whole, _ := bufferedChunked(buf)
		if whole {
			_, _ = h.br.Discard(n)
		}
		return whole
	case n <= int64(h.br.Buffered()): // held, never sent, or none
		_, _ = h.br.Discard(int(n))
		return true
	case h.req.expect: // never sent, nor asked for: it may never come
		return false
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
		pc.setWaitDeadline(now, sooner(deadline, now.Add(clientProbe)))
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
	if h.probe == probeRead {
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
	c := h.c
	for {
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = nc.NetConn() // TLCP's socket, under the record layer and the first bytes peeked
	}
	sc, ok := c.(syscall.Conn)
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
		gone = (n == 0 && err == nil) || (err != nil && err != unix.EAGAIN && err != unix.EINTR) ||
			(h.probe == probeRecords && n == 1 && b[0] == alertRecord)
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
	if q.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
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
	h.scratch = appendForwarded(h.scratch[:0], q.forwarded, q.host, h.client, h.scheme)
	bw.Write(h.scratch)
	bw.WriteString("\r\n\r\n")
}
