package tlcp

import (
	"crypto/tls"
	"io"
	"net"
	"time"
)

// IsTLCPRecord reports whether first, the first bytes a client sent,
// start a TLCP handshake record (type 22, version 0x0101). TLS starts with
// 22, 0x03, 0x0x. It needs at least 3 bytes.
func IsTLCPRecord(first []byte) bool {
	return len(first) >= 3 && first[0] == byte(recordTypeHandshake) &&
		first[1] == byte(VersionTLCP>>8) && first[2] == byte(VersionTLCP&0xff)
}

// PeekConn reads the first n bytes of c within timeout and returns them
// with a connection that replays them before the rest of the stream.
func PeekConn(c net.Conn, n int, timeout time.Duration) ([]byte, net.Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	if derr := c.SetReadDeadline(time.Time{}); err == nil {
		err = derr
	}
	if err != nil {
		return nil, nil, err
	}
	return buf, &prefixConn{Conn: c, prefix: buf}, nil
}

// prefixConn replays prefix before reading from Conn.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// NetConn is the connection underneath, as tls.Conn's: for a look at
// its socket once the prefix is read.
func (p *prefixConn) NetConn() net.Conn { return p.Conn }

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// DefaultPeekTimeout bounds how long MuxListener waits for the first bytes
// of a connection.
const DefaultPeekTimeout = 5 * time.Second

// MuxListener serves TLS and TLCP on one port. Accept returns a *tls.Conn
// or a *Conn, told apart by the version of the client's first record; a
// protocol whose config is nil is refused. Peeking happens in Accept, one
// connection at a time, so a client that sends nothing holds up the queue
// for at most PeekTimeout before it is dropped.
type MuxListener struct {
	net.Listener
	TLS         *tls.Config
	TLCP        *Config
	PeekTimeout time.Duration
}

// Accept returns the next connection that started a TLS or TLCP
// handshake; others are closed and skipped. Errors of the inner listener
// come back as they are.
func (m *MuxListener) Accept() (net.Conn, error) {
	timeout := m.PeekTimeout
	if timeout <= 0 {
		timeout = DefaultPeekTimeout
	}
	for {
		c, err := m.Listener.Accept()
		if err != nil {
			return nil, err
		}
		first, pc, err := PeekConn(c, 3, timeout)
		if err != nil {
			// Silent, slow or broken clients are dropped, not reported.
			c.Close()
			continue
		}
		switch {
		case IsTLCPRecord(first) && m.TLCP != nil:
			return Server(pc, m.TLCP), nil
		case first[0] == byte(recordTypeHandshake) && first[1] == 3 && m.TLS != nil:
			return tls.Server(pc, m.TLS), nil
		default:
			c.Close()
		}
	}
}
