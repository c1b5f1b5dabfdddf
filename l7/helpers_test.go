package l7

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicelb/sluice/l7/upstream"
)

// testProxy runs a proxy on one loopback listener; its endpoint is the
// listener's address, as the intercept would make it.
type testProxy struct {
	*Proxy
	addr netip.AddrPort
}

func newTestProxy(t testing.TB, limits Limits) *testProxy {
	t.Helper()
	return newTestProxyWith(t, Options{Limits: limits})
}

func newTestProxyWith(t testing.TB, opts Options) *testProxy {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { ln.Close(); p.Close() })
	return &testProxy{Proxy: p, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
}

// config is a one-service config over tp's endpoint.
func (tp *testProxy) config(vss []VServer, ups ...upstream.Config) Config {
	return Config{Endpoints: map[string]netip.AddrPort{"web": tp.addr}, VServers: vss, Upstreams: ups}
}

func (tp *testProxy) apply(t testing.TB, cfg Config) {
	t.Helper()
	if err := tp.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func (tp *testProxy) url(path string) string { return "http://" + tp.addr.String() + path }

// backend is an HTTP server that answers with its name and what it saw.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(backendHandler(name))
	t.Cleanup(s.Close)
	return s
}

// countedBackend is a backend whose connections count the bytes they carry.
func countedBackend(t *testing.T, name string) (*httptest.Server, *wireCount) {
	t.Helper()
	s := httptest.NewUnstartedServer(backendHandler(name))
	wc := &wireCount{}
	s.Listener = countedListener{Listener: s.Listener, wc: wc}
	s.Start()
	t.Cleanup(s.Close)
	return s, wc
}

// wireCount is what connections read and wrote, all of them together.
type wireCount struct{ read, written atomic.Int64 }

type countedConn struct {
	net.Conn
	wc *wireCount
}

func (c countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.wc.read.Add(int64(n))
	return n, err
}

func (c countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.wc.written.Add(int64(n))
	return n, err
}

type countedListener struct {
	net.Listener
	wc *wireCount
}

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{Conn: c, wc: l.wc}, nil
}

// backendHandler answers "NAME N", N the body bytes it read, and tells in
// headers what it saw of the request.
func backendHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Forwarded", r.Header.Get("Forwarded"))
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Foo", r.Header.Get("X-Foo"))
		w.Header().Set("X-Seen-Path", r.URL.Path)
		w.Header().Set("X-Seen-Query", r.URL.RawQuery)
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %d", name, n)
	})
}

// slowUpstream answers nothing for 10 s; gone receives when a request's
// context ends before that (the proxy let the request go).
func slowUpstream(t *testing.T) (*httptest.Server, chan struct{}) {
	gone := make(chan struct{}, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(s.Close)
	return s, gone
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func pool(name string, addrs ...string) upstream.Config {
	u := upstream.Config{Name: name}
	for i, a := range addrs {
		u.Servers = append(u.Servers, upstream.ServerConfig{ID: i + 1, Addr: a})
	}
	return u
}

func get(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// selfSigned returns a PEM certificate and key for names.
func selfSigned(t *testing.T, cn string, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
