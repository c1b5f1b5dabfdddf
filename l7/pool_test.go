package l7

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func oneLocation(tp *testProxy, b *httptest.Server) Config {
	return tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b)))
}

func TestKeepAliveConnectionsToTheUpstreamAreReused(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	var conns atomic.Int64
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	tp.apply(t, oneLocation(tp, b))
	c := &http.Client{}
	for i := range 50 {
		if resp, body := get(t, c, tp.url("/"), ""); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n > 2 {
		t.Errorf("50 sequential requests opened %d upstream connections, want 1", n)
	}
}

func TestAConnectionTheUpstreamClosedIsRetriedOnANewOne(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	b.Config.IdleTimeout = 50 * time.Millisecond // closes our idle connection
	b.Start()
	t.Cleanup(b.Close)
	cfg := oneLocation(tp, b)
	cfg.VServers[0].Locations[0].Tries = 1 // only the stale-connection retry may save it
	tp.apply(t, cfg)
	for i := range 5 {
		if resp, body := get(t, http.DefaultClient, tp.url("/"), ""); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d after the upstream closed the idle connection: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func TestServerSentEventsAreFlushedAsTheyCome(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	release := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
	}))
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(release) })
	tp.apply(t, oneLocation(tp, b))
	resp, err := http.Get(tp.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Errorf("first event %q", line)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the first event was held back until the stream ended")
	}
}

func TestAClientThatLeavesReleasesTheUpstream(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b, gone := slowUpstream(t)
	tp.apply(t, oneLocation(tp, b))
	c := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := c.Get(tp.url("/slow")); err == nil {
		t.Fatal("the request did not time out at the client")
	}
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream request went on after the client left")
	}
	if n := tp.Stats().Snapshot().VServers["v"].Responses.Status5xx; n != 0 {
		t.Errorf("a client that left was counted as %d upstream errors", n)
	}
}

func TestForwardedValueAppendsTheClientsElement(t *testing.T) {
	for _, c := range []struct{ prior, host, client, scheme, want string }{
		{"", "shop.test", "192.0.2.7", "http", `for=192.0.2.7;proto=http;host="shop.test"`},
		{"for=198.51.100.1", "", "2001:db8::7", "https", `for=198.51.100.1, for="[2001:db8::7]";proto=https`},
	} {
		if got := forwardedValue(c.prior, c.host, c.client, c.scheme); got != c.want {
			t.Errorf("forwardedValue(%q, %q, %q, %q) = %q, want %q", c.prior, c.host, c.client, c.scheme, got, c.want)
		}
	}
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestTheWaitDeadlineMovesOnlyWhenItWouldWakeLateOrFarTooEarly(t *testing.T) {
	dc := &deadlineConn{}
	pc := &pooledConn{Conn: dc}
	now := time.Now()
	for _, c := range []struct {
		name      string
		now, want time.Time
		moved     bool
	}{
		{"first wait", now, now.Add(250 * time.Millisecond), true},
		{"the one set is later than wanted", now, now.Add(100 * time.Millisecond), true},
		{"the one set is 100 of 250 ms away", now, now.Add(250 * time.Millisecond), true},
		{"the one set is 200 of 250 ms away", now.Add(50 * time.Millisecond), now.Add(300 * time.Millisecond), false},
		{"the one set is 125 of 250 ms away", now.Add(125 * time.Millisecond), now.Add(375 * time.Millisecond), false},
		{"the one set has passed", now.Add(time.Second), now.Add(1250 * time.Millisecond), true},
	} {
		before := len(dc.set)
		pc.setWaitDeadline(c.now, c.want)
		if moved := len(dc.set) > before; moved != c.moved {
			t.Fatalf("%s: moved %v, want %v", c.name, moved, c.moved)
		}
		if c.moved && !dc.set[len(dc.set)-1].Equal(c.want) {
			t.Fatalf("%s: set %v, want %v", c.name, dc.set[len(dc.set)-1], c.want)
		}
		if last := dc.set[len(dc.set)-1]; last.After(c.want) {
			t.Fatalf("%s: the deadline in force, %v, is later than wanted", c.name, last.Sub(c.now))
		}
	}
}
