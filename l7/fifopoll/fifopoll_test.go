package fifopoll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// loopback returns the two ends of a TCP connection over loopback, both
// closed when the test ends (closing one twice is harmless).
func loopback(t *testing.T) (accepted, dialled *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a.(*net.TCPConn), d.(*net.TCPConn)
}

// pair returns an adopted connection and its loopback peer.
func pair(t *testing.T, p *Poller) (*Conn, net.Conn) {
	t.Helper()
	c, peer := loopback(t)
	fc, err := p.Adopt(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fc.Close() })
	return fc, peer
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still waiting after %v", what, d)
	}
}

// blockedRead starts a one-byte read of c and gives it a moment to block;
// its error arrives on the channel.
func blockedRead(c *Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	return errc
}

func TestReadWriteEcho(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	if c.LocalAddr().String() != peer.RemoteAddr().String() || c.RemoteAddr().String() != peer.LocalAddr().String() {
		t.Fatalf("addresses %v %v, peer's %v %v", c.LocalAddr(), c.RemoteAddr(), peer.LocalAddr(), peer.RemoteAddr())
	}
	go func() { _, _ = io.Copy(peer, peer) }() // the peer echoes
	msg := []byte("hello over fifopoll")
	within(t, 5*time.Second, "echo", func() {
		if _, err := c.Write(msg); err != nil {
			t.Error(err)
			return
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Errorf("read %q, %v", got, err)
		}
	})
}

// TestAnEndThatCameWithTheDataEndsTheWait: the peer sends a request and
// ends its side before the connection is read. A raw read takes the data
// (a short read: nothing more is there for now) and waits, as the proxy
// waits for a next request; the end came in the same event, so no new one
// will wake it: the wait must return anyway, for the read that sees EOF.
func TestAnEndThatCameWithTheDataEndsTheWait(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	if _, err := peer.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = peer.(*net.TCPConn).CloseWrite()
	time.Sleep(50 * time.Millisecond) // the event (data and end) reaches the poller first
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	within(t, 2*time.Second, "the wait after a short read", func() {
		err = rc.Read(func(fd uintptr) bool {
			buf := make([]byte, 4096)
			n, _ := unix.Read(int(fd), buf)
			got = append(got, n)
			return n <= 0 // data: served, then wait for more
		})
	})
	if err != nil || len(got) != 2 || got[0] != 18 || got[1] != 0 {
		t.Errorf("reads returned %v (%v), want the 18 bytes, then EOF", got, err)
	}
}

// TestWakesInReadyOrder: goroutines waiting on connections run in the
// order their connections became readable. It fails if the poller wakes
// them plainly in order: the scheduler then runs the last woken first.
func TestWakesInReadyOrder(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector shuffles the scheduler's run queue")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := newPoller(t)
	const n = 16
	conns := make([]*Conn, n)
	peers := make([]net.Conn, n)
	for i := range n {
		conns[i], peers[i] = pair(t, p)
	}
	for round := range 3 {
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		var started atomic.Int32
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b [1]byte
				started.Add(1) // with one P, it then runs until Read blocks
				if _, err := c.Read(b[:]); err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			}()
		}
		// Let every reader block, then make the connections readable in a
		// shuffled order; the poller sees them in one batch.
		for deadline := time.Now().Add(5 * time.Second); started.Load() < n && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		want := make([]int, n)
		for k := range n {
			want[k] = (k*7 + round) % n
		}
		for _, i := range want {
			if _, err := peers[i].Write([]byte{1}); err != nil {
				t.Fatal(err)
			}
		}
		within(t, 5*time.Second, "readers", wg.Wait)
		for k := range want {
			if order[k] != want[k] {
				t.Fatalf("round %d: readers ran in order %v, want %v", round, order, want)
			}
		}
	}
}

func TestReadDeadline(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	var b [8]byte

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	within(t, 5*time.Second, "read past its deadline", func() {
		start := time.Now()
		_, err := c.Read(b[:])
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read: %v, want a timeout", err)
		}
		if time.Since(start) < 40*time.Millisecond {
			t.Errorf("timed out after %v, before its deadline", time.Since(start))
		}
	})

	// A deadline in the past fails at once, also for a raw read.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	rc, _ := c.SyscallConn()
	called := false
	if err := rc.Read(func(uintptr) bool { called = true; return true }); !errors.Is(err, os.ErrDeadlineExceeded) || called {
		t.Fatalf("raw read past its deadline: %v, function called: %v", err, called)
	}

	// A deadline moved later is not cut short by the earlier timer; one
	// cleared lets the read wait for data.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	c.SetReadDeadline(time.Now().Add(time.Hour))
	c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		peer.Write([]byte("late"))
	}()
	within(t, 5*time.Second, "read without deadline", func() {
		if n, err := c.Read(b[:]); err != nil || string(b[:n]) != "late" {
			t.Errorf("read %q, %v", b[:n], err)
		}
	})
}

func TestCloseEndsBlockedRead(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	errc := blockedRead(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "blocked read", func() {
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("read: %v, want net.ErrClosed", err)
		}
	})
	// The socket is closed once the read returned: the peer sees the end.
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := peer.Read(b[:]); err != io.EOF {
		t.Fatalf("peer read: %v, want EOF", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if p.Registered() != 0 {
		t.Fatalf("%d connections still registered", p.Registered())
	}
}

func TestShutdownThroughControlEndsRead(t *testing.T) {
	p := newPoller(t)
	c, _ := pair(t, p)
	errc := blockedRead(c)
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	within(t, 5*time.Second, "read of a shut-down socket", func() {
		if err := <-errc; err != io.EOF {
			t.Errorf("read: %v, want EOF", err)
		}
	})
}

func TestWriteWaitsForRoom(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	const size = 16 << 20 // far more than the socket buffers hold
	got := make(chan int64, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer fills the buffers first
		n, _ := io.Copy(io.Discard, peer)
		got <- n
	}()
	within(t, 20*time.Second, "large write", func() {
		if n, err := c.Write(make([]byte, size)); err != nil || n != size {
			t.Errorf("wrote %d, %v", n, err)
		}
		c.CloseWrite()
		if n := <-got; n != size {
			t.Errorf("peer read %d bytes, want %d", n, size)
		}
	})
}

func TestWriteDeadline(t *testing.T) {
	p := newPoller(t)
	c, _ := pair(t, p) // the peer never reads
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	within(t, 5*time.Second, "write to a peer that never reads", func() {
		_, err := c.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write: %v, want a timeout", err)
		}
	})
}

func TestRelease(t *testing.T) {
	p := newPoller(t)
	c, peer := pair(t, p)
	nc, err := c.Release()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := nc.(*net.TCPConn); !ok {
		t.Fatalf("released a %T", nc)
	}
	if p.Registered() != 0 {
		t.Fatalf("%d connections still registered", p.Registered())
	}
	go func() { _, _ = io.Copy(peer, peer) }()
	within(t, 5*time.Second, "echo over the released connection", func() {
		nc.Write([]byte("again"))
		b := make([]byte, 5)
		if _, err := io.ReadFull(nc, b); err != nil || string(b) != "again" {
			t.Errorf("read %q, %v", b, err)
		}
	})
}

func TestPollerCloseEndsWaits(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := pair(t, p)
	errc := blockedRead(c)
	within(t, 5*time.Second, "poller close", func() { p.Close() })
	within(t, 5*time.Second, "read after poller close", func() {
		if err := <-errc; !errors.Is(err, errPollerClosed) {
			t.Errorf("read: %v, want the poller's end", err)
		}
	})
	_, d := loopback(t)
	if _, err := p.Adopt(d); err == nil {
		t.Fatal("adopt after close succeeded")
	}
	if _, err := d.Write([]byte("x")); err != nil {
		t.Fatalf("a connection the closed poller refused was closed: %v", err)
	}
}

func TestAcceptServesConnectionsUntilTheListenerCloses(t *testing.T) {
	p := newPoller(t)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialled []net.Conn
	// Twice on one listener: a second Accept re-registers it.
	for round := range 2 {
		accepted := make(chan *Conn, 8)
		done := make(chan error, 1)
		go func() { done <- p.Accept(ln, func(c *Conn) { accepted <- c }) }()
		for i := range 3 {
			d, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			dialled = append(dialled, d)
			var c *Conn
			select {
			case c = <-accepted:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d, connection %d: not accepted", round, i)
			}
			if c.LocalAddr().String() != d.RemoteAddr().String() || c.RemoteAddr().String() != d.LocalAddr().String() {
				t.Fatalf("accepted %v<-%v, dialled %v->%v", c.LocalAddr(), c.RemoteAddr(), d.LocalAddr(), d.RemoteAddr())
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
			within(t, 5*time.Second, "echo", func() {
				d.Write([]byte("ping"))
				b := make([]byte, 4)
				if _, err := io.ReadFull(d, b); err != nil || string(b) != "ping" {
					t.Errorf("read %q, %v", b, err)
				}
			})
		}
		if round == 0 {
			// The poller's end stops Accept; the listener stays usable.
			p.Close()
			within(t, 5*time.Second, "Accept after the poller closed", func() {
				if err := <-done; !errors.Is(err, errPollerClosed) {
					t.Errorf("Accept: %v", err)
				}
			})
			p = newPoller(t)
			continue
		}
		ln.Close()
		within(t, 5*time.Second, "Accept after the listener closed", func() {
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept: %v, want net.ErrClosed", err)
			}
		})
	}
	// The echoes end with their clients, and nothing stays registered.
	for _, d := range dialled {
		d.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); p.Registered() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := p.Registered(); n != 0 {
		t.Fatalf("%d descriptors still registered", n)
	}
}

// TestAcceptedAddressesReadAsGoListenersGiveThem: IPv6, and IPv4 clients
// of a dual-stack listener, get the addresses Go's own Accept gives (the
// proxy finds its endpoint and writes X-Forwarded-For from them).
func TestAcceptedAddressesReadAsGoListenersGiveThem(t *testing.T) {
	for _, c := range []struct{ listen, dial string }{
		{"[::1]:0", "[::1]"},
		{"[::]:0", "127.0.0.1"},
	} {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			t.Fatalf("listen %s: %v", c.listen, err)
		}
		// Go's own accept first, then fifopoll's, of two dials from one host.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		d1, err := net.Dial("tcp", net.JoinHostPort(strings.Trim(c.dial, "[]"), port))
		if err != nil {
			t.Fatal(err)
		}
		goConn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		p := newPoller(t)
		accepted := make(chan *Conn, 1)
		go p.Accept(ln.(*net.TCPListener), func(fc *Conn) { accepted <- fc })
		d2, err := net.Dial("tcp", net.JoinHostPort(strings.Trim(c.dial, "[]"), port))
		if err != nil {
			t.Fatal(err)
		}
		var fc *Conn
		select {
		case fc = <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not accepted", c.listen)
		}
		if fc.LocalAddr().String() != goConn.LocalAddr().String() {
			t.Errorf("%s: local %v, Go's accept gives %v", c.listen, fc.LocalAddr(), goConn.LocalAddr())
		}
		goHost, _, _ := net.SplitHostPort(goConn.RemoteAddr().String())
		if want := net.JoinHostPort(goHost, fmt.Sprint(d2.LocalAddr().(*net.TCPAddr).Port)); fc.RemoteAddr().String() != want {
			t.Errorf("%s: remote %v, want %v", c.listen, fc.RemoteAddr(), want)
		}
		fc.Close()
		goConn.Close()
		d1.Close()
		d2.Close()
		ln.Close()
	}
}
