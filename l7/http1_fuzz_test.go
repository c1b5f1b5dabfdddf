package l7

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sluicelb/sluice/l7/upstream"
)

// The loop's parsers must never accept what net/http would read otherwise:
// a request it serves is one net/http reads the same way, and an answer it
// relays has the framing net/http sees in it.

func headOf(data []byte) (*bufio.Reader, int, bool) {
	br := bufio.NewReaderSize(bytes.NewReader(data), h1BufSize)
	n, err := readHead(br, func(int) error { return nil })
	return br, n, err == nil
}

func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p?q=1 HTTP/1.1\r\nHost: a:80\r\nConnection: close, X-A\r\nX-A: 1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"HEAD /x HTTP/1.1\r\nhost: [::1]:8080\r\nContent-Length: 0\r\nUser-Agent: u\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br, n, ok := headOf(data)
		if !ok {
			return
		}
		var q h1request
		if !q.parse(br, n) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
		if err != nil {
			t.Fatalf("served a head net/http refuses (%v): %q", err, data[:n])
		}
		if req.Method != q.method || req.RequestURI != q.target || req.Host != q.host || req.URL.Path != q.path {
			t.Fatalf("read differently: net/http %q %q %q %q, loop %q %q %q %q", req.Method, req.RequestURI, req.Host,
				req.URL.Path, q.method, q.target, q.host, q.path)
		}
		if req.ContentLength != q.length || len(req.TransferEncoding) > 0 || req.Close != q.close || !httpguts.ValidHostHeader(req.Host) {
			t.Fatalf("framing: net/http length %d coding %v close %v, loop length %d close %v", req.ContentLength,
				req.TransferEncoding, req.Close, q.length, q.close)
		}
		for _, h := range q.headers {
			if !httpguts.ValidHeaderFieldName(h.name) || !httpguts.ValidHeaderFieldValue(h.value) {
				t.Fatalf("forwards a field net/http would refuse: %q: %q", h.name, h.value)
			}
			if !equalFold(h.name, "host") && !containsString(req.Header.Values(h.name), h.value) {
				t.Fatalf("forwards %q: %q, net/http read %q", h.name, h.value, req.Header.Values(h.name))
			}
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 200 OK\nX-A: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nX-Folded: a\n\tb\n\n",
		"HTTP/1.0 200\nTrAnsfer-EnCoding:Chunked   \n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), h1BufSize)
		n, bareLF, err := readUpstreamHead(br, func(int) error { return nil })
		if err != nil {
			return
		}
		var r h1response
		if r.parse(br, n, bareLF) != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data[:n])), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("relays a head net/http refuses (%v): %q", err, data[:n])
		}
		if resp.StatusCode != r.status {
			t.Fatalf("status: net/http %d, loop %d", resp.StatusCode, r.status)
		}
		chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
		if !r.noBody && chunked != r.chunked {
			t.Fatalf("chunked: net/http %v, loop %v: %q", resp.TransferEncoding, r.chunked, data[:n])
		}
		if !r.noBody && !r.chunked && resp.ContentLength != r.length {
			t.Fatalf("length: net/http %d, loop %d", resp.ContentLength, r.length)
		}
	})
}

func containsString(vs []string, v string) bool {
	for _, x := range vs {
		if strings.TrimSpace(x) == v {
			return true
		}
	}
	return false
}

// FuzzUpstreamAnswer has an upstream answer a GET with arbitrary bytes,
// then close, and compares what the client gets through the proxy with
// what net/http reads from those bytes (interim 1xx answers skipped, as
// the proxy skips them): a 502, or the same status and the same body
// (where net/http reads the bytes at all: not bare-LF lines); an
// answer cut short (its body shorter than its framing says) never reaches
// the client as a whole one; and a connection the proxy keeps serves the
// next request. Every read is bounded: a hang fails.
func FuzzUpstreamAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.0 200 OK\r\n\r\nuntil the end",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1\no\n1;e=1\r\nk\n0\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	var answer atomic.Pointer[[]byte]
	addr := serveConns(f, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := readHead(bufio.NewReader(c), func(int) error { return nil }); err == nil {
			_, _ = c.Write(*answer.Load())
		}
	})
	tp := fuzzProxy(f, addr)
	f.Fuzz(func(t *testing.T, data []byte) {
		answer.Store(&data)
		c, err := net.DialTimeout("tcp", tp.addr.String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for i := range 2 {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatalf("request %d: %v", i+1, err)
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("request %d: no answer from the proxy (%v) to upstream bytes %q", i+1, err, data)
			}
			body, bodyErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				want, wantBody, rest, wantErr := netHTTPReads(data)
				switch {
				case bareLF(data):
					// Lines ending in a bare LF, chunk lines too: the proxy reads
					// them as nginx does (RFC 9112 2.2 lets a recipient), net/http
					// only in heads; TestUpstreamHeadsWithBareLFAndFoldsAreRelayedCanonically.
				case want == nil:
					t.Fatalf("relayed %d for an answer net/http refuses: %q", resp.StatusCode, data)
				case want.StatusCode != resp.StatusCode:
					t.Fatalf("status %d, net/http reads %d in %q", resp.StatusCode, want.StatusCode, data)
				case wantErr != nil && bodyErr == nil && len(want.TransferEncoding) > 0:
					// The chunks as nginx reads them, a bare LF after a chunk's
					// data included (here the data's last byte was a CR).
					if lenient, ok := nginxChunks(rest); !ok || !bytes.Equal(body, lenient) {
						t.Fatalf("an answer cut short (%v) reached the client whole (%q): %q", wantErr, body, data)
					}
				case wantErr != nil && bodyErr == nil:
					t.Fatalf("an answer cut short (%v) reached the client whole (%q): %q", wantErr, body, data)
				case wantErr == nil && (bodyErr != nil || !bytes.Equal(body, wantBody)):
					t.Fatalf("body %q (%v), net/http reads %q in %q", body, bodyErr, wantBody, data)
				}
			}
			if bodyErr != nil || resp.Close {
				return
			}
		}
	})
}

// fuzzProxy is a proxy with one location, to the upstream at addr, whose
// passive health is off: every run reaches it, whatever the runs before.
func fuzzProxy(f *testing.F, addr string) *testProxy {
	tp := newTestProxy(f, Limits{})
	up := pool("u", addr)
	up.Servers[0].MaxFails = upstream.MaxFailsDisabled
	tp.apply(f, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}}, up))
	return tp
}

// bareLF reports whether data has a line feed without its carriage return.
func bareLF(data []byte) bool {
	for i, b := range data {
		if b == '\n' && (i == 0 || data[i-1] != '\r') {
			return true
		}
	}
	return false
}

// netHTTPReads is the final answer net/http reads in an upstream's bytes
// (nil if none), its body with the error that cut it short, and the bytes
// after its head.
func netHTTPReads(data []byte) (_ *http.Response, body, rest []byte, _ error) {
	r := bytes.NewReader(data)
	br := bufio.NewReader(r)
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			return nil, nil, nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			rest = data[len(data)-r.Len()-br.Buffered():]
			body, err := io.ReadAll(resp.Body)
			return resp, body, rest, err
		}
	}
}

// nginxChunks decodes a chunked body as nginx does, where net/http is
// stricter: a line may end in a bare LF (after a chunk's data too), and a
// size may be followed by spaces or tabs as well as by an extension.
func nginxChunks(b []byte) (body []byte, ok bool) {
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, false
		}
		l := bytes.TrimSuffix(b[:i], []byte("\r"))
		b = b[i+1:]
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return nil, false
		}
		digits := 0
		for digits < len(l) && strings.IndexByte("0123456789abcdefABCDEF", l[digits]) >= 0 {
			digits++
		}
		if digits == 0 || digits > 15 || (digits < len(l) && strings.IndexByte(" \t;", l[digits]) < 0) {
			return nil, false
		}
		n, _ := strconv.ParseInt(string(l[:digits]), 16, 64)
		if n == 0 {
			for { // trailers, up to the empty line
				if l, ok := line(); !ok || len(l) == 0 {
					return body, ok
				}
			}
		}
		if int64(len(b)) < n {
			return nil, false
		}
		body, b = append(body, b[:n]...), b[n:]
		if l, ok := line(); !ok || len(l) != 0 {
			return nil, false
		}
	}
}

// seenRequest is what a backend or net/http read of one request: enough
// to tell where each request begins and ends.
type seenRequest struct {
	method, uri string
	body        string
}

// FuzzClientRequests sends arbitrary bytes from a client, then ends its
// side, and checks that the requests the upstream receives are, in order,
// among those net/http reads in the bytes (the same method, target and
// body): the proxy may answer a request itself, or refuse it and close,
// but never sends one that net/http would not read there, nor splits the
// bytes into requests differently (request smuggling). And it always
// answers or closes: a hang fails.
func FuzzClientRequests(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /both HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /lf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /te2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET http://a/abs?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /short HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"PUT /ec HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	// Each run's client has its own loopback address, which the proxy puts
	// last in X-Forwarded-For: a request of an earlier run that reaches the
	// upstream late (the proxy may abort one when its client ends its side,
	// as nginx does) is not counted as this run's.
	var mu sync.Mutex
	seen := map[string][]seenRequest{}
	addr := serveRequests(f, func(req *http.Request, body []byte) string {
		xff := strings.Split(req.Header.Get("X-Forwarded-For"), ",")
		client := strings.TrimSpace(xff[len(xff)-1])
		mu.Lock()
		seen[client] = append(seen[client], seenRequest{req.Method, req.URL.RequestURI(), string(body)})
		mu.Unlock()
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	tp := fuzzProxy(f, addr)
	var runs atomic.Uint32
	f.Fuzz(func(t *testing.T, data []byte) {
		n := runs.Add(1)
		client := netip.AddrFrom4([4]byte{127, 1 + byte(n>>16), byte(n >> 8), byte(n)})
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}
		c, err := d.Dial("tcp", tp.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(data); err != nil {
			return // the proxy closed before taking it all: it refused something
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the proxy neither answered nor closed (%v): %q", err, data)
		}
		want := netHTTPRequests(data)
		mu.Lock()
		got := seen[client.String()]
		delete(seen, client.String())
		mu.Unlock()
		// In order, each forwarded request is one net/http reads; those
		// between are the proxy's to answer (a 404 for no location).
		rest := want
		for i, r := range got {
			for len(rest) > 0 && rest[0] != r {
				rest = rest[1:]
			}
			if len(rest) == 0 {
				t.Fatalf("request %d to the upstream, %q, is none net/http reads there: got %q, net/http %q, in %q", i+1, r, got, want, data)
			}
			rest = rest[1:]
		}
	})
}

// serveRequests is an upstream that reads each request, body and trailers,
// with net/http, and writes what answer returns for it.
func serveRequests(t testing.TB, answer func(req *http.Request, body []byte) string) (addr string) {
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, answer(req, body)); err != nil {
				return
			}
		}
	})
}

// netHTTPRequests is what net/http's server reads in a client's bytes: each
// request up to the first it cannot read whole. After a POST the server
// drops up to four CR or LF bytes before the next request line (RFC 7230
// 3.5's tolerance of old clients; net/http's conn.readRequest), so this
// does too: the proxy hands such a connection to net/http, which then reads
// "\r0 / HTTP/1.1" after a POST as a request, where ReadRequest alone does not.
func netHTTPRequests(data []byte) []seenRequest {
	var rs []seenRequest
	br := bufio.NewReader(bytes.NewReader(data))
	for {
		if len(rs) > 0 && rs[len(rs)-1].method == http.MethodPost {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return rs
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return rs
		}
		rs = append(rs, seenRequest{req.Method, req.URL.RequestURI(), string(body)})
		if req.Close {
			return rs
		}
	}
}

// FuzzChunkedRequestBody checks bufferedChunked against net/http: a body it
// takes as whole, net/http reads whole too, ending at the same byte, with
// the same data.
func FuzzChunkedRequestBody(f *testing.F) {
	for _, s := range []string{
		"0\r\n\r\n",
		"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n",
		"3\r\nabc\r\n0\r\n\r\n",
		"3\nabc\r\n0\r\n\r\n",
		"3 \r\nabc\r\n0\r\n\r\n",
		"3\r\nabcd\r\n0\r\n\r\n",
		"0\r\nX: a\rb\r\n\r\n",
		"1;" + strings.Repeat("e", 4092) + "\r\na\r\n0\r\n\r\n", // 4,096 bytes with its CRLF: read
		"1;" + strings.Repeat("e", 4093) + "\r\na\r\n0\r\n\r\n", // one more: not
	} {
		f.Add([]byte(s))
	}
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	f.Fuzz(func(t *testing.T, body []byte) {
		n, fr, whole, _ := bufferedChunked(body)
		if !whole {
			return
		}
		r := bytes.NewReader(append([]byte(head), body...))
		br := bufio.NewReader(r)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http refused the head: %v", err)
		}
		data, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("taken as whole (%d bytes), net/http fails: %v: %q", n, err, body)
		}
		if left := br.Buffered() + r.Len(); int64(len(data)) != fr.data || left != len(body)-n {
			t.Fatalf("taken as %d bytes with %d of data, net/http read %d of data and left %d bytes, not %d: %q",
				n, fr.data, len(data), left, len(body)-n, body)
		}
	})
}
