package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicelb/sluice/l7/stats"
	"github.com/sluicelb/sluice/l7/upstream"
	"github.com/sluicelb/sluice/test/lab"
)

func TestRequestsGoToTheVServerAndLocationTheyMatch(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	api, static, www, other := backend(t, "api"), backend(t, "static"), backend(t, "www"), backend(t, "other")
	tp.apply(t, tp.config([]VServer{
		{Name: "site", Service: "web", Hosts: []string{"example.com", "*.example.com"}, Locations: []Location{
			{Name: "root", Path: "/", Upstream: "www"},
			{Name: "api", Path: "/api/", Upstream: "api"},
			{Name: "health", Match: MatchExact, Path: "/api/health", Upstream: "static"},
			{Name: "images", Match: MatchRegex, Path: `\.(png|jpg)$`, Upstream: "static"},
		}},
		{Name: "fallback", Service: "web", Locations: []Location{{Name: "all", Path: "/", Upstream: "other"}}},
		{Name: "narrow", Service: "web", Hosts: []string{"docs.example.com"}, Locations: []Location{{Name: "only", Path: "/only/", Upstream: "api"}}},
	}, pool("www", hostPort(www)), pool("api", hostPort(api)), pool("static", hostPort(static)), pool("other", hostPort(other))))

	c := &http.Client{}
	for _, tc := range []struct{ host, path, want string }{
		{"example.com", "/", "www"},
		{"example.com", "/api/users", "api"},
		{"example.com", "/api/health", "static"},     // exact beats the prefix
		{"EXAMPLE.com:8080", "/api/x.png", "static"}, // a regex beats a prefix; host case and port ignored
		{"shop.example.com", "/index.html", "www"},   // wildcard
		{"unknown.test", "/", "other"},               // the default server has no host names
		{"docs.example.com", "/only/x", "api"},       // exact host beats the wildcard
	} {
		resp, body := get(t, c, tp.url(tc.path), tc.host)
		if got := resp.Header.Get("X-Backend"); got != tc.want || resp.StatusCode != 200 {
			t.Errorf("%s%s went to %q (%d %q), want %s", tc.host, tc.path, got, resp.StatusCode, body, tc.want)
		}
	}
	if resp, _ := get(t, c, tp.url("/elsewhere"), "docs.example.com"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a path no location matches: %d, want 404", resp.StatusCode)
	}
}

func TestForwardedHeadersAndHopByHopHeaders(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	req, _ := http.NewRequest("GET", tp.url("/x"), nil)
	req.Host = "shop.test"
	req.Header.Set("X-Forwarded-For", "192.0.2.7")
	req.Header.Set("Connection", "X-Foo")
	req.Header.Set("X-Foo", "secret hop-by-hop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if got := h.Get("X-Seen-XFF"); got != "192.0.2.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For at the backend: %q", got)
	}
	if got := h.Get("X-Seen-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto: %q", got)
	}
	if got := h.Get("X-Seen-Forwarded"); got != `for=127.0.0.1;proto=http;host="shop.test"` {
		t.Errorf("Forwarded: %q", got)
	}
	if got := h.Get("X-Seen-Host"); got != "shop.test" {
		t.Errorf("Host at the backend: %q", got)
	}
	if got := h.Get("X-Seen-Foo"); got != "" {
		t.Errorf("a header named in Connection reached the backend: %q", got)
	}
}

func TestConnectErrorsMoveToTheNextServerAndMarkTheFailedOne(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	good := backend(t, "good")
	dead, _ := net.Listen("tcp4", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close() // connection refused from now on
	u := pool("u", deadAddr, hostPort(good))
	u.Servers[0].MaxFails = 1
	u.Servers[0].FailTimeout = upstream.Duration(time.Minute)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}}, u))
	for i := range 10 {
		resp, body := get(t, http.DefaultClient, tp.url("/"), "")
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	for _, s := range tp.Pool("u").Servers() {
		if s.Addr() == deadAddr && s.Available(time.Now()) {
			t.Errorf("the refusing server is still available after failing")
		}
	}
	snap := tp.Stats().Snapshot()
	if n := snap.Upstreams["u"].Servers[hostPort(good)].Requests; n != 10 {
		t.Errorf("good server counted %d requests, want 10", n)
	}
}

func TestNoUsableServerIs503AndATimeoutIs504(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	down := pool("down", "127.0.0.1:9")
	down.Servers[0].Down = true
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "slow", Path: "/slow", Upstream: "slow", ReadTimeout: upstream.Duration(200 * time.Millisecond), Tries: 1},
		{Name: "down", Path: "/down", Upstream: "down"},
	}}}, pool("slow", hostPort(slow)), down))
	if resp, _ := get(t, http.DefaultClient, tp.url("/down"), ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("every server down: %d, want 503", resp.StatusCode)
	}
	start := time.Now()
	if resp, _ := get(t, http.DefaultClient, tp.url("/slow"), ""); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("a server slower than the read timeout: %d, want 504", resp.StatusCode)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the timeout took %v", took)
	}
}

func TestBodiesStreamBothWays(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	firstChunk := make(chan string, 1)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err == nil {
			firstChunk <- string(buf)
		}
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "tick %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	t.Cleanup(b.Close)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", tp.url("/up"), pr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	pw.Write([]byte("hello"))
	// The backend sees the start of the body while the client still sends.
	select {
	case got := <-firstChunk:
		if got != "hello" {
			t.Errorf("first chunk %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the body was buffered: the backend saw nothing while the client was still sending")
	}
	pw.Close()
	resp := <-done
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "tick 0\n" {
		t.Errorf("first streamed line %q, %v", line, err)
	}
}

// webSocketThrough opens a WebSocket through a proxy to an upstream's echo.
func webSocketThrough(t *testing.T, tp *testProxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(lab.UpgradeEcho))
	t.Cleanup(b.Close)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	c, err := net.Dial("tcp", tp.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	r := bufio.NewReader(c)
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, r
}

func TestWebSocketUpgradeIsProxied(t *testing.T) {
	c, r := webSocketThrough(t, newTestProxy(t, Limits{}))
	for _, msg := range []string{"ping\n", "second\n"} {
		fmt.Fprint(c, msg)
		got, err := r.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
}

// A WebSocket is a request in flight for Shutdown (a daemon draining for
// its successor): it keeps echoing, and Shutdown returns once it closes.
func TestShutdownWaitsForAWebSocket(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	c, r := webSocketThrough(t, tp)
	shut := shutdownWithin(tp, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a WebSocket was open", err)
	default:
	}
	fmt.Fprint(c, "during shutdown\n")
	if got, err := r.ReadString('\n'); err != nil || got != "DURING SHUTDOWN\n" {
		t.Errorf("echo during Shutdown: %q, %v", got, err)
	}
	c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Error("Shutdown still waits after the WebSocket closed")
	}
}

func TestH2CAndGRPCTrailersPassThrough(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("X-Upstream-Proto", r.Proto)
		body, _ := io.ReadAll(r.Body)
		w.Write(body) // echo the framed message
		w.Header().Set("Grpc-Status", "0")
	}))
	b.Config.Protocols = &protos
	b.Start()
	t.Cleanup(b.Close)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	c := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	msg := "\x00\x00\x00\x00\x05hello" // a gRPC length-prefixed message
	req, _ := http.NewRequest("POST", tp.url("/echo.Echo/Say"), strings.NewReader(msg))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != msg {
		t.Errorf("h2c answer: proto %s body %q", resp.Proto, body)
	}
	if got := resp.Header.Get("X-Upstream-Proto"); got != "HTTP/2.0" {
		t.Errorf("gRPC reached the server over %s, want HTTP/2.0", got)
	}
	if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
		t.Errorf("grpc-status trailer %q", got)
	}
	// The upstream server's counters have the message both ways, with
	// the heads as HTTP/1.1 would send them (HTTP/2 compresses them): the
	// request's line, Host and fields; the response's status line and
	// the three fields the handler set, at least.
	srv := func() stats.Totals { return tp.Stats().Snapshot().Upstreams["u"].Servers[hostPort(b)] }
	inHead := len("POST /echo.Echo/Say HTTP/1.1\r\nHost: \r\nContent-Type: application/grpc\r\n\r\n") + len(tp.addr.String())
	outHead := len("HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTrailer: Grpc-Status\r\nX-Upstream-Proto: HTTP/2.0\r\n\r\n")
	settled(func() uint64 { return srv().Requests }, 1)
	if in := srv().BytesIn; in < uint64(len(msg)+inHead) || in > uint64(len(msg)+inHead+1024) {
		t.Errorf("the server counted %d bytes in, want the %d of the message and a head of at least %d", in, len(msg), inHead)
	}
	if out := srv().BytesOut; out < uint64(len(msg)+outHead) || out > uint64(len(msg)+outHead+1024) {
		t.Errorf("the server counted %d bytes out, want the %d of the message and a head of at least %d", out, len(msg), outHead)
	}
}

// On the paths net/http serves, heads are counted as HTTP/1.1 sends them.
func TestHeadSizesAreHTTP1s(t *testing.T) {
	h := http.Header{"Accept": {"*/*"}, "X-Two": {"a", "bc"}}
	if got, want := requestHeadSize("GET", "/a?b", "example.com", h),
		len("GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Two: a\r\nX-Two: bc\r\n\r\n"); got != int64(want) {
		t.Errorf("request head: %d, want %d", got, want)
	}
	if got, want := responseHeadSize(404, h), len("HTTP/1.1 404 Not Found\r\nAccept: */*\r\nX-Two: a\r\nX-Two: bc\r\n\r\n"); got != int64(want) {
		t.Errorf("response head: %d, want %d", got, want)
	}
}

// A TLS service no certificate can serve is taken (the certificate may
// come next), and the log says so, at the change and at the handshakes
// that fail (once for two close together); the first certificate set ends
// the failures.
func TestATLSServiceWithoutACertificateIsLogged(t *testing.T) {
	var log lab.SyncBuffer
	tp := newTestProxyWith(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	b := backend(t, "b")
	cfg := tp.config([]VServer{{Name: "v", Service: "web", TLS: true, Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b)))
	tp.apply(t, cfg)
	if got := log.String(); !strings.Contains(got, "a TLS service has no certificate") || !strings.Contains(got, "service=web") {
		t.Errorf("the change logged %q, want a warning naming the service", got)
	}
	dial := func() error {
		c, err := tls.Dial("tcp", tp.addr.String(), &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err
	}
	for range 2 {
		if err := dial(); err == nil {
			t.Fatal("a handshake without any certificate succeeded")
		}
	}
	warned := func() int { return strings.Count(log.String(), "TLS handshake failed: no certificate") }
	for deadline := time.Now().Add(2 * time.Second); warned() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := warned(); n != 1 {
		t.Errorf("two failed handshakes logged %d warnings, want 1:\n%s", n, log.String())
	}
	cert, key := selfSigned(t, "a", "a.example.com")
	cfg.Certs = []Cert{{Name: "a", CertPEM: cert, KeyPEM: key}}
	tp.apply(t, cfg)
	if err := dial(); err != nil {
		t.Errorf("with a certificate: %v", err)
	}
}

func TestSNIPicksTheCertificateAndASwapAppliesToTheNextHandshake(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	aCert, aKey := selfSigned(t, "a", "a.example.com")
	bCert, bKey := selfSigned(t, "b", "*.b.example.com")
	newA, newAKey := selfSigned(t, "a-new", "a.example.com")
	cfg := tp.config([]VServer{{Name: "v", Service: "web", TLS: true, Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b)))
	cfg.Certs = []Cert{{Name: "a", CertPEM: aCert, KeyPEM: aKey}, {Name: "b", CertPEM: bCert, KeyPEM: bKey, Default: true}}
	tp.apply(t, cfg)

	served := func(sni string) (string, string) {
		t.Helper()
		c, err := tls.Dial("tcp", tp.addr.String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("handshake for %s: %v", sni, err)
		}
		defer c.Close()
		st := c.ConnectionState()
		return st.PeerCertificates[0].Subject.CommonName, st.NegotiatedProtocol
	}
	for sni, want := range map[string]string{"a.example.com": "a", "x.b.example.com": "b", "nothing.test": "b"} {
		if got, proto := served(sni); got != want || proto != "h2" {
			t.Errorf("SNI %s got certificate %q over %q, want %q over h2", sni, got, proto, want)
		}
	}
	// An open connection keeps working across the swap.
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.example.com", InsecureSkipVerify: true}}
	c := &http.Client{Transport: tr}
	if resp, body := get(t, c, "https://"+tp.addr.String()+"/", ""); resp.StatusCode != 200 {
		t.Fatalf("https: %d %s", resp.StatusCode, body)
	}
	cfg.Certs[0] = Cert{Name: "a", CertPEM: newA, KeyPEM: newAKey}
	tp.apply(t, cfg)
	if got, _ := served("a.example.com"); got != "a-new" {
		t.Errorf("after the swap SNI a.example.com got %q", got)
	}
	if resp, body := get(t, c, "https://"+tp.addr.String()+"/", ""); resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Subject.CommonName != "a" {
		t.Errorf("the connection opened before the swap: %d %s", resp.StatusCode, body)
	}
}

func TestSlowlorisClientIsCutOff(t *testing.T) {
	tp := newTestProxy(t, Limits{ReadHeaderTimeout: upstream.Duration(300 * time.Millisecond)})
	b := backend(t, "b")
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	c, err := net.Dial("tcp", tp.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	var closed error
	for range 40 { // one header line every 100 ms, never the end
		time.Sleep(100 * time.Millisecond)
		if _, err := fmt.Fprint(c, "X-Slow: 1\r\n"); err != nil {
			closed = err
			break
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				closed = err
				break
			}
		}
	}
	if closed == nil {
		t.Fatalf("a client sending headers for %v was not cut off", time.Since(start))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cut off only after %v", took)
	}
}

func TestApplyUnderLoadFailsNoRequest(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	bs := []*httptest.Server{backend(t, "b0"), backend(t, "b1"), backend(t, "b2")}
	vss := []VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}}
	tp.apply(t, tp.config(vss, pool("u", hostPort(bs[0]), hostPort(bs[1]))))
	var failed, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(tp.url("/"))
				total.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	// Servers come and go under load; ids keep the ones that stay.
	for i := range 30 {
		u := pool("u", hostPort(bs[0]), hostPort(bs[1]), hostPort(bs[2]))
		u.Servers = u.Servers[i%2 : 2+i%2]
		tp.apply(t, tp.config(vss, u))
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed while servers changed", failed.Load(), total.Load())
	}
}

func TestBadConfigChangesNothing(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	good := tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}}, pool("u", hostPort(b)))
	tp.apply(t, good)
	for name, bad := range map[string]Config{
		"missing upstream": tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "nope"}}}}),
		"bad regex":        tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Match: MatchRegex, Path: "(", Upstream: "u"}}}}, pool("u", hostPort(b))),
		"unknown service":  tp.config([]VServer{{Name: "v", Service: "nope", Locations: nil}}),
		"bad cert": func() Config {
			c := good
			c.Certs = []Cert{{Name: "c", CertPEM: "garbage", KeyPEM: "garbage"}}
			return c
		}(),
	} {
		if err := tp.Apply(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Apply = %v, want ErrInvalidConfig", name, err)
		}
	}
	if resp, body := get(t, http.DefaultClient, tp.url("/"), ""); resp.StatusCode != 200 || !strings.HasPrefix(body, "b ") {
		t.Errorf("after rejected configs: %d %q", resp.StatusCode, body)
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	tp := newTestProxy(t, Limits{MaxHeaderBytes: 4096})
	b := backend(t, "b")
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b))))
	req, _ := http.NewRequest("GET", tp.url("/"), nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers over a 4 KiB limit: %d, want 431", resp.StatusCode)
	}
	if resp, _ := get(t, http.DefaultClient, tp.url("/"), ""); resp.StatusCode != 200 {
		t.Errorf("a normal request after: %d", resp.StatusCode)
	}
}

func TestAServerThatStopsReadingFailsTheRequestAfterTheWriteTimeout(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	// Accepts and never reads: the request body fills the socket buffers.
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
			t.Cleanup(func() { c.Close() })
		}
	}()
	u := pool("stuck", ln.Addr().String())
	u.WriteTimeout = upstream.Duration(300 * time.Millisecond)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "l", Path: "/", Upstream: "stuck", Tries: 1}}}}, u))
	body := io.LimitReader(zeros{}, 256<<20) // far more than the buffers hold
	c := &http.Client{Timeout: 20 * time.Second}
	start := time.Now()
	resp, err := c.Post(tp.url("/upload"), "application/octet-stream", body)
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 500 {
			t.Fatalf("status %d, want an upstream error", resp.StatusCode)
		}
	}
	if took > 15*time.Second {
		t.Fatalf("the request hung for %v against a server that reads nothing", took)
	}
	if n := settled(func() uint64 { return tp.Stats().Snapshot().VServers["v"].Responses.Status5xx }, 1); n != 1 {
		t.Errorf("counted %d 5xx answers, want 1", n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// hangUp is an upstream that reads each request's head and closes without
// an answer; it counts the requests it saw by method.
func hangUp(t *testing.T) (addr string, seen func(method string) int) {
	t.Helper()
	var mu sync.Mutex
	count := map[string]int{}
	addr = serveConns(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			mu.Lock()
			count[req.Method]++
			mu.Unlock()
		}
	})
	return addr, func(m string) int { mu.Lock(); defer mu.Unlock(); return count[m] }
}

// An upstream that fails after taking the request: an idempotent request
// goes on to the next server, a POST does not (it may have been acted on)
// and gets a 502, as nginx's proxy_next_upstream does by default; unless
// its location's retry policy allows any method.
func TestUpstreamErrorsRetryIdempotentRequestsOnly(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	bad, seen := hangUp(t)
	var goodPosts atomic.Int64
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			goodPosts.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "good")
	}))
	t.Cleanup(good.Close)
	u := pool("u", bad, hostPort(good))
	u.Servers[0].MaxFails = upstream.MaxFailsDisabled // tried every time
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{{Name: "l", Path: "/", Upstream: "u"},
		{Name: "any", Path: "/any", Upstream: "u", RetryNonIdempotent: true}}}}, u))
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 6 {
		resp, body := get(t, c, tp.url("/"), "")
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("GET %d: %d %q, want the next server's answer", i, resp.StatusCode, body)
		}
	}
	if seen("GET") == 0 {
		t.Fatal("the failing server saw no GET: the test proves nothing")
	}
	post := func(path string, i int) int {
		t.Helper()
		resp, err := c.Post(tp.url(path), "text/plain", strings.NewReader("order 42"))
		if err != nil {
			t.Fatalf("POST %d to %s: %v", i, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var ok, failed int
	for i := range 6 {
		switch code := post("/", i); code {
		case 200:
			ok++
		case 502:
			failed++
		default:
			t.Fatalf("POST %d: %d", i, code)
		}
	}
	if failed == 0 || failed != seen("POST") {
		t.Errorf("%d POSTs got a 502 and the failing server saw %d: want each one it took answered 502", failed, seen("POST"))
	}
	if int(goodPosts.Load()) != ok {
		t.Errorf("the good server saw %d POSTs, %d were answered 200: a POST was sent again", goodPosts.Load(), ok)
	}
	before := seen("POST")
	for i := range 6 {
		if code := post("/any", i); code != 200 {
			t.Fatalf("POST %d where any method is retried: %d", i, code)
		}
	}
	if seen("POST") == before {
		t.Error("the failing server saw none of the POSTs to /any: the retry was not proven")
	}
}

// silentListener is a loopback listener whose accept queue is full, so the
// kernel drops further SYNs: a connect to it hangs, as to a dead host.
func silentListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	// Fill the queue; these are never accepted.
	for range 4 {
		if c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp4", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel still answers SYNs on a full accept queue")
	}
	return addr
}

// A location's connect timeout, and an upstream's, end a connect to a host
// that never answers with a 504, long before the read timeout would.
func TestConnectTimeoutsEndAConnectThatHangs(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	addr := silentListener(t)
	byLocation := pool("bylocation", addr)
	byUpstream := pool("byupstream", addr)
	byUpstream.ConnectTimeout = upstream.Duration(300 * time.Millisecond)
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "loc", Path: "/loc", Upstream: "bylocation", ConnectTimeout: upstream.Duration(300 * time.Millisecond),
			ReadTimeout: upstream.Duration(time.Minute), Tries: 1},
		{Name: "up", Path: "/up", Upstream: "byupstream", ReadTimeout: upstream.Duration(time.Minute), Tries: 1},
	}}}, byLocation, byUpstream))
	// The client gives up well before the 5 s default connect timeout.
	c := &http.Client{Timeout: 3 * time.Second}
	for _, path := range []string{"/loc", "/up"} {
		resp, err := c.Get(tp.url(path))
		if err != nil {
			t.Errorf("%s: %v (the connect timeout was not applied)", path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("%s: %d, want 504", path, resp.StatusCode)
		}
	}
}

// A panic while a connection is served ends that connection, logged with
// its stack, and nothing else: the proxy serves the next client.
func TestAPanicServingAConnectionClosesOnlyIt(t *testing.T) {
	var log lab.SyncBuffer
	tp := newTestProxyWith(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	b := backend(t, "b")
	tp.apply(t, oneLocation(tp, b))
	client, server := net.Pipe()
	defer client.Close()
	tp.Stats().ClientOpened()
	tp.guarded(server, func() bool { panic("a bug one client reached") })
	if got := tp.Stats().Snapshot().Connections.Active; got != 0 {
		t.Errorf("%d connections open after the one that panicked closed", got)
	}
	if _, err := server.Write([]byte("x")); err == nil {
		t.Error("the connection that panicked is still open")
	}
	if got := log.String(); !strings.Contains(got, "panic serving a connection") || !strings.Contains(got, "a bug one client reached") ||
		!strings.Contains(got, "TestAPanicServingAConnectionClosesOnlyIt") {
		t.Errorf("the log has %q, want the panic and its stack", got)
	}
	if resp, body := get(t, http.DefaultClient, tp.url("/"), ""); resp.StatusCode != 200 || body != "b 0" {
		t.Errorf("after the panic: %d %q", resp.StatusCode, body)
	}
}

// The proxy's client connections are counted as nginx's stub_status
// counts them: an idle keep-alive connection is open, a WebSocket is open
// until its tunnel ends, an HTTP/2 (h2c) connection, which net/http serves,
// until it closes; every one was accepted.
func TestClientConnectionsAreCounted(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	ws, wr := webSocketThrough(t, tp)
	conns := func() stats.Connections { return tp.Stats().Snapshot().Connections }
	settledConns := func(want stats.Connections) stats.Connections {
		t.Helper()
		got := conns()
		for deadline := time.Now().Add(2 * time.Second); got != want && time.Now().Before(deadline); got = conns() {
			time.Sleep(10 * time.Millisecond)
		}
		return got
	}
	var raws []*rawClient
	for range 3 {
		rc := dialRaw(t, tp)
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 400 || resp.Close {
			t.Fatalf("the echo's answer to a plain GET: %d, close %v", resp.StatusCode, resp.Close)
		}
		raws = append(raws, rc)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	if resp, _ := get(t, h2c, tp.url("/"), ""); resp.ProtoMajor != 2 {
		t.Fatalf("h2c: %s", resp.Proto)
	}
	if got := settledConns(stats.Connections{Active: 5, Accepted: 5}); got != (stats.Connections{Active: 5, Accepted: 5}) {
		t.Errorf("a WebSocket, 3 idle HTTP/1.1 connections and an h2c one: %+v, want 5 active of 5", got)
	}
	fmt.Fprint(ws, "still here\n")
	if got, err := wr.ReadString('\n'); err != nil || got != "STILL HERE\n" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	ws.Close()
	for _, rc := range raws {
		rc.c.Close()
	}
	h2c.CloseIdleConnections()
	if got := settledConns(stats.Connections{Active: 0, Accepted: 5}); got != (stats.Connections{Active: 0, Accepted: 5}) {
		t.Errorf("after every client closed: %+v, want 0 active of 5", got)
	}
}

// A connection the dispatcher queues for a net/http server that is closed
// before taking it, or queues after, is closed and counted as ended: the
// client is not left hanging and the gauge does not keep it.
func TestConnQueueClosesWhatNoServerTook(t *testing.T) {
	var dropped atomic.Int32
	q := newConnQueue(func() { dropped.Add(1) })
	var peers []net.Conn
	queue := func() {
		c, peer := net.Pipe()
		peers = append(peers, peer)
		q.push(c)
	}
	queue()
	queue()
	q.Close()
	queue()
	if got := dropped.Load(); got != 3 {
		t.Errorf("dropped %d connections, want the 3 nobody accepted", got)
	}
	for i, peer := range peers {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("connection %d: client reads %v, want EOF (closed)", i, err)
		}
	}
	if c, err := q.Accept(); err == nil {
		t.Errorf("Accept after Close returned %v, want net.ErrClosed", c.LocalAddr())
	}
}
