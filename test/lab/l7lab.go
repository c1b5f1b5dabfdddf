package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"time"
)

// Addresses of the L7 tests: VIPs the intercept makes local on the load
// balancer, which the client reaches through its default route.
const (
	L7VIP  = "10.99.100.80"
	L7VIP6 = "fd99:100::80"
)

// Upstream is one HTTP server in the backend namespace.
type Upstream struct {
	Name, Addr string
	cmd        *exec.Cmd
}

// Kill stops the server abruptly, as a crashed backend would.
func (u *Upstream) Kill() { _ = u.cmd.Process.Kill() }

// StartUpstreams runs n HTTP servers (u1, u2, …) in the backend namespace
// on ports 8081, 8082, …; each answers "hello from NAME".
func (l *Lab) StartUpstreams(n int) []*Upstream {
	l.t.Helper()
	b := Build(l.t)
	var out []*Upstream
	for i := range n {
		u := &Upstream{Name: fmt.Sprintf("u%d", i+1), Addr: fmt.Sprintf("%s:%d", BackendAddr, 8081+i)}
		u.cmd = l.Start(l.Backend, b.Tool, "serve", "-name", u.Name, "-http", u.Addr)
		out = append(out, u)
	}
	return out
}

// DialFrom opens a TCP connection from a namespace; the socket stays in
// that namespace whoever uses it.
func DialFrom(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := InNS(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client whose connections start in a namespace.
// With h2c it speaks HTTP/2 without TLS (prior knowledge); tlsConfig, when
// set, is used for https URLs (with HTTP/2 offered).
func HTTPClient(ns string, tlsConfig *tls.Config, h2c bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return DialFrom(ns, addr, 3*time.Second)
		},
		TLSClientConfig:   tlsConfig,
		ForceAttemptHTTP2: tlsConfig != nil,
		MaxIdleConns:      64, MaxIdleConnsPerHost: 64,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
