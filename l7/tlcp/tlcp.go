package tlcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Server returns the server side of a TLCP connection over conn. The
// handshake runs on the first Read or Write, or on Handshake. cfg must
// hold at least one certificate pair or a GetCertificate.
func Server(conn net.Conn, cfg *Config) *Conn {
	return newConn(conn, cfg, false)
}

// Client returns the client side of a TLCP connection over conn. cfg
// must set ServerName or InsecureSkipVerify.
func Client(conn net.Conn, cfg *Config) *Conn {
	return newConn(conn, cfg, true)
}

type listener struct {
	net.Listener
	cfg *Config
}

// Accept waits for a connection and wraps it with Server; the handshake
// runs on first use.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.cfg), nil
}

// NewListener returns a listener whose Accept wraps inner's connections
// with Server(conn, cfg).
func NewListener(inner net.Listener, cfg *Config) net.Listener {
	return &listener{Listener: inner, cfg: cfg}
}

// Listen listens on network and laddr and serves TLCP with cfg. It
// returns an error when cfg has no server certificate.
func Listen(network, laddr string, cfg *Config) (net.Listener, error) {
	if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil) {
		return nil, errors.New("tlcp: Listen needs a certificate pair or GetCertificate")
	}
	l, err := net.Listen(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("tlcp: listen: %w", err)
	}
	return NewListener(l, cfg), nil
}

// Dial connects to addr and runs a TLCP client handshake with cfg. When
// cfg.ServerName is empty the host part of addr is used.
func Dial(network, addr string, cfg *Config) (*Conn, error) {
	return (&Dialer{Config: cfg}).dial(context.Background(), network, addr)
}

// Dialer dials TLCP upstreams: NetDialer (a zero net.Dialer if nil) opens
// the transport and Config configures the client.
type Dialer struct {
	NetDialer *net.Dialer
	Config    *Config
}

// DialContext connects to addr and completes the handshake before ctx
// is done. It returns a *Conn as a net.Conn.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Dial is DialContext with a background context.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d *Dialer) dial(ctx context.Context, network, addr string) (*Conn, error) {
	nd := d.NetDialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	cfg := d.Config
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.ServerName == "" {
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		cfg = cfg.Clone()
		cfg.ServerName = strings.TrimSuffix(host, ".")
	}
	raw, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tlcp: dial %s: %w", addr, err)
	}
	c := Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tlcp: handshake with %s: %w", addr, err)
	}
	return c, nil
}
