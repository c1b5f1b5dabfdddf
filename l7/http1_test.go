package l7

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicelb/sluice/l7/accesslog"
	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
)

// rawClient speaks HTTP/1.x over one connection to tp, byte for byte.
type rawClient struct {
	t       *testing.T
	c       net.Conn
	counted countedConn // c, for send and br
	br      *bufio.Reader
	wc      wireCount
}

func newRawClient(t *testing.T, c net.Conn) *rawClient {
	rc := &rawClient{t: t, c: c}
	rc.counted = countedConn{Conn: c, wc: &rc.wc}
	rc.br = bufio.NewReader(rc.counted)
	return rc
}

// sent and received are the bytes the client wrote and read (of what its
// buffer took in).
func (rc *rawClient) sent() uint64     { return uint64(rc.wc.written.Load()) }
func (rc *rawClient) received() uint64 { return uint64(rc.wc.read.Load()) - uint64(rc.br.Buffered()) }

func dialRaw(t *testing.T, tp *testProxy) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", tp.addr.String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return newRawClient(t, c)
}

// dialRawTLS is dialRaw over TLS, offering HTTP/1.1 only.
func dialRawTLS(t *testing.T, tp *testProxy) *rawClient {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", tp.addr.String(),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return newRawClient(t, c)
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.counted, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request with method.
func (rc *rawClient) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the proxy closed the connection.
func (rc *rawClient) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

// rawBackend answers every request on a connection with the response fn
// returns, written as it is; it records the request heads it saw.
func rawBackend(t *testing.T, fn func(head string) string) (addr string, heads chan string) {
	t.Helper()
	addr, heads, _ = countedRawBackend(t, fn)
	return addr, heads
}

// countedRawBackend is rawBackend, with the bytes its connections carry counted.
func countedRawBackend(t *testing.T, fn func(head string) string) (addr string, heads chan string, wc *wireCount) {
	t.Helper()
	heads, wc = make(chan string, 100), &wireCount{}
	addr = serveConns(t, func(c net.Conn) {
		c = countedConn{Conn: c, wc: wc}
		br := bufio.NewReader(c)
		for {
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				head.WriteString(line)
				if line == "\r\n" {
					break
				}
			}
			select {
			case heads <- head.String():
			default:
			}
			resp := fn(head.String())
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
			if strings.Contains(resp, "Connection: close") || strings.HasPrefix(resp, "HTTP/1.0") {
				return
			}
		}
	})
	return addr, heads, wc
}

// serveConns listens on a loopback port until the test ends and runs
// handle on each connection it accepts, which it then closes.
func serveConns(t testing.TB, handle func(c net.Conn)) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func rawProxy(t *testing.T, fn func(head string) string) (*testProxy, chan string) {
	t.Helper()
	tp := newTestProxy(t, Limits{})
	addr, heads := rawBackend(t, fn)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", addr)))
	return tp, heads
}

func TestPipelinedRequestsAreAnsweredInOrder(t *testing.T) {
	tp, _ := rawProxy(t, func(head string) string {
		path := strings.Fields(head)[1]
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(path), path)
	})
	rc := dialRaw(t, tp)
	rc.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/one", "/two", "/three"} {
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
		}
	}
}

func TestAConnectionMovesToNetHTTPAtTheFirstRequestTheLoopLeavesToIt(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	tp.apply(t, oneLocation(tp, b))
	rc := dialRaw(t, tp)
	// Served by the loop, then a percent-encoded path (net/http from here
	// on), then a plain request again, all on one connection.
	rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "b 0" {
		t.Fatalf("first request: %d %q", resp.StatusCode, body)
	}
	rc.send("GET /b%41 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "b 0" || resp.Close {
		t.Fatalf("request with a percent-encoded path: %d %q, close %v", resp.StatusCode, body, resp.Close)
	}
	rc.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "b 0" {
		t.Fatalf("after the hand-over: %d %q", resp.StatusCode, body)
	}
	// A chunked body is served there too, and ends the connection: net/http
	// cannot tell whether a Content-Length came with it (RFC 9112 6.1).
	rc.send("POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "b 5" || !resp.Close {
		t.Fatalf("request with a chunked body: %d %q, close %v", resp.StatusCode, body, resp.Close)
	}
}

func TestRequestsTheLoopDoesNotParseAreServedOrRefusedByNetHTTP(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	tp.apply(t, oneLocation(tp, b))
	for _, c := range []struct {
		name, req string
		status    int
		path      string
	}{
		{"HTTP/1.0", "GET /h10 HTTP/1.0\r\nHost: x\r\n\r\n", 200, "/h10"},
		{"bare LF", "GET /lf HTTP/1.1\nHost: x\n\n", 200, "/lf"},
		{"percent-encoded path", "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/a/b"},
		{"a query net/http cannot parse, passed as it came", "GET /q%2F?a%1;b HTTP/1.1\r\nHost: x\r\n\r\n", 200, "/q/?a%1;b"},
		{"a transfer coding but chunked", "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501, ""},
		{"an expectation but 100-continue", "GET /x HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417, ""},
		{"a head larger than the loop's buffer", "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", 200, "/big"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, ""},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
		{"a space in a header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, tp)
			rc.send(c.req)
			resp, _ := rc.read("GET")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			path, query, _ := strings.Cut(c.path, "?")
			if c.path != "" && (resp.Header.Get("X-Seen-Path") != path || resp.Header.Get("X-Seen-Query") != query) {
				t.Errorf("the backend saw path %q, query %q, want %q", resp.Header.Get("X-Seen-Path"), resp.Header.Get("X-Seen-Query"), c.path)
			}
		})
	}
}

func TestChunkedAnswersAndTrailersAreRelayed(t *testing.T) {
	const answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n"
	tp := newTestProxy(t, Limits{})
	addr, _, upstreamWire := countedRawBackend(t, func(string) string { return answer })
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", addr)))
	rc := dialRaw(t, tp)
	for range 2 { // and the connection stays usable
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.read("GET")
		if body != "hello, world" || resp.Trailer.Get("X-Sum") != "12" {
			t.Fatalf("body %q, trailer %q", body, resp.Trailer.Get("X-Sum"))
		}
	}
	// The counters have the bytes on the wire, heads and chunk framing
	// with the data, on both sides of the proxy.
	vs := func() stats.Totals { return tp.Stats().Snapshot().VServers["v"] }
	if out := settled(func() uint64 { return vs().BytesOut }, rc.received()); out != rc.received() || vs().BytesIn != rc.sent() {
		t.Errorf("the virtual server counted %d bytes in, %d out; the client sent %d, received %d",
			vs().BytesIn, out, rc.sent(), rc.received())
	}
	srv := tp.Stats().Snapshot().Upstreams["u"].Servers[addr]
	if srv.BytesIn != uint64(upstreamWire.read.Load()) || srv.BytesOut != uint64(2*len(answer)) {
		t.Errorf("the upstream server counted %d bytes in, %d out; it read %d, sent %d",
			srv.BytesIn, srv.BytesOut, upstreamWire.read.Load(), 2*len(answer))
	}
}

func TestAnAnswerWithoutLengthEndsWithTheConnection(t *testing.T) {
	tp, _ := rawProxy(t, func(string) string {
		return "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end" // then the backend closes
	})
	rc := dialRaw(t, tp)
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.read("GET")
	if body != "until the end" || !resp.Close {
		t.Fatalf("body %q, close %v", body, resp.Close)
	}
	if !rc.closed() {
		t.Error("the proxy kept a connection whose answer only its end delimits")
	}
}

func TestAnswersWithoutBodiesKeepTheConnection(t *testing.T) {
	tp, _ := rawProxy(t, func(head string) string {
		switch {
		case strings.HasPrefix(head, "HEAD"):
			return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
		case strings.Contains(head, "/204"):
			return "HTTP/1.1 204 No Content\r\n\r\n"
		case strings.Contains(head, "/early"):
			return "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
	})
	rc := dialRaw(t, tp)
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{{"HEAD", "/", 200, ""}, {"GET", "/204", 204, ""}, {"GET", "/304", 304, ""}, {"GET", "/early", 200, "ok"}, {"GET", "/204", 204, ""}} {
		rc.send(c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.read(c.method)
		if resp.StatusCode != c.status || body != c.body {
			t.Fatalf("%s %s: %d %q", c.method, c.path, resp.StatusCode, body)
		}
	}
}

func TestConnectionHeadersAreHonouredAndStrippedBothWays(t *testing.T) {
	tp, heads := rawProxy(t, func(string) string {
		return "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok"
	})
	rc := dialRaw(t, tp)
	rc.send("GET /p?q=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: X-Foo, close\r\nX-Foo: hop\r\nTE: trailers\r\n" +
		"X-Forwarded-For: 192.0.2.7\r\nUser-Agent: t\r\n\r\n")
	resp, body := rc.read("GET")
	if body != "ok" || resp.Header.Get("X-Internal") != "" || resp.Header.Get("Keep-Alive") != "" || !resp.Close {
		t.Fatalf("body %q, headers %v, close %v", body, resp.Header, resp.Close)
	}
	if !rc.closed() {
		t.Error("Connection: close from the client left the connection open")
	}
	head := <-heads
	for _, want := range []string{"GET /p?q=1 HTTP/1.1\r\n", "Host: shop.test\r\n", "User-Agent: t\r\n",
		"X-Forwarded-For: 192.0.2.7, 127.0.0.1\r\n", "X-Forwarded-Proto: http\r\n", "X-Forwarded-Host: shop.test\r\n",
		"Forwarded: for=127.0.0.1;proto=http;host=\"shop.test\"\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("the upstream request lacks %q:\n%s", want, head)
		}
	}
	for _, gone := range []string{"X-Foo", "TE:", "Connection"} {
		if strings.Contains(head, gone) {
			t.Errorf("the upstream request has %q:\n%s", gone, head)
		}
	}
}

// TestAMalformedUpstreamAnswerIs502: two lengths that disagree, and an
// HTTP/1.0 answer with Transfer-Encoding, whose framing RFC 9112 6.1 calls
// faulty.
func TestAMalformedUpstreamAnswerIs502(t *testing.T) {
	answers := map[string]string{
		"/lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"/h10te":   "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	}
	tp, _ := rawProxy(t, func(head string) string {
		path := strings.Fields(head)[1]
		return answers[path]
	})
	for path := range answers {
		rc := dialRaw(t, tp)
		rc.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.read("GET"); resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: status %d %q, want 502", path, resp.StatusCode, body)
		}
	}
	if n := settled(func() uint64 { return tp.Stats().Snapshot().VServers["v"].Responses.Status5xx }, 2); n != 2 {
		t.Errorf("counted %d 5xx answers, want 2", n)
	}
}

// TestUpstreamHeadsWithBareLFAndFoldsAreRelayedCanonically: an upstream
// that ends its lines in a bare LF (heads and chunk lines) or folds a header
// (obs-fold) is answered, as nginx does, the folded value joined by one
// space (RFC 9112 5.2) and every line CRLF-ended; a fold of the status
// line, of Content-Length or of Transfer-Encoding, and a bad head, are
// 502s, and the client's connection stays usable; a chunk whose data runs
// past its size cuts the answer off.
func TestUpstreamHeadsWithBareLFAndFoldsAreRelayedCanonically(t *testing.T) {
	answers := map[string]string{
		"/lf":        "HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok",
		"/mixed":     "HTTP/1.1 200 OK\nX-A: 1\r\nContent-Length: 2\n\r\nok",
		"/fold":      "HTTP/1.1 200 OK\r\nX-A: 1\r\n  and more\r\n\tand the rest\r\nContent-Length: 2\r\n\r\nok",
		"/lf-fold":   "HTTP/1.1 200 OK\nX-A: 1\n and more\nContent-Length: 2\n\nok",
		"/badfold":   "HTTP/1.1 200 OK\r\n X-A: 1\r\nContent-Length: 2\r\n\r\nok", // a fold of the status line
		"/lf-twice":  "HTTP/1.1 200 OK\nContent-Length: 2\nContent-Length: 3\n\nok",
		"/lf-chunks": "HTTP/1.1 200 OK\nX-A: 1\nTransfer-Encoding: chunked\nTrailer: X-T\n\n1\no\n1;e=1\r\nk\n0\nX-T: t\n\n",
		"/overrun":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
		"/fold-te":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n \r\n\r\n2\r\nok\r\n0\r\n\r\n", // framing is not folded
		"/fold-cl":   "HTTP/1.1 200 OK\nContent-Length:\n 2\n\nok",
	}
	want := map[string]struct {
		status int
		xa     string
	}{
		"/lf": {200, "1"}, "/mixed": {200, "1"}, "/fold": {200, "1 and more and the rest"}, "/lf-fold": {200, "1 and more"},
		"/badfold": {502, ""}, "/lf-twice": {502, ""}, "/lf-chunks": {200, "1"}, "/fold-te": {502, ""}, "/fold-cl": {502, ""},
	}
	tp, _ := rawProxy(t, func(head string) string {
		path := strings.Fields(head)[1]
		return answers[path]
	})
	rc := dialRaw(t, tp)
	var raw bytes.Buffer // what the client got, byte for byte
	rc.br = bufio.NewReader(io.TeeReader(rc.c, &raw))
	for _, path := range []string{"/lf", "/mixed", "/fold", "/lf-fold", "/badfold", "/lf", "/lf-twice", "/lf-chunks", "/fold-te", "/fold-cl", "/lf"} {
		rc.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.read("GET")
		w := want[path]
		if resp.StatusCode != w.status {
			t.Fatalf("%s: status %d, want %d", path, resp.StatusCode, w.status)
		}
		if w.status == 200 && (resp.Header.Get("X-A") != w.xa || body != "ok") {
			t.Fatalf("%s: X-A %q body %q, want %q %q", path, resp.Header.Get("X-A"), body, w.xa, "ok")
		}
		if path == "/lf-chunks" && resp.Trailer.Get("X-T") != "t" {
			t.Fatalf("%s: trailer %q", path, resp.Trailer.Get("X-T"))
		}
	}
	// Every line the client got ends in CRLF (the 502s' text bodies aside).
	got := bytes.ReplaceAll(raw.Bytes(), []byte("Bad Gateway\n"), nil)
	for i, b := range got {
		if b == '\n' && (i == 0 || got[i-1] != '\r') {
			t.Fatalf("the client got a bare LF at byte %d:\n%q", i, got)
		}
	}
	rc.send("GET /overrun HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
	}
	if err == nil {
		t.Fatal("a chunk that ran past its size was relayed whole")
	}
}

// settled returns what read returns once it is want, or after two seconds:
// the counters are updated just after the answer is out.
func settled(read func() uint64, want uint64) uint64 {
	v := read()
	for deadline := time.Now().Add(2 * time.Second); v != want && time.Now().Before(deadline); v = read() {
		time.Sleep(10 * time.Millisecond)
	}
	return v
}

// shutdownWithin starts tp.Shutdown with a context of d; its result
// arrives on the channel.
func shutdownWithin(tp *testProxy, d time.Duration) <-chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		shut <- tp.Shutdown(ctx)
	}()
	return shut
}

func TestShutdownWaitsForARequestInFlight(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	release := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, "done")
	}))
	t.Cleanup(b.Close)
	tp.apply(t, oneLocation(tp, b))
	idle := dialRaw(t, tp)
	idle.send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := idle.read("GET"); body != "done" {
		t.Fatalf("answer %q", body)
	}
	busy := dialRaw(t, tp)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	shut := shutdownWithin(tp, 5*time.Second)
	if !idle.closed() {
		t.Error("an idle connection stayed open after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if resp, body := busy.read("GET"); resp.StatusCode != 200 || body != "done" {
		t.Fatalf("the request in flight got %d %q", resp.StatusCode, body)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// When Shutdown's time is up, the requests still in flight are cut off:
// Shutdown returns, and their clients see the connection end, even though
// the upstream has not answered.
func TestShutdownPastItsDeadlineCutsOffARequestInFlight(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	release := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(release) }) // before b.Close, which waits for the handler
	tp.apply(t, oneLocation(tp, b))
	busy := dialRaw(t, tp)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	shut := shutdownWithin(tp, 200*time.Millisecond)
	select {
	case err := <-shut:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want the deadline", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown still waiting 3 s after its deadline of 200 ms")
	}
	if !busy.closed() {
		t.Error("the connection of the request in flight is open")
	}
}

func TestRequestBodiesAreForwardedAndTheConnectionStaysUsable(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b, upstreamWire := countedBackend(t, "b")
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "l", Path: "/up", Upstream: "u"}}}}, pool("u", hostPort(b))))
	rc := dialRaw(t, tp)
	big := 4 << 20 // far more than the connection's buffer: streamed
	for _, c := range []struct {
		name string
		size int
		path string
		want string
	}{
		{"small", 5, "/up", "b 5"}, {"large", big, "/up", fmt.Sprintf("b %d", big)},
		{"small to no location", 7, "/none", "no location for this path\n"}, {"empty", 0, "/up", "b 0"},
	} {
		rc.send(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", c.path, c.size))
		rc.send(strings.Repeat("z", c.size))
		if resp, body := rc.read("POST"); body != c.want || resp.Close {
			t.Fatalf("%s body: %d %q (close %v), want %q", c.name, resp.StatusCode, body, resp.Close, c.want)
		}
	}
	rc.send("GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := rc.read("GET"); body != "b 0" {
		t.Fatalf("after the bodies: %q", body)
	}
	// Every request went to the virtual server, heads and bodies; the
	// upstream server got those sent to its location, not the one to none.
	vs := func() stats.Totals { return tp.Stats().Snapshot().VServers["v"] }
	if in := settled(func() uint64 { return vs().BytesIn }, rc.sent()); in != rc.sent() || vs().BytesOut != rc.received() {
		t.Errorf("the virtual server counted %d bytes in, %d out; the client sent %d, received %d", in, vs().BytesOut, rc.sent(), rc.received())
	}
	srv := tp.Stats().Snapshot().Upstreams["u"].Servers[hostPort(b)]
	if srv.BytesIn != uint64(upstreamWire.read.Load()) || srv.BytesOut != uint64(upstreamWire.written.Load()) {
		t.Errorf("the upstream server counted %d bytes in, %d out; it read %d, sent %d",
			srv.BytesIn, srv.BytesOut, upstreamWire.read.Load(), upstreamWire.written.Load())
	}
	if srv.BytesIn < uint64(5+big) || srv.BytesIn >= uint64(5+big)+4<<10 {
		t.Errorf("the upstream server counted %d bytes in: not the %d of the bodies sent to it and their heads", srv.BytesIn, 5+big)
	}

	// A large body nobody takes: the answer closes the connection, since
	// the rest of the body is still on its way.
	rc2 := dialRaw(t, tp)
	rc2.send(fmt.Sprintf("POST /none HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", big))
	if resp, _ := rc2.read("POST"); resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("large body to no location: %d, close %v", resp.StatusCode, resp.Close)
	}
}

func TestABodyInTheBufferIsSentAgainToTheNextServer(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	refused, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := refused.Addr().String()
	refused.Close() // nothing listens there: connect errors
	u := pool("u", dead, hostPort(b))
	u.Balancer = "round_robin"
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "l", Path: "/", Upstream: "u"}}}}, u))
	rc := dialRaw(t, tp)
	for i := range 8 { // round robin: the dead server comes first half the time
		req := "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
		if i%4 >= 2 {
			req = "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		}
		rc.send(req)
		if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != "b 11" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestHTTP1OverTLSIsServedByTheLoopAndHandedOverLikePlain(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	slow, gone := slowUpstream(t)
	cert, key := selfSigned(t, "v", "shop.test")
	cfg := tp.config([]VServer{{Name: "v", Service: "web", TLS: true, Locations: []Location{
		{Name: "l", Path: "/", Upstream: "u"}, {Name: "slow", Path: "/slow", Upstream: "slow"}}}},
		pool("u", hostPort(b)), pool("slow", hostPort(slow)))
	cfg.Certs = []Cert{{Name: "c", CertPEM: cert, KeyPEM: key, Default: true}}
	tp.apply(t, cfg)

	rc := dialRawTLS(t, tp)
	rc.send("GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\n")
	resp, body := rc.read("GET")
	if body != "b 0" || resp.Header.Get("X-Seen-Proto") != "https" ||
		resp.Header.Get("X-Seen-Forwarded") != `for=127.0.0.1;proto=https;host="shop.test"` {
		t.Fatalf("over TLS: %q, backend saw proto %q, Forwarded %q", body, resp.Header.Get("X-Seen-Proto"),
			resp.Header.Get("X-Seen-Forwarded"))
	}
	rc.send("GET /b%41 HTTP/1.1\r\nHost: shop.test\r\n\r\n") // percent-encoding: net/http's
	if resp, body := rc.read("GET"); body != "b 0" || resp.Header.Get("X-Seen-Proto") != "https" {
		t.Fatalf("handed over to net/http: %q, proto %q", body, resp.Header.Get("X-Seen-Proto"))
	}
	rc.send("GET /c HTTP/1.1\r\nHost: shop.test\r\n\r\n")
	if _, body := rc.read("GET"); body != "b 0" {
		t.Fatalf("after the hand-over: %q", body)
	}
	// A chunked body is net/http's too, and ends the connection (see
	// TestARequestFramedTwiceThatNetHTTPReadsClosesTheConnection).
	rc.send("POST /d HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	if resp, body := rc.read("POST"); body != "b 2" || resp.Header.Get("X-Seen-Proto") != "https" || !resp.Close {
		t.Fatalf("chunked: %q, proto %q, close %v", body, resp.Header.Get("X-Seen-Proto"), resp.Close)
	}

	// A TLS client that leaves (close_notify) releases the upstream.
	leaver := dialRawTLS(t, tp)
	leaver.send("GET /slow HTTP/1.1\r\nHost: shop.test\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	leaver.c.Close()
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream request went on after the TLS client left")
	}
}

// A plain connection is served from inside one raw read of its socket
// (serveRaw): what arrives while a request is out at its upstream must be
// read as soon as that request is answered, not at the next timeout.
func TestARequestPipelinedWhileTheFirstIsOutIsAnsweredAtOnce(t *testing.T) {
	tp, _ := rawProxy(t, func(head string) string {
		path := strings.Fields(head)[1]
		if path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(path), path)
	})
	for i := range 3 {
		rc := dialRaw(t, tp) // 5 s deadline, against an idle timeout of 75 s
		rc.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(50 * time.Millisecond) // the first is at its upstream
		rc.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, want := range []string{"/slow", "/fast"} {
			if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != want {
				t.Fatalf("round %d: got %d %q, want %q", i, resp.StatusCode, body, want)
			}
		}
	}
}

func TestHeadsAndBodiesArrivingInPiecesAreServed(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, body)
	}))
	t.Cleanup(b.Close)
	tp.apply(t, oneLocation(tp, b))
	rc := dialRaw(t, tp)
	for round := range 3 {
		for _, piece := range []string{"PO", "ST /p HTTP/1.1\r\nHo", "st: a\r\nContent-Length: 5\r\n", "\r\nab", "cde"} {
			rc.send(piece)
			time.Sleep(20 * time.Millisecond)
		}
		if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "/p abcde" {
			t.Fatalf("round %d: got %d %q", round, resp.StatusCode, body)
		}
	}
}

// The header timeout runs from a request's first byte: a client that
// sends its head a byte at a time is cut off when it passes, however often
// its bytes wake the loop.
func TestAHeadSentAByteAtATimeIsCutOffAtTheHeaderTimeout(t *testing.T) {
	tp := newTestProxy(t, Limits{ReadHeaderTimeout: upstream.Duration(300 * time.Millisecond)})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(b.Close)
	tp.apply(t, oneLocation(tp, b))
	rc := dialRaw(t, tp)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n") // a first request: the next head has the header timeout only once it starts
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	for i := 0; i < 40; i++ { // 4 s of bytes, never a whole head
		if _, err := rc.c.Write([]byte("G")); err != nil {
			break // cut off
		}
		time.Sleep(100 * time.Millisecond)
		if i == 39 {
			t.Fatalf("still open after %v of a head a byte at a time (header timeout 300ms)", time.Since(start))
		}
	}
	if !rc.closed() {
		t.Fatal("the connection is open")
	}
}

// TestHeadsAreParsedWithoutAllocating: a request and an answer head are
// copied into their connection's buffer, not into a new string each.
func TestHeadsAreParsedWithoutAllocating(t *testing.T) {
	reqHead := "GET /p?q=1 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: t\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n"
	respHead := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
	reqBr := bufio.NewReaderSize(strings.NewReader(reqHead), h1BufSize)
	respBr := bufio.NewReaderSize(strings.NewReader(respHead), h1BufSize)
	_, _ = reqBr.Peek(len(reqHead))
	_, _ = respBr.Peek(len(respHead))
	var q h1request
	var r h1response
	allocs := testing.AllocsPerRun(100, func() {
		if !q.parse(reqBr, len(reqHead)) || r.parse(respBr, len(respHead), false) != nil {
			t.Fatal("a head did not parse")
		}
	})
	if allocs != 0 || q.host != "shop.test" || q.userAgent != "t" || r.status != 200 || r.length != 2 {
		t.Errorf("%v allocations per request and answer; parsed host %q, agent %q, status %d, length %d",
			allocs, q.host, q.userAgent, r.status, r.length)
	}
}

// TestAccessLogEntriesOutliveTheReusedHead: pipelined requests reuse one
// head buffer while their log entries wait for the writer; each line
// still says its own request.
func TestAccessLogEntriesOutliveTheReusedHead(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	addr, _ := rawBackend(t, func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" })
	path := t.TempDir() + "/access.log"
	cfg := tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", addr))
	cfg.AccessLog = accesslog.Config{Enabled: true, Format: "template", Template: "$request_uri $http_user_agent", Path: path}
	tp.apply(t, cfg)
	const n = 50
	var reqs strings.Builder
	for i := range n {
		fmt.Fprintf(&reqs, "GET /r%03d HTTP/1.1\r\nHost: x\r\nUser-Agent: ua%03d\r\n\r\n", i, i)
	}
	rc := dialRaw(t, tp)
	rc.send(reqs.String())
	for range n {
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); len(lines) < n && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	if len(lines) != n {
		t.Fatalf("%d log lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("/r%03d ua%03d", i, i); l != want {
			t.Errorf("line %d is %q, want %q", i, l, want)
		}
	}
}

// TestAClientThatEndsItsSideGetsItsAnswerAndTheEnd: a client that sends
// its request and shuts its side (as `nc -N` does) reads the answer and
// then the end of the connection, at once, not after the idle timeout;
// the end may arrive with the request, before the proxy reads it.
func TestAClientThatEndsItsSideGetsItsAnswerAndTheEnd(t *testing.T) {
	tp, _ := rawProxy(t, func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" })
	for range 3 {
		rc := dialRaw(t, tp)
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = rc.c.(*net.TCPConn).CloseWrite()
		_ = rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := io.ReadAll(rc.c)
		if err != nil || string(got) != "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
			t.Fatalf("read %q, %v; want the answer, then the end", got, err)
		}
	}
}

// TestARequestFramedTwiceIsRefusedAndTheConnectionClosed: Content-Length
// and Transfer-Encoding together (RFC 9112 6.1: maybe an attempt at
// smuggling, after which a server must close) are a 400, as nginx answers,
// and nothing after them on the connection is served; the upstream sees
// none of it.
func TestARequestFramedTwiceIsRefusedAndTheConnectionClosed(t *testing.T) {
	tp, heads := rawProxy(t, func(string) string { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" })
	twice := "POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	rc := dialRaw(t, tp)
	rc.send(twice)
	if resp, _ := rc.read("POST"); resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Fatalf("status %d, close %v; want 400 and the connection closed", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Error("the connection stayed open after a request framed twice")
	}
	select {
	case h := <-heads:
		t.Errorf("the upstream got %q", h)
	default:
	}
}

// TestARequestFramedTwiceThatNetHTTPReadsClosesTheConnection: a head the
// proxy's loop hands to net/http (here its lines end in a bare LF) with
// Content-Length and Transfer-Encoding is served by its chunked framing,
// and the connection closes after it (RFC 9112 6.1): what followed it by
// the Content-Length's count is never read as a request.
func TestARequestFramedTwiceThatNetHTTPReadsClosesTheConnection(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	tp.apply(t, oneLocation(tp, b))
	rc := dialRaw(t, tp)
	rc.send("POST /te HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 40\n\n0\r\n\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := rc.read("POST")
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("status %d, close %v; want the request served and the connection closed", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Fatal("the connection stayed open after a request framed twice")
	}
}

// TestAMalformedChunkedBodyIsRefusedAndEndsTheConnection: a chunked body
// (served through net/http) whose trailer cannot be read is a 400 that
// closes the connection, so nothing after it is read as a next request
// (net/http would, past the bad line: the bytes of one request smuggled
// as two), and it does not count against the upstream server, which
// serves the next client.
func TestAMalformedChunkedBodyIsRefusedAndEndsTheConnection(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	tp.apply(t, oneLocation(tp, b))
	rc := dialRaw(t, tp)
	rc.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" +
		"0\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := rc.read("POST")
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Fatalf("status %d, close %v; want 400 and the connection closed", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Fatal("the connection stayed open: what follows the bad body would be read as a request")
	}
	rc = dialRaw(t, tp)
	rc.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the next client got %d: the bad body counted against the server", resp.StatusCode)
	}
}

// An idle keep-alive connection is closed after the idle timeout; one that
// asks again within it is served, and a request's wait for its answer is
// not idle time.
func TestIdleKeepAliveConnectionsAreClosed(t *testing.T) {
	tp := newTestProxy(t, Limits{IdleTimeout: upstream.Duration(400 * time.Millisecond)})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(800 * time.Millisecond)
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(slow.Close)
	tp.apply(t, oneLocation(tp, slow))
	rc := dialRaw(t, tp)
	for range 3 {
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("GET"); body != "ok" {
			t.Fatalf("answer %q", body)
		}
		time.Sleep(150 * time.Millisecond)
	}
	rc.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := rc.read("GET"); body != "ok" {
		t.Fatalf("a request slower than the idle timeout: %q", body)
	}
	if !rc.closed() {
		t.Error("an idle keep-alive connection stayed open past the idle timeout")
	}
}
