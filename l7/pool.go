package l7

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicelb/sluice/l7/fifopoll"
)

// Plain-HTTP upstreams: the HTTP/1.1 loop (http1.go) forwards over keep-alive
// connections of its own, kept per server address; ReverseProxy, for what
// net/http serves, has http.Transport's.

// pooledConn is one idle keep-alive connection to an upstream server.
type pooledConn struct {
	net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	io countingIO // br's and bw's
	// io's counts when the exchange began (startExchange), what br held
	// not counted.
	readFrom, wroteFrom int64
	rc                  syscall.RawConn // the socket's; nil when c is not one
	since               time.Time
	// readDeadline is the read deadline as last set (setWaitDeadline).
	readDeadline time.Time

	// flushAwaiting's state, and its function for rc.Read made once: a
	// closure made per request would be allocated per request.
	flushed  bool
	flushErr error
	flushFn  func(uintptr) bool
}

func newPooledConn(c net.Conn) *pooledConn {
	pc := &pooledConn{Conn: c, io: countingIO{r: c, w: c}}
	pc.br, pc.bw = bufio.NewReaderSize(&pc.io, 16<<10), bufio.NewWriterSize(&pc.io, 8<<10)
	if w, ok := c.(*writeTimeoutConn); ok {
		c = w.Conn
	}
	if sc, ok := c.(syscall.Conn); ok {
		pc.rc, _ = sc.SyscallConn()
	}
	pc.flushFn = pc.flushThenWait
	return pc
}

// startExchange marks the start of a request on pc, for exchanged.
func (pc *pooledConn) startExchange() {
	pc.readFrom = pc.io.read - int64(pc.br.Buffered())
	pc.wroteFrom = pc.io.written + int64(pc.bw.Buffered())
}

// exchanged returns the bytes the request took to the server and its
// answer brought back since startExchange.
func (pc *pooledConn) exchanged() (sent, got int64) {
	return pc.io.written + int64(pc.bw.Buffered()) - pc.wroteFrom, pc.io.read - int64(pc.br.Buffered()) - pc.readFrom
}

// countingIO counts the bytes read from r and written to w.
type countingIO struct {
	r             io.Reader
	w             io.Writer
	read, written int64
}

func (c *countingIO) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *countingIO) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.written += int64(n)
	return n, err
}

// setWaitDeadline gives the wait for an answer the read deadline t, or
// keeps the one set when that is no later than t and at least half as far
// from now: moving a deadline costs a timer update, and a wait woken early
// only looks at its client and waits on (awaitUpstream), never late.
func (pc *pooledConn) setWaitDeadline(now, t time.Time) {
	if d := pc.readDeadline; !d.After(t) && d.Sub(now) >= t.Sub(now)/2 {
		return
	}
	pc.readDeadline = t
	_ = pc.SetReadDeadline(t)
}

// flushAwaiting writes what bw holds, the end of a request, and waits until
// the answer can be read or the read deadline passes (the read that follows
// tells which), so that reading the answer is one read.
//
// A read right after the request would almost always find nothing (EAGAIN)
// and only then wait: a syscall per request for nothing, which nginx does
// not pay (it reads when epoll says so). The poller forgets the readiness it
// saw before a RawConn.Read starts, so the request is written from inside
// the wait (RawConn.Read calls its function once before waiting): whatever
// the server sends after the request, the answer or a reset, is seen.
func (pc *pooledConn) flushAwaiting() error {
	if pc.rc == nil || pc.br.Buffered() > 0 {
		return pc.bw.Flush()
	}
	pc.flushed, pc.flushErr = false, nil
	_ = pc.rc.Read(pc.flushFn)
	return pc.flushErr
}

// flushThenWait is flushAwaiting's function for rc.Read: the first call
// writes the request, the next (the socket readable) ends the wait.
func (pc *pooledConn) flushThenWait(uintptr) bool {
	if pc.flushed {
		return true
	}
	pc.flushed = true
	pc.flushErr = pc.bw.Flush()
	return pc.flushErr != nil
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

// get returns the most recently used idle connection to addr, or nil; now
// is the caller's clock (a request's start: the idle timeout is seconds,
// and a clock read costs as much as the pool's lookup).
func (cp *connPool) get(addr string, now time.Time) *pooledConn {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.conns[addr]
	for len(s) > 0 {
		pc := s[len(s)-1]
		s = s[:len(s)-1]
		if now.Sub(pc.since) < cp.idle {
			cp.conns[addr] = s
			return pc
		}
		pc.Close()
	}
	cp.conns[addr] = s
	return nil
}

// put keeps pc, idle since now, for the next request to addr, or closes it
// when the pool is full or closed.
func (cp *connPool) put(addr string, pc *pooledConn, now time.Time) {
	pc.since = now
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

// upstreamConn returns an idle keep-alive connection to addr from the
// route's upstream (reused), or a new one dialled within the route's connect
// timeout.
func (rt *route) upstreamConn(ctx context.Context, addr string, now time.Time) (pc *pooledConn, reused bool, err error) {
	if pc := rt.tr.fast.get(addr, now); pc != nil {
		return pc, true, nil
	}
	if rt.connectTimeout > 0 {
		ctx = context.WithValue(ctx, connectTimeoutKey{}, rt.connectTimeout)
	}
	c, err := rt.tr.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return newPooledConn(adopt(rt.tr.poll, c)), false, nil
}

// adopt moves a plain TCP connection (c, or the one a writeTimeoutConn
// wraps) to the proxy's poller, which wakes connections in the order they
// became ready (see fifopoll). A connection it cannot move stays as it is.
func adopt(p *fifopoll.Poller, c net.Conn) net.Conn {
	if w, ok := c.(*writeTimeoutConn); ok {
		w.Conn = adopt(p, w.Conn)
		return w
	}
	tc, ok := c.(*net.TCPConn)
	if !ok || p == nil {
		return c
	}
	fc, err := p.Adopt(tc)
	if err != nil {
		return c
	}
	return fc
}

// forwardedValue is the Forwarded header: the client's element appended to
// the prior value.
func forwardedValue(prior, host, client, scheme string) string {
	return string(appendForwarded(nil, prior, host, client, scheme))
}

// appendForwarded appends forwardedValue to dst: the HTTP/1.1 loop writes it
// from a buffer of the connection's, without a string per request.
func appendForwarded(dst []byte, prior, host, client, scheme string) []byte {
	if prior != "" {
		dst = append(append(dst, prior...), ", "...)
	}
	dst = append(dst, "for="...)
	if strings.Contains(client, ":") {
		dst = append(append(append(dst, `"[`...), client...), `]"`...)
	} else {
		dst = append(dst, client...)
	}
	dst = append(append(dst, ";proto="...), scheme...)
	if host != "" {
		dst = append(append(append(dst, `;host="`...), host...), '"')
	}
	return dst
}
