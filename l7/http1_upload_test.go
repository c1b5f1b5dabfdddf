package l7

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chunkedProxy is a proxy in front of an upstream that reads requests with
// net/http, sends each one's path, codings, body and trailers on got, and
// answers 200 with the body's length.
func chunkedProxy(t *testing.T) (*testProxy, chan string) {
	got := make(chan string, 16)
	addr := serveRequests(t, func(req *http.Request, body []byte) string {
		got <- fmt.Sprintf("%s %v %s trailer=%v expect=%s", req.URL.Path, req.TransferEncoding, body, req.Trailer, req.Header.Get("Expect"))
		n := fmt.Sprint(len(body))
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(n), n)
	})
	tp := newTestProxy(t, Limits{})
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", addr)))
	return tp, got
}

// seen returns what the upstream read next, failing after 5 s of nothing.
func seen(t *testing.T, got chan string) string {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream read no request")
		return ""
	}
}

// A chunked request body reaches the upstream whole, chunk extensions and
// trailers with it, and the client's connection serves the next request,
// as with a Content-Length body; one larger than the buffer streams.
func TestChunkedRequestBodiesAreForwardedAndKeepTheConnection(t *testing.T) {
	tp, got := chunkedProxy(t)
	rc := dialRaw(t, tp)
	rc.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "11" || resp.Close {
		t.Fatalf("chunked upload: %d %q, close %v", resp.StatusCode, body, resp.Close)
	}
	if s := seen(t, got); s != "/c [chunked] hello world trailer=map[X-Sum:[11]] expect=" {
		t.Errorf("the upstream read %q", s)
	}
	// In pieces, and far more than the buffer: streamed as it comes.
	rc.send("PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("z", 64<<10)
	for range 32 {
		rc.send(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk))
	}
	rc.send("0\r\n\r\n")
	if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != fmt.Sprint(32*len(chunk)) || resp.Close {
		t.Fatalf("2 MiB chunked upload: %d %q, close %v", resp.StatusCode, body, resp.Close)
	}
	seen(t, got)
	rc.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "0" {
		t.Fatalf("the request after the uploads: %d %q", resp.StatusCode, body)
	}
	if s := seen(t, got); s != "/after []  trailer=map[] expect=" {
		t.Errorf("the upstream read %q", s)
	}
	if in := settled(func() uint64 { return tp.Stats().Snapshot().VServers["v"].BytesIn }, rc.sent()); in != rc.sent() {
		t.Errorf("counted %d bytes in, want the %d the client sent (heads, chunk framing and data)", in, rc.sent())
	}
}

// A chunked body framed in a way two parsers could read differently is
// refused with 400 and the connection closed; the upstream never reads a
// whole request from it, and its server stays in the pool (the client's
// fault, not the server's).
func TestMisframedChunkedRequestBodiesAreRefused(t *testing.T) {
	tp, got := chunkedProxy(t)
	head := "POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, c := range []struct{ name, body string }{
		{"bare LF after the size", "5\nhello\r\n0\r\n\r\n"},
		{"bare LF after the data", "5\r\nhello\n0\r\n\r\n"},
		{"data longer than the size", "5\r\nhelloX\r\n0\r\n\r\n"},
		{"a size that is not hex", "5x\r\nhello\r\n0\r\n\r\n"},
		{"a space after the size", "5 \r\nhello\r\n0\r\n\r\n"},
		{"a CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n"},
		{"a trailer that is no field", "5\r\nhello\r\n0\r\nnot a field\r\n\r\n"},
		{"a trailer section too long", "5\r\nhello\r\n0\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 100)+"\r\n", 30) + "\r\n"},
	} {
		rc := dialRaw(t, tp)
		rc.send(head + c.body)
		if resp, _ := rc.read("POST"); resp.StatusCode != 400 || !resp.Close {
			t.Errorf("%s: %d, close %v; want 400 and close", c.name, resp.StatusCode, resp.Close)
		}
		if !rc.closed() {
			t.Errorf("%s: the connection stayed open", c.name)
		}
	}
	// The same when the bad line comes after the body began to stream.
	rc := dialRaw(t, tp)
	rc.send(head + "5\r\nhel")
	time.Sleep(50 * time.Millisecond)
	rc.send("lo\n0\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 400 || !resp.Close {
		t.Errorf("a bare LF after streamed data: %d, close %v; want 400 and close", resp.StatusCode, resp.Close)
	}
	select {
	case s := <-got:
		t.Errorf("the upstream read a whole request from a misframed body: %q", s)
	default:
	}
	for _, s := range tp.Pool("u").Servers() {
		if s.Fails() != 0 || !s.Available(time.Now()) {
			t.Errorf("the server counts %d failures (available %v) for the clients' misframed bodies", s.Fails(), s.Available(time.Now()))
		}
	}
	// Content-Length beside it is refused as before; the server is still
	// in the pool for a good request.
	rc = dialRaw(t, tp)
	rc.send("POST /both HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 400 || !resp.Close {
		t.Errorf("both framings: %d, close %v; want 400 and close", resp.StatusCode, resp.Close)
	}
	rc = dialRaw(t, tp)
	rc.send(head + "2\r\nok\r\n0\r\n\r\n")
	if resp, body := rc.read("POST"); resp.StatusCode != 200 || body != "2" {
		t.Errorf("a good chunked request after the bad ones: %d %q", resp.StatusCode, body)
	}
}

// readContinue reads a 100 (Continue) interim answer.
func (rc *rawClient) readContinue() {
	rc.t.Helper()
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		rc.t.Fatalf("want a 100 (Continue), got %q, %v", line, err)
	}
	if end, err := rc.br.ReadString('\n'); err != nil || end != "\r\n" {
		rc.t.Fatalf("want the end of the 100's head, got %q, %v", end, err)
	}
}

// A client that expects 100-continue is told to go on once the upstream is
// reached, sends its body then (with a length or in chunks), and keeps its
// connection; the upstream gets the body, not the expectation. One whose
// request is answered without its body (no location) gets no 100, and the
// connection closes, the body's coming unknown.
func TestExpectContinueIsAnsweredByTheLoop(t *testing.T) {
	tp, got := chunkedProxy(t)
	rc := dialRaw(t, tp)
	for _, c := range []struct{ head, body, length, upstream string }{
		{"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", "hello", "5",
			"/e [] hello trailer=map[] expect="},
		{"PUT /ec HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n", "3",
			"/ec [chunked] abc trailer=map[] expect="},
	} {
		rc.send(c.head)
		rc.readContinue()
		rc.send(c.body)
		if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != c.length || resp.Close {
			t.Fatalf("upload after 100: %d %q, close %v", resp.StatusCode, body, resp.Close)
		}
		if s := seen(t, got); s != c.upstream {
			t.Errorf("the upstream read %q, want %q", s, c.upstream)
		}
	}

	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/only", Upstream: "u"}}}},
		pool("u", "127.0.0.1:1")))
	rc = dialRaw(t, tp)
	rc.send("PUT /none HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	if resp, _ := rc.read("PUT"); resp.StatusCode != 404 || !resp.Close {
		t.Errorf("expecting 100 at no location: %d, close %v; want 404 and close", resp.StatusCode, resp.Close)
	}
}

// An idempotent request whose chunked body was all in the buffer is sent
// again on a new connection when the pooled one it went out on turns out
// closed by the server, as one with a Content-Length body is; one that
// streamed is not (its body is gone).
func TestAChunkedBodyInTheBufferIsSentAgainOverANewConnection(t *testing.T) {
	// Each connection answers one request, then closes without saying so.
	addr := serveConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	})
	tp := newTestProxy(t, Limits{})
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", addr)))
	rc := dialRaw(t, tp)
	for i := range 3 {
		rc.send("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		if resp, body := rc.read("PUT"); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond) // the server has closed the pooled connection
	}
}

// A chunked body to no location is dropped and the connection kept when it
// is all here; when more of it is to come, the connection closes.
func TestAChunkedBodyToNoLocationIsDropped(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/only", Upstream: "u"}}}},
		pool("u", "127.0.0.1:1")))
	rc := dialRaw(t, tp)
	rc.send("POST /none HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 404 || resp.Close {
		t.Errorf("a whole chunked body to no location: %d, close %v; want 404, kept", resp.StatusCode, resp.Close)
	}
	rc.send("POST /none HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
	if resp, _ := rc.read("POST"); resp.StatusCode != 404 || !resp.Close {
		t.Errorf("a chunked body to no location still coming: %d, close %v; want 404 and close", resp.StatusCode, resp.Close)
	}
}
