package l7

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
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
