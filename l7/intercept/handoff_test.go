package intercept_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l7/intercept"
)

// A daemon upgraded in place: the successor takes over the listeners and
// the routes, the predecessor hands off, and no endpoint is dark at any
// moment: a connection that arrives while neither accepts waits in the
// listener's queue and is served by the successor.
func TestHandoffKeepsEveryEndpointSteeredThroughTheSuccessor(t *testing.T) {
	l := newLab(t)
	old := newInterceptor(t, l)
	p := serve(t, old)
	mustAdd(t, old, "10.77.100.1:80", "10.77.100.2:0", "[fd77:100::1]:80", "10.77.100.9:80")
	l.expectSteered(t, "10.77.100.1:80", 0)

	files, err := old.ListenerFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Fd() // as exec does: it must not make the shared socket blocking
	}
	for _, ln := range old.Listeners() {
		if !nonblocking(t, ln.(*net.TCPListener)) {
			t.Errorf("listener %s is blocking after its files were passed on: its accept loop would hang", ln.Addr())
		}
	}
	var lns []*net.TCPListener
	for _, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln.(*net.TCPListener))
	}
	var next *intercept.Interceptor
	in(t, l.proxy, func() { next, err = intercept.New(intercept.Options{Inherit: lns}) })
	if err != nil {
		t.Fatalf("successor: %v", err)
	}
	t.Cleanup(func() { next.Close() })
	// Every route survived the successor's start, 10.77.100.9 too: the
	// predecessor still serves it.
	want := []string{"10.77.100.1/32", "10.77.100.2/32", "10.77.100.9/32", "fd77:100::1/128"}
	if got := l.ourRoutes(t); !slices.Equal(got, want) {
		t.Fatalf("routes after the successor's start %v, want %v", got, want)
	}
	mustAdd(t, next, "10.77.100.1:80", "10.77.100.2:0", "[fd77:100::1]:80")
	if err := old.Handoff(); err != nil {
		t.Fatalf("handoff: %v", err)
	}
	p.wg.Wait() // the predecessor's accept loops ended
	if n := l.attached(t); n != 1 {
		t.Errorf("%d sk_lookup programs attached after the handoff, want the successor's", n)
	}

	// Nobody accepts now: the connection waits in the queue.
	queued := make(chan string, 1)
	go func() {
		got, err := l.dial(t, "10.77.100.2:22")
		if err != nil {
			got = err.Error()
		}
		queued <- got
	}()
	time.Sleep(200 * time.Millisecond)
	p2 := serve(t, next)
	select {
	case got := <-queued:
		if w := "listener=0 local=10.77.100.2:22 got=hello 10.77.100.2:22\n"; got != w {
			t.Errorf("the queued connection got %q, want %q", got, w)
		}
	case <-time.After(5 * time.Second):
		t.Error("the queued connection was not served")
	}
	l.expectSteered(t, "10.77.100.1:80", 0)
	l.expectSteered(t, "[fd77:100::1]:80", 1)

	// What the successor does not serve goes once it says so.
	if err := next.DropStale(); err != nil {
		t.Fatal(err)
	}
	want = []string{"10.77.100.1/32", "10.77.100.2/32", "fd77:100::1/128"}
	if got := l.ourRoutes(t); !slices.Equal(got, want) {
		t.Errorf("routes after DropStale %v, want %v", got, want)
	}
	l.expectNotReached(t, "10.77.100.9:80")
	if err := next.Close(); err != nil {
		t.Fatal(err)
	}
	p2.wg.Wait()
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("routes %v left after the successor's Close", got)
	}
	if _, err := old.ListenerFiles(); err == nil {
		t.Error("ListenerFiles after Handoff: no error")
	}
}

func nonblocking(t *testing.T, ln *net.TCPListener) bool {
	t.Helper()
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var flErr error
	if err := rc.Control(func(fd uintptr) { flags, flErr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || flErr != nil {
		t.Fatal(err, flErr)
	}
	return flags&unix.O_NONBLOCK != 0
}

// A successor refuses listeners it cannot use.
func TestInheritWantsAnIPv4Listener(t *testing.T) {
	l := newLab(t)
	var ln net.Listener
	var err error
	in(t, l.proxy, func() { ln, err = net.Listen("tcp6", "[::1]:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in(t, l.proxy, func() {
		_, err = intercept.New(intercept.Options{Inherit: []*net.TCPListener{ln.(*net.TCPListener)}})
	})
	if err == nil {
		t.Fatal("New with only an IPv6 listener to inherit: no error")
	}
}

// A daemon that runs without the proxy removes the routes an interceptor
// before it left (killed, or handed off to it), and only those.
func TestRemoveStaleRoutesRemovesWhatAnInterceptorLeft(t *testing.T) {
	l := newLab(t)
	old := newInterceptor(t, l)
	mustAdd(t, old, "10.77.100.1:80", "[fd77:100::1]:80")
	if err := old.Handoff(); err != nil {
		t.Fatal(err)
	}
	if got := l.ourRoutes(t); len(got) != 2 {
		t.Fatalf("routes after the handoff %v, want the two left behind", got)
	}
	var removed []netip.Addr
	var err error
	in(t, l.proxy, func() { removed, err = intercept.RemoveStaleRoutes(intercept.Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(removed, netip.Addr.Compare)
	if want := []netip.Addr{netip.MustParseAddr("10.77.100.1"), netip.MustParseAddr("fd77:100::1")}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if got := l.ourRoutes(t); len(got) != 0 {
		t.Errorf("routes %v left", got)
	}
	l.expectNotReached(t, "10.77.100.1:80")
}
