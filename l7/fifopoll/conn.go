package fifopoll

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a TCP connection whose waits go through a Poller. It is safe for
// concurrent use as net.Conn requires; like a net.Conn's, its reads (and
// its writes) are meant for one goroutine at a time.
type Conn struct {
	p      *Poller
	fd     int
	slot   int32
	gen    uint32
	rd, wr side
	laddr  net.Addr
	raddr  net.Addr

	// state counts the operations using fd (in fours) and says whether
	// Close was called (closing) and fd closed (fdClosed): the descriptor
	// is closed only once no operation uses it, so that a number reused
	// by the next accept is never read by an operation of this Conn.
	state   atomic.Int64
	stopped atomic.Bool // the Poller was closed
}

const (
	closing  = 1
	fdClosed = 2
	oneRef   = 4
)

// side is one direction's readiness and deadline.
type side struct {
	ready chan struct{} // one token: became ready since the last wait
	// hup: the peer ended its side (reads) or the socket failed, so a call
	// never blocks again and a wait returns at once. A token is an edge,
	// consumed once; this is a level, which a call that read data and the
	// end in one event (a short read, then nothing more to wake it) needs.
	hup      atomic.Bool
	deadline atomic.Int64 // unix nanoseconds; 0: none
	expired  atomic.Bool
	mu       sync.Mutex // guards timer
	timer    *time.Timer
}

func (s *side) wake() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// setDeadline arms the side's timer for t (zero: none). A deadline in the
// past expires at once, as net.Conn's do.
func (s *side) setDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.IsZero() {
		s.deadline.Store(0)
		s.expired.Store(false)
		if s.timer != nil {
			s.timer.Stop()
		}
		return
	}
	s.deadline.Store(t.UnixNano())
	d := time.Until(t)
	if d <= 0 {
		s.expired.Store(true)
		s.wake()
		return
	}
	s.expired.Store(false)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.fire)
	} else {
		s.timer.Reset(d)
	}
}

// fire ends a wait at the deadline, unless the deadline moved since the
// timer was set.
func (s *side) fire() {
	if dl := s.deadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		s.expired.Store(true)
		s.wake()
	}
}

func (s *side) stop() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

// Dup returns a close-on-exec duplicate of c's descriptor. Unlike the
// net package's File, nothing it does sets the socket, whose mode all its
// descriptors share, to blocking.
func Dup(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("fcntl", dupErr)
	}
	return fd, nil
}

// Adopt takes c out of Go's poller into p: the returned Conn holds a
// duplicate of c's socket and c is closed. The socket stays open and
// non-blocking.
func (p *Poller) Adopt(c *net.TCPConn) (*Conn, error) {
	fd, err := Dup(c)
	if err != nil {
		return nil, err
	}
	conn := newConn(p, fd, c.LocalAddr(), c.RemoteAddr())
	if err := p.register(conn); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c.Close() // leaves Go's poller; the duplicate keeps the socket
	return conn, nil
}

func newConn(p *Poller, fd int, laddr, raddr net.Addr) *Conn {
	c := &Conn{p: p, fd: fd, laddr: laddr, raddr: raddr}
	c.rd.ready = make(chan struct{}, 1)
	c.wr.ready = make(chan struct{}, 1)
	return c
}

// Release gives the connection back to Go's poller as a *net.TCPConn,
// for code that wants one (net/http after a hand-over, splice), and
// closes c.
func (c *Conn) Release() (net.Conn, error) {
	if !c.incref() {
		return nil, c.opError("release", net.ErrClosed)
	}
	fd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	c.decref()
	c.Close()
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	return net.FileConn(f) // a duplicate of its own, in Go's poller
}

func (c *Conn) incref() bool {
	if c.state.Add(oneRef)&closing != 0 {
		c.decref()
		return false
	}
	return true
}

func (c *Conn) decref() {
	if c.state.Add(-oneRef) == closing && c.state.CompareAndSwap(closing, closing|fdClosed) {
		unix.Close(c.fd)
	}
}

// wait waits until s may be ready, its deadline passes or c is closed.
func (c *Conn) wait(s *side) error {
	if err := c.waitErr(s); err != nil || s.hup.Load() {
		return err
	}
	<-s.ready
	return c.waitErr(s)
}

func (c *Conn) waitErr(s *side) error {
	switch {
	case c.state.Load()&closing != 0:
		return net.ErrClosed
	case c.stopped.Load():
		return errPollerClosed
	case s.expired.Load():
		return os.ErrDeadlineExceeded
	}
	return nil
}

var errPollerClosed = errors.New("fifopoll: poller closed")

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read reads like net.Conn's Read.
func (c *Conn) Read(b []byte) (int, error) {
	if !c.incref() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.decref()
	if len(b) == 0 {
		return 0, nil
	}
	if err := c.waitErr(&c.rd); err != nil {
		return 0, c.opError("read", err)
	}
	for {
		n, err := ReadFD(c.fd, b)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := c.wait(&c.rd); err != nil {
				return 0, c.opError("read", err)
			}
		default:
			return 0, c.opError("read", os.NewSyscallError("read", err))
		}
	}
}

// Write writes all of b like net.Conn's Write.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.incref() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.decref()
	if err := c.waitErr(&c.wr); err != nil {
		return 0, c.opError("write", err)
	}
	done := 0
	for done < len(b) {
		n, err := sysWrite(c.fd, b[done:])
		switch {
		case err == nil:
			done += n
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if err := c.wait(&c.wr); err != nil {
				return done, c.opError("write", err)
			}
		default:
			return done, c.opError("write", os.NewSyscallError("write", err))
		}
	}
	return done, nil
}

// Close closes the connection; operations in progress end with
// net.ErrClosed and the socket is closed when the last of them returns.
func (c *Conn) Close() error {
	for {
		v := c.state.Load()
		if v&closing != 0 {
			return c.opError("close", net.ErrClosed)
		}
		if c.state.CompareAndSwap(v, v|closing) {
			break
		}
	}
	c.p.unregister(c, true)
	c.rd.stop()
	c.wr.stop()
	c.rd.wake()
	c.wr.wake()
	if c.state.CompareAndSwap(closing, closing|fdClosed) {
		unix.Close(c.fd)
	}
	return nil
}

// CloseWrite shuts down the writing side, as *net.TCPConn's.
func (c *Conn) CloseWrite() error {
	if !c.incref() {
		return c.opError("close", net.ErrClosed)
	}
	defer c.decref()
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		return c.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

func (c *Conn) LocalAddr() net.Addr  { return c.laddr }
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.setDeadline(t)
	c.wr.setDeadline(t)
	return nil
}

func (c *Conn) SetReadDeadline(t time.Time) error  { c.rd.setDeadline(t); return nil }
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wr.setDeadline(t); return nil }

// SyscallConn gives raw access to the socket: its Read and Write wait
// through the Poller, with the connection's deadlines.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return rawConn{c}, nil }

type rawConn struct{ c *Conn }

func (r rawConn) Control(f func(fd uintptr)) error {
	if !r.c.incref() {
		return net.ErrClosed
	}
	defer r.c.decref()
	f(uintptr(r.c.fd))
	return nil
}

func (r rawConn) Read(f func(fd uintptr) bool) error  { return r.c.raw(&r.c.rd, f) }
func (r rawConn) Write(f func(fd uintptr) bool) error { return r.c.raw(&r.c.wr, f) }

// raw calls f until it returns true, waiting for s between calls, as a
// RawConn's Read and Write do. Readiness seen before the call is
// forgotten, as Go's poller forgets it: f is called first anyway.
func (c *Conn) raw(s *side, f func(fd uintptr) bool) error {
	if !c.incref() {
		return net.ErrClosed
	}
	defer c.decref()
	if err := c.waitErr(s); err != nil {
		return err
	}
	select {
	case <-s.ready:
	default:
	}
	for !f(uintptr(c.fd)) {
		if err := c.wait(s); err != nil {
			return err
		}
	}
	return nil
}

// Accept accepts connections from ln until it is closed, each straight
// into p (no detour through Go's poller, and no TCP keep-alive probes, as
// nginx's defaults), and calls handle with each, on the accepting
// goroutine. Like net/http, it waits a moment and goes on when the process
// is out of descriptors or memory.
//
// ln's own descriptor waits in p, and accept(2) runs inside ln's
// RawConn.Control, which keeps the descriptor open while it runs. (A
// listener's RawConn cannot wait for readability itself.) The kernel drops
// the descriptor from p when ln closes it, silently: Accept looks at ln
// every listenerCheck to notice.
func (p *Poller) Accept(ln *net.TCPListener, handle func(*Conn)) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	lc := newConn(p, -1, ln.Addr(), nil)
	var regErr error
	if err := rc.Control(func(fd uintptr) { lc.fd = int(fd); regErr = p.register(lc) }); err != nil {
		return err
	}
	if regErr != nil {
		return regErr
	}
	// Never removed by number: once ln is closed, the number may be
	// another connection's.
	defer p.unregister(lc, false)
	defer lc.rd.stop()
	laddr := ln.Addr()
	var acceptErr error
	accept := func(lfd uintptr) {
		for {
			fd, sa, err := unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch err {
			case nil:
			case unix.EAGAIN:
				return
			case unix.EINTR, unix.ECONNABORTED:
				continue
			default:
				acceptErr = os.NewSyscallError("accept4", err)
				return
			}
			c, err := p.newConn(fd, sa, laddr)
			if err != nil {
				unix.Close(fd)
				acceptErr = err
				return
			}
			handle(c)
		}
	}
	for {
		acceptErr = nil
		if err := rc.Control(accept); err != nil {
			return err // ln closed
		}
		switch {
		case errors.Is(acceptErr, unix.EMFILE), errors.Is(acceptErr, unix.ENFILE),
			errors.Is(acceptErr, unix.ENOBUFS), errors.Is(acceptErr, unix.ENOMEM):
			time.Sleep(5 * time.Millisecond)
			continue
		case acceptErr != nil:
			return acceptErr
		}
		lc.rd.setDeadline(time.Now().Add(listenerCheck))
		if err := lc.wait(&lc.rd); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err // p closed
		}
	}
}

// listenerCheck is how often Accept looks whether its listener was closed.
const listenerCheck = 250 * time.Millisecond

// newConn registers an accepted socket: Nagle off, as Go's accepted
// connections have it, and the address it was accepted on (with
// sk_lookup, the VIP and port the client connected to, not ln's).
func (p *Poller) newConn(fd int, sa unix.Sockaddr, lnAddr net.Addr) (*Conn, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	lsa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	laddr := tcpAddr(lsa)
	if laddr == nil {
		laddr = lnAddr
	}
	c := newConn(p, fd, laddr, tcpAddr(sa))
	if err := p.register(c); err != nil {
		return nil, err
	}
	return c, nil
}

func tcpAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip := make(net.IP, net.IPv4len)
		copy(ip, a.Addr[:])
		return &net.TCPAddr{IP: ip, Port: a.Port}
	case *unix.SockaddrInet6:
		ip := make(net.IP, net.IPv6len)
		copy(ip, a.Addr[:])
		var zone string
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return &net.TCPAddr{IP: ip, Port: a.Port, Zone: zone}
	}
	return nil
}
