package l7

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluicelb/sluice/l7/tlcp"
	"github.com/sluicelb/sluice/l7/upstream"
)

func tlcpCert(t *testing.T, name string) (*tlcp.TestPKI, Cert) {
	t.Helper()
	pki, err := tlcp.NewTestPKI(name)
	if err != nil {
		t.Fatal(err)
	}
	return pki, Cert{Name: "gm-" + name, Kind: CertTLCP, SignCert: string(pki.SignCertPEM), SignKey: string(pki.SignKeyPEM),
		EncCert: string(pki.EncCertPEM), EncKey: string(pki.EncKeyPEM)}
}

// tlcpGet sends one HTTP/1.1 request over TLCP and returns the response and
// the signing certificate's names the server presented.
func tlcpGet(t *testing.T, addr string, cfg *tlcp.Config, path string) (*http.Response, string, []string) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tlcp.Client(raw, cfg)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatalf("tlcp handshake: %v", err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, cfg.ServerName)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("tlcp response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), c.ConnectionState().PeerCertificates[0].DNSNames
}

func TestOnePortServesTLSAndTLCP(t *testing.T) {
	tp := newTestProxy(t, Limits{})
	b := backend(t, "b")
	gmPKI, gm := tlcpCert(t, "gm.example.com")
	certPEM, keyPEM := selfSigned(t, "tls", "gm.example.com")
	cfg := tp.config([]VServer{{Name: "v", Service: "web", TLS: true, Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(b)))
	cfg.Certs = []Cert{gm, {Name: "tls", CertPEM: certPEM, KeyPEM: keyPEM}}
	tp.apply(t, cfg)

	// A TLCP client, verifying the server against the test CA.
	resp, body, names := tlcpGet(t, tp.addr.String(), &tlcp.Config{ServerName: "gm.example.com", RootCAs: gmPKI.CertPool()}, "/x")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "b ") || resp.Header.Get("X-Seen-Proto") != "https" {
		t.Errorf("over TLCP: %d %q proto %q", resp.StatusCode, body, resp.Header.Get("X-Seen-Proto"))
	}
	if len(names) == 0 || names[0] != "gm.example.com" {
		t.Errorf("TLCP signing certificate names %v", names)
	}
	// HTTP/2 over TLCP when ALPN picks it.
	raw, err := net.DialTimeout("tcp", tp.addr.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h2conn := tlcp.Client(raw, &tlcp.Config{ServerName: "gm.example.com", RootCAs: gmPKI.CertPool(), NextProtos: []string{"h2"}})
	h2conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := h2conn.Handshake(); err != nil || h2conn.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("tlcp with ALPN h2: %v, negotiated %q", err, h2conn.ConnectionState().NegotiatedProtocol)
	}
	cc, err := (&http2.Transport{}).NewClientConn(h2conn)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://gm.example.com/h2", nil)
	r, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("h2 over TLCP: %v", err)
	}
	h2body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	cc.Close()
	if r.StatusCode != 200 || r.ProtoMajor != 2 || !strings.HasPrefix(string(h2body), "b ") || r.Header.Get("X-Seen-Path") != "/h2" {
		t.Errorf("h2 over TLCP: %d %s %q", r.StatusCode, r.Proto, h2body)
	}

	// A TLS client on the same port, with HTTP/2.
	c := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{ServerName: "gm.example.com", InsecureSkipVerify: true}}}
	r2, body2 := get(t, c, "https://"+tp.addr.String()+"/y", "")
	if r2.StatusCode != 200 || r2.ProtoMajor != 2 || !strings.HasPrefix(body2, "b ") {
		t.Errorf("over TLS on the same port: %d %s %q", r2.StatusCode, r2.Proto, body2)
	}

	// A new TLCP pair applies to the next handshake.
	newPKI, gm2 := tlcpCert(t, "gm.example.com")
	gm2.Name = gm.Name
	cfg.Certs[0] = gm2
	tp.apply(t, cfg)
	if resp, _, _ := tlcpGet(t, tp.addr.String(), &tlcp.Config{ServerName: "gm.example.com", RootCAs: newPKI.CertPool()}, "/"); resp.StatusCode != 200 {
		t.Errorf("after the swap: %d", resp.StatusCode)
	}
	raw, _ = net.Dial("tcp", tp.addr.String())
	old := tlcp.Client(raw, &tlcp.Config{ServerName: "gm.example.com", RootCAs: gmPKI.CertPool()})
	old.SetDeadline(time.Now().Add(5 * time.Second))
	if err := old.Handshake(); err == nil {
		t.Error("a client trusting only the old CA still verified the swapped certificate")
	}
	old.Close()
}

func TestTLCPUpstream(t *testing.T) {
	pki, err := tlcp.NewTestPKI("upstream.gm.test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := pki.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tlcp.Listen("tcp", "127.0.0.1:0", &tlcp.Config{Certificates: []tlcp.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "gm upstream saw %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tp := newTestProxy(t, Limits{})
	u := pool("gm", ln.Addr().String())
	u.TLS = &upstream.TLSConfig{Mode: "tlcp", ServerName: "upstream.gm.test", CA: string(pki.CACertPEM)}
	bad := pool("bad", ln.Addr().String())
	bad.TLS = &upstream.TLSConfig{Mode: "tlcp", ServerName: "other.name"} // no CA: the chain cannot verify
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "gm", Path: "/gm/", Upstream: "gm"}, {Name: "bad", Path: "/bad/", Upstream: "bad", Tries: 1},
	}}}, u, bad))
	if resp, body := get(t, http.DefaultClient, tp.url("/gm/x"), ""); resp.StatusCode != 200 || body != "gm upstream saw /gm/x" {
		t.Errorf("through a TLCP upstream: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, http.DefaultClient, tp.url("/bad/x"), ""); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("an upstream whose certificate does not verify: %d, want 502", resp.StatusCode)
	}
}

func TestTLSUpstreamIsVerified(t *testing.T) {
	b := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tls upstream") }))
	t.Cleanup(b.Close)
	caPEM := string(pemCert(b.Certificate().Raw))
	tp := newTestProxy(t, Limits{})
	good := pool("good", strings.TrimPrefix(b.URL, "https://"))
	good.TLS = &upstream.TLSConfig{ServerName: "example.com", CA: caPEM}
	unverified := pool("unverified", strings.TrimPrefix(b.URL, "https://"))
	unverified.TLS = &upstream.TLSConfig{ServerName: "example.com"} // system roots: the test CA is unknown
	skip := pool("skip", strings.TrimPrefix(b.URL, "https://"))
	skip.TLS = &upstream.TLSConfig{SkipVerify: true}
	// The certificate covers example.com and 127.0.0.1, the address dialled:
	// only a name it does not hold shows that the server name is checked.
	wrongName := pool("wrongname", strings.TrimPrefix(b.URL, "https://"))
	wrongName.TLS = &upstream.TLSConfig{ServerName: "wrong.example.org", CA: caPEM}
	tp.apply(t, tp.config([]VServer{{Name: "v", Service: "web", Locations: []Location{
		{Name: "good", Path: "/good", Upstream: "good"},
		{Name: "unverified", Path: "/unverified", Upstream: "unverified", Tries: 1},
		{Name: "skip", Path: "/skip", Upstream: "skip"},
		{Name: "wrongname", Path: "/wrongname", Upstream: "wrongname", Tries: 1},
	}}}, good, unverified, skip, wrongName))
	for path, want := range map[string]int{"/good": 200, "/unverified": 502, "/skip": 200, "/wrongname": 502} {
		if resp, body := get(t, http.DefaultClient, tp.url(path), ""); resp.StatusCode != want {
			t.Errorf("%s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// TestATLCPClientThatLeavesReleasesTheUpstream: a TLCP client that closes
// its connection while its request waits for a slow upstream ends that
// upstream request, as a plain or TLS client's leaving does: with
// close_notify, and without.
func TestATLCPClientThatLeavesReleasesTheUpstream(t *testing.T) {
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("close_notify=%v", notify), func(t *testing.T) { tlcpClientLeaves(t, notify) })
	}
}

func tlcpClientLeaves(t *testing.T, notify bool) {
	tp := newTestProxy(t, Limits{})
	slow, gone := slowUpstream(t)
	gmPKI, gm := tlcpCert(t, "gm.example.com")
	cfg := tp.config([]VServer{{Name: "v", Service: "web", TLS: true, Locations: []Location{{Name: "l", Path: "/", Upstream: "u"}}}},
		pool("u", hostPort(slow)))
	cfg.Certs = []Cert{gm}
	tp.apply(t, cfg)
	raw, err := net.DialTimeout("tcp", tp.addr.String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tlcp.Client(raw, &tlcp.Config{ServerName: "gm.example.com", RootCAs: gmPKI.CertPool()})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatalf("tlcp handshake: %v", err)
	}
	fmt.Fprintf(c, "GET /slow HTTP/1.1\r\nHost: gm.example.com\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	if notify {
		c.Close()
	} else {
		raw.Close()
	}
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream request went on after the TLCP client left")
	}
}
