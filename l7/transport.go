package l7

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/emmansun/gmsm/smx509"

	"github.com/sluicelb/sluice/l7/fifopoll"
	"github.com/sluicelb/sluice/l7/tlcp"
	"github.com/sluicelb/sluice/l7/upstream"
)

// upstreamTransport holds an upstream's keep-alive connections: HTTP/1.1
// for most requests, HTTP/2 (h2c, or h2 over TLS) for gRPC and other
// HTTP/2 requests whose protocol needs it end to end (trailers).
type upstreamTransport struct {
	cfg         upstream.Config // what it was built from; a config equal in these settings reuses it
	scheme      string
	readTimeout time.Duration
	h1, h2      *http.Transport
	fast        *connPool // plain-HTTP upstreams: the HTTP/1.1 loop's connections
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	poll        *fifopoll.Poller // the proxy's: fast's connections wait through it
}

// transportFor returns the transport of an upstream config: the running one
// when nothing it depends on changed (so keep-alive connections survive
// server list changes), else a new one.
func (p *Proxy) transportFor(uc upstream.Config) (*upstreamTransport, error) {
	if old := p.upstreams[uc.Name]; old != nil && sameTransport(old.cfg, uc) {
		return old, nil
	}
	return newUpstreamTransport(uc, p.poll)
}

func sameTransport(a, b upstream.Config) bool {
	return a.KeepAlive == b.KeepAlive && a.ConnectTimeout == b.ConnectTimeout &&
		a.ReadTimeout == b.ReadTimeout && a.WriteTimeout == b.WriteTimeout && sameTLS(a.TLS, b.TLS)
}

func sameTLS(a, b *upstream.TLSConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func newUpstreamTransport(uc upstream.Config, poll *fifopoll.Poller) (*upstreamTransport, error) {
	connect := time.Duration(uc.ConnectTimeout)
	if connect <= 0 {
		connect = upstream.DefaultConnectTimeout
	}
	read := time.Duration(uc.ReadTimeout)
	if read <= 0 {
		read = upstream.DefaultReadTimeout
	}
	write := time.Duration(uc.WriteTimeout)
	if write <= 0 {
		write = upstream.DefaultWriteTimeout
	}
	keep := uc.KeepAlive
	if keep <= 0 {
		keep = 32
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	// withDeadlines dials within the location's connect timeout (else the
	// upstream's) and gives the connection the upstream's write timeout.
	withDeadlines := func(ctx context.Context, dial func(context.Context) (net.Conn, error)) (net.Conn, error) {
		d := connect
		if v, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok {
			d = v
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		c, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return &writeTimeoutConn{Conn: c, timeout: write}, nil
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return withDeadlines(ctx, func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, network, addr) })
	}
	base := func() *http.Transport {
		return &http.Transport{
			DialContext:         dial,
			MaxIdleConnsPerHost: keep,
			MaxIdleConns:        0,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			WriteBufferSize:     32 << 10,
			ReadBufferSize:      32 << 10,
		}
	}
	t := &upstreamTransport{cfg: uc, scheme: "http", readTimeout: read, h1: base(), h2: base(), dial: dial, poll: poll}
	var h1, h2 http.Protocols
	h1.SetHTTP1(true)
	t.h1.Protocols = &h1
	h2.SetUnencryptedHTTP2(true)
	t.h2.Protocols = &h2
	if uc.TLS == nil {
		t.fast = newConnPool(keep, 90*time.Second)
		return t, nil
	}
	t.scheme = "https"
	switch strings.ToLower(uc.TLS.Mode) {
	case "", "tls":
		tc, err := clientTLS(uc)
		if err != nil {
			return nil, err
		}
		t.h1.TLSClientConfig = tc
		h2tc := tc.Clone()
		h2tc.NextProtos = []string{"h2"}
		t.h2.TLSClientConfig = h2tc
		var tls2 http.Protocols
		tls2.SetHTTP2(true)
		t.h2.Protocols = &tls2
		h1tc := tc.Clone()
		h1tc.NextProtos = []string{"http/1.1"}
		t.h1.TLSClientConfig = h1tc
	case "tlcp":
		tc, err := clientTLCP(uc)
		if err != nil {
			return nil, err
		}
		d := &tlcp.Dialer{NetDialer: dialer, Config: tc}
		dialTLCP := func(ctx context.Context, network, addr string) (net.Conn, error) {
			return withDeadlines(ctx, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, network, addr) })
		}
		// Over TLCP, HTTP/1.1 only: net/http speaks HTTP/2 over crypto/tls
		// connections alone.
		t.h1.DialTLSContext, t.h2 = dialTLCP, nil
	default:
		return nil, fmt.Errorf("%w: upstream %q: tls mode %q: want tls or tlcp", ErrInvalidConfig, uc.Name, uc.TLS.Mode)
	}
	return t, nil
}

func clientTLS(uc upstream.Config) (*tls.Config, error) {
	c := uc.TLS
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.SkipVerify, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CA)) {
			return nil, fmt.Errorf("%w: upstream %q: tls ca: no certificate in the PEM", ErrInvalidConfig, uc.Name)
		}
		tc.RootCAs = pool
	}
	if c.Cert != "" || c.Key != "" {
		pair, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
		if err != nil {
			return nil, fmt.Errorf("%w: upstream %q: tls client certificate: %w", ErrInvalidConfig, uc.Name, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func clientTLCP(uc upstream.Config) (*tlcp.Config, error) {
	c := uc.TLS
	tc := &tlcp.Config{ServerName: c.ServerName, InsecureSkipVerify: c.SkipVerify, NextProtos: []string{"http/1.1"},
		SessionCache: tlcp.NewSessionCache(256, 10*time.Minute)}
	if c.CA != "" {
		pool := smx509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CA)) {
			return nil, fmt.Errorf("%w: upstream %q: tlcp ca: no certificate in the PEM", ErrInvalidConfig, uc.Name)
		}
		tc.RootCAs = pool
	}
	if c.Cert != "" || c.EncCert != "" {
		pair, err := tlcp.X509KeyPair([]byte(c.Cert), []byte(c.Key), []byte(c.EncCert), []byte(c.EncKey))
		if err != nil {
			return nil, fmt.Errorf("%w: upstream %q: tlcp client certificates: %w", ErrInvalidConfig, uc.Name, err)
		}
		tc.Certificates = []tlcp.Certificate{pair}
	}
	return tc, nil
}

// writeTimeoutConn is an upstream connection whose every write must
// complete within the upstream's write timeout: a server that stops
// reading fails the request instead of holding it (nginx's
// proxy_send_timeout, the time between two writes).
//
// Moving a deadline costs a timer update, so it moves only once it has
// drifted by a tenth of the timeout (at most a second): a write may time
// out that much early, never late. One writer at a time, as for any
// connection's writes.
type writeTimeoutConn struct {
	net.Conn
	timeout  time.Duration
	deadline time.Time
}

func (c *writeTimeoutConn) Write(b []byte) (int, error) {
	// time.Until reads one clock (the monotonic one), time.Now two.
	if time.Until(c.deadline) < c.timeout-min(c.timeout/10, time.Second) {
		c.deadline = time.Now().Add(c.timeout)
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
	return c.Conn.Write(b)
}

// SetDeadline and SetWriteDeadline set what the next Write replaces.
func (c *writeTimeoutConn) SetDeadline(t time.Time) error {
	c.deadline = time.Time{}
	return c.Conn.SetDeadline(t)
}

func (c *writeTimeoutConn) SetWriteDeadline(t time.Time) error {
	c.deadline = time.Time{}
	return c.Conn.SetWriteDeadline(t)
}

// pick chooses the connection kind for one request: HTTP/2 when the client
// spoke it and the request is gRPC (which needs trailers and HTTP/2 on the
// way to the server), HTTP/1.1 otherwise.
func (t *upstreamTransport) pick(r *http.Request) http.RoundTripper {
	if t.h2 != nil && r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return t.h2
	}
	return t.h1
}

func (t *upstreamTransport) closeIdle() {
	if t.fast != nil {
		t.fast.close()
	}
	t.h1.CloseIdleConnections()
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
	}
}
