package tlcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emmansun/gmsm/smx509"
)

// Conn is a TLCP connection over a net.Conn. Read and Write may be called
// concurrently with each other; a Conn must not be copied.
type Conn struct {
	conn     net.Conn
	br       *bufio.Reader
	isClient bool
	config   *Config

	handshakeMu   sync.Mutex // held during the handshake
	handshakeErr  error
	handshakeDone atomic.Bool
	closed        atomic.Bool

	// Negotiated state, written during the handshake under handshakeMu.
	suite          *cipherSuite
	didResume      bool
	alpn           string
	serverName     string
	peerCerts      []*smx509.Certificate
	verifiedChains [][]*smx509.Certificate

	inMu  sync.Mutex // guards in, input and hand
	in    halfConn
	input []byte // decrypted application data not yet read
	hand  []byte // handshake bytes not yet parsed

	outMu   sync.Mutex // guards out and sendBuf
	out     halfConn
	sendBuf []byte // records buffered during the handshake
}

// halfConn is the record protection state of one direction.
type halfConn struct {
	seq  [8]byte
	prot recordProtector // nil until ChangeCipherSpec
	next recordProtector // installed by the next ChangeCipherSpec
	err  error           // permanent error
}

func (hc *halfConn) incSeq() error {
	for i := 7; i >= 0; i-- {
		hc.seq[i]++
		if hc.seq[i] != 0 {
			return nil
		}
	}
	return errSeqOverflow
}

func (hc *halfConn) changeCipherSpec() error {
	if hc.next == nil {
		return errors.New("tlcp: ChangeCipherSpec before keys are ready")
	}
	hc.prot, hc.next = hc.next, nil
	hc.seq = [8]byte{}
	return nil
}

func newConn(c net.Conn, cfg *Config, isClient bool) *Conn {
	return &Conn{conn: c, br: bufio.NewReaderSize(c, recordHeaderLen+maxCiphertext), config: cfg, isClient: isClient}
}

// maxEmptyRecords bounds the number of consecutive empty or warning
// records accepted, so a peer cannot keep a reader spinning.
const maxEmptyRecords = 100

// readRecord reads, checks and decrypts one record. Alerts are handled
// here: close_notify returns io.EOF, a fatal alert an *AlertError. Errors
// are permanent. The caller holds inMu.
func (c *Conn) readRecord() (recordType, []byte, error) {
	for warnings := 0; ; warnings++ {
		if c.in.err != nil {
			return 0, nil, c.in.err
		}
		if warnings > maxEmptyRecords {
			return 0, nil, c.abort(alertUnexpectedMessage, errors.New("tlcp: too many warning alerts"))
		}
		var hdr [recordHeaderLen]byte
		if n, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return 0, nil, c.readFailed(err, n > 0)
		}
		typ := recordType(hdr[0])
		vers := uint16(hdr[1])<<8 | uint16(hdr[2])
		n := int(hdr[3])<<8 | int(hdr[4])
		if typ < recordTypeChangeCipherSpec || typ > recordTypeApplicationData {
			return 0, nil, c.abort(alertUnexpectedMessage, fmt.Errorf("tlcp: unknown record type %d", typ))
		}
		if vers != VersionTLCP {
			return 0, nil, c.abort(alertProtocolVersion, fmt.Errorf("tlcp: record version %#04x", vers))
		}
		limit := maxPlaintext
		if c.in.prot != nil {
			limit = maxCiphertext
		}
		if n > limit {
			return 0, nil, c.abort(alertRecordOverflow, fmt.Errorf("tlcp: record of %d bytes", n))
		}
		frag := make([]byte, n)
		if _, err := io.ReadFull(c.br, frag); err != nil {
			return 0, nil, c.readFailed(err, true)
		}
		data := frag
		if c.in.prot != nil {
			var a alert
			var ok bool
			data, a, ok = c.in.prot.open(&c.in.seq, typ, frag)
			if !ok {
				return 0, nil, c.abort(a, errors.New("tlcp: record authentication failed"))
			}
			if err := c.in.incSeq(); err != nil {
				return 0, nil, c.abort(alertInternalError, err)
			}
		}
		if len(data) > maxPlaintext {
			return 0, nil, c.abort(alertRecordOverflow, errors.New("tlcp: plaintext too long"))
		}
		if typ != recordTypeAlert {
			return typ, data, nil
		}
		if len(data) != 2 {
			return 0, nil, c.abort(alertDecodeError, errors.New("tlcp: malformed alert"))
		}
		switch {
		case alert(data[1]) == alertCloseNotify:
			c.in.err = io.EOF
			return 0, nil, io.EOF
		case data[0] == alertLevelWarning:
			continue
		default:
			c.in.err = &AlertError{Description: data[1]}
			c.conn.Close()
			return 0, nil, c.in.err
		}
	}
}

// readFailed turns a transport read error into the connection's permanent
// error; a record cut short by EOF gets a decode_error alert. A deadline
// that expires between records is not fatal.
func (c *Conn) readFailed(err error, midRecord bool) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return c.abort(alertDecodeError, fmt.Errorf("tlcp: truncated record: %w", err))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !midRecord {
		return err
	}
	c.in.err = err
	return err
}

// abort sends the fatal alert a, closes the transport and makes err (as a
// *LocalAlertError) the permanent error of both directions. The caller
// holds inMu or handshakeMu.
func (c *Conn) abort(a alert, err error) error {
	le := &LocalAlertError{Description: uint8(a), Err: err}
	// A short deadline: the alert is a courtesy and must not block, and
	// a Write stuck on a peer that does not read must let go of outMu.
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.outMu.Lock()
	if c.out.err == nil {
		c.sendBuf = nil
		c.writeRecordLocked(recordTypeAlert, []byte{alertLevelError, byte(a)})
		c.flushLocked()
		c.out.err = le
	}
	c.outMu.Unlock()
	if c.in.err == nil {
		c.in.err = le
	}
	c.conn.Close()
	return le
}

// writeRecordLocked protects data as records of type typ and appends
// them to sendBuf. The caller holds outMu.
func (c *Conn) writeRecordLocked(typ recordType, data []byte) error {
	for first := true; first || len(data) > 0; first = false {
		m := min(len(data), maxPlaintext)
		frag := data[:m]
		data = data[m:]
		if c.out.prot != nil {
			var err error
			frag, err = c.out.prot.seal(c.config.rand(), &c.out.seq, typ, frag)
			if err != nil {
				return err
			}
			if err := c.out.incSeq(); err != nil {
				return err
			}
		}
		c.sendBuf = append(c.sendBuf, byte(typ), byte(VersionTLCP>>8), byte(VersionTLCP&0xff), byte(len(frag)>>8), byte(len(frag)))
		c.sendBuf = append(c.sendBuf, frag...)
	}
	return nil
}

func (c *Conn) flushLocked() error {
	if len(c.sendBuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.sendBuf)
	c.sendBuf = c.sendBuf[:0]
	if err != nil {
		c.out.err = err
	}
	return err
}

// writeHandshake queues a handshake message (already marshalled).
func (c *Conn) writeHandshake(msg []byte) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.err != nil {
		return c.out.err
	}
	return c.writeRecordLocked(recordTypeHandshake, msg)
}

// writeCCS queues ChangeCipherSpec and switches the write direction to
// the pending keys.
func (c *Conn) writeCCS() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.err != nil {
		return c.out.err
	}
	if err := c.writeRecordLocked(recordTypeChangeCipherSpec, []byte{1}); err != nil {
		return err
	}
	return c.out.changeCipherSpec()
}

func (c *Conn) flush() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.err != nil {
		return c.out.err
	}
	return c.flushLocked()
}

// readHandshakeBytes returns the next complete handshake message,
// header included. The caller holds inMu.
func (c *Conn) readHandshakeBytes() ([]byte, error) {
	for {
		if len(c.hand) >= 4 {
			n := int(c.hand[1])<<16 | int(c.hand[2])<<8 | int(c.hand[3])
			if n > maxHandshakeSize {
				return nil, c.abort(alertIllegalParameter, fmt.Errorf("tlcp: handshake message of %d bytes", n))
			}
			if len(c.hand) >= 4+n {
				msg := c.hand[:4+n]
				c.hand = c.hand[4+n:]
				return msg, nil
			}
		}
		typ, data, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		if typ != recordTypeHandshake {
			return nil, c.abort(alertUnexpectedMessage, fmt.Errorf("tlcp: record type %d during handshake", typ))
		}
		if len(data) == 0 {
			return nil, c.abort(alertUnexpectedMessage, errors.New("tlcp: empty handshake record"))
		}
		c.hand = append(c.hand, data...)
	}
}

// readHandshake reads and parses the next handshake message, feeding it
// into t when t is not nil.
func (c *Conn) readHandshake(t *transcript) (handshakeMessage, []byte, error) {
	raw, err := c.readHandshakeBytes()
	if err != nil {
		return nil, nil, err
	}
	msg, err := parseHandshakeMessage(raw)
	if err != nil {
		return nil, nil, c.abort(alertDecodeError, err)
	}
	if _, ok := msg.(*helloRequestMsg); ok {
		return nil, nil, c.abort(alertUnexpectedMessage, errors.New("tlcp: HelloRequest during handshake"))
	}
	if t != nil {
		t.write(raw)
	}
	return msg, raw, nil
}

// readCCS reads a ChangeCipherSpec and switches the read direction.
func (c *Conn) readCCS() error {
	if len(c.hand) > 0 {
		return c.abort(alertUnexpectedMessage, errors.New("tlcp: handshake data before ChangeCipherSpec"))
	}
	typ, data, err := c.readRecord()
	if err != nil {
		return err
	}
	if typ != recordTypeChangeCipherSpec || len(data) != 1 || data[0] != 1 {
		return c.abort(alertUnexpectedMessage, errors.New("tlcp: expected ChangeCipherSpec"))
	}
	if err := c.in.changeCipherSpec(); err != nil {
		return c.abort(alertUnexpectedMessage, err)
	}
	return nil
}

// unexpected aborts with unexpected_message for a message of the wrong
// type.
func (c *Conn) unexpected(msg handshakeMessage, want string) error {
	return c.abort(alertUnexpectedMessage, fmt.Errorf("tlcp: got %T, want %s", msg, want))
}

// Handshake runs the handshake if it has not run yet. Read and Write call
// it themselves. On failure the alert has been sent and the transport is
// closed; the error is a *LocalAlertError, an *AlertError or a transport
// error.
func (c *Conn) Handshake() error {
	return c.HandshakeContext(context.Background())
}

// HandshakeContext is Handshake with a context: when ctx is done before the
// handshake completes, the transport is closed and ctx.Err() comes back.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeDone.Load() {
		return nil
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.conn.Close() })
		defer stop()
	}
	c.inMu.Lock()
	var err error
	if c.isClient {
		err = c.clientHandshake()
	} else {
		err = c.serverHandshake()
	}
	if err == nil {
		err = c.flush()
	}
	c.inMu.Unlock()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("tlcp: handshake: %w", ctxErr)
		}
		c.handshakeErr = err
		c.conn.Close()
		return err
	}
	c.handshakeDone.Store(true)
	return nil
}

// Read reads application data, running the handshake first if needed.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.inMu.Lock()
	defer c.inMu.Unlock()
	for empty := 0; len(c.input) == 0; empty++ {
		if empty > maxEmptyRecords {
			return 0, c.abort(alertUnexpectedMessage, errors.New("tlcp: too many empty records"))
		}
		typ, data, err := c.readRecord()
		if err != nil {
			return 0, err
		}
		switch typ {
		case recordTypeApplicationData:
			c.input = data
		case recordTypeHandshake:
			c.hand = append(c.hand, data...)
			msg, _, err := c.readPostHandshake()
			if err != nil {
				return 0, err
			}
			if _, ok := msg.(*helloRequestMsg); !ok {
				return 0, c.unexpected(msg, "application data")
			}
			// Renegotiation is not supported; say so and go on.
			c.outMu.Lock()
			if c.out.err == nil {
				c.writeRecordLocked(recordTypeAlert, []byte{alertLevelWarning, byte(alertNoRenegotiation)})
				c.flushLocked()
			}
			c.outMu.Unlock()
		default:
			return 0, c.abort(alertUnexpectedMessage, fmt.Errorf("tlcp: record type %d after handshake", typ))
		}
	}
	n := copy(b, c.input)
	c.input = c.input[n:]
	return n, nil
}

// readPostHandshake parses a handshake message received after the
// handshake, once complete.
func (c *Conn) readPostHandshake() (handshakeMessage, []byte, error) {
	raw, err := c.readHandshakeBytes()
	if err != nil {
		return nil, nil, err
	}
	msg, err := parseHandshakeMessage(raw)
	if err != nil {
		return nil, nil, c.abort(alertDecodeError, err)
	}
	return msg, raw, nil
}

// Write writes application data, running the handshake first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.out.err != nil {
		return 0, c.out.err
	}
	n := 0
	for len(b) > 0 {
		m := min(len(b), maxPlaintext)
		if err := c.writeRecordLocked(recordTypeApplicationData, b[:m]); err != nil {
			return n, err
		}
		if err := c.flushLocked(); err != nil {
			return n, err
		}
		n += m
		b = b[m:]
	}
	return n, nil
}

// Close sends close_notify (after a completed handshake) and closes the
// transport.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if c.handshakeDone.Load() {
		// Unblock a Write stuck on a peer that does not read, then say
		// goodbye without waiting long.
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.outMu.Lock()
		if c.out.err == nil {
			c.writeRecordLocked(recordTypeAlert, []byte{alertLevelWarning, byte(alertCloseNotify)})
			c.flushLocked()
			c.out.err = net.ErrClosed
		}
		c.outMu.Unlock()
	}
	return c.conn.Close()
}

// CloseWrite sends close_notify and shuts down the writing side of the
// transport if it supports that (like *net.TCPConn).
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errors.New("tlcp: CloseWrite before handshake")
	}
	c.outMu.Lock()
	if c.out.err == nil {
		c.writeRecordLocked(recordTypeAlert, []byte{alertLevelWarning, byte(alertCloseNotify)})
		c.flushLocked()
		c.out.err = net.ErrClosed
	}
	c.outMu.Unlock()
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ConnectionState describes the connection; it is complete once the
// handshake has succeeded.
func (c *Conn) ConnectionState() ConnectionState {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	st := ConnectionState{HandshakeComplete: c.handshakeDone.Load()}
	if !st.HandshakeComplete {
		return st
	}
	st.Version = VersionTLCP
	st.CipherSuite = c.suite.id
	st.DidResume = c.didResume
	st.NegotiatedProtocol = c.alpn
	st.ServerName = c.serverName
	st.PeerCertificates = c.peerCerts
	st.VerifiedChains = c.verifiedChains
	return st
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

// LocalAddr returns the local address of the transport.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote address of the transport.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the transport.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the transport.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the transport; a timed out
// Write leaves the connection unusable.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

var _ net.Conn = (*Conn)(nil)
