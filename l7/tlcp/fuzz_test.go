package tlcp

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// scriptedConn is a net.Conn that reads a fixed script and discards
// writes, so fuzzing needs no network.
type scriptedConn struct {
	r *bytes.Reader
}

func (s *scriptedConn) Read(b []byte) (int, error)       { return s.r.Read(b) }
func (s *scriptedConn) Write(b []byte) (int, error)      { return len(b), nil }
func (s *scriptedConn) Close() error                     { return nil }
func (s *scriptedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRecord feeds arbitrary bytes to a server as the client's stream: the
// record parser and everything behind it must fail cleanly, never panic
// or hang (the input is finite, so every read ends in EOF).
func FuzzRecord(f *testing.F) {
	f.Add([]byte{22, 1, 1, 0, 0})
	f.Add([]byte{21, 1, 1, 0, 2, 2, 40})
	f.Add([]byte{23, 1, 1, 0xff, 0xff})
	scfg := serverConfig(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := Server(&scriptedConn{r: bytes.NewReader(data)}, scfg)
		if err := sc.Handshake(); err == nil {
			t.Fatalf("handshake succeeded on scripted input")
		}
		if _, err := sc.Read(make([]byte, 16)); err == nil {
			t.Fatalf("read succeeded after failed handshake")
		}
	})
}

// FuzzHandshake checks that every handshake message parser rejects or
// accepts input without panicking, and that accepted messages survive a
// marshal and parse round trip.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte{typeServerHelloDone, 0, 0, 0})
	f.Add([]byte{typeFinished, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseHandshakeMessage(data)
		if err != nil {
			return
		}
		out, err := m.marshal()
		if err != nil {
			t.Fatalf("marshal of parsed %T: %v", m, err)
		}
		if _, err := parseHandshakeMessage(out); err != nil {
			t.Fatalf("re-parse of %T: %v", m, err)
		}
	})
}

// FuzzKeyExchange runs the key exchange body parsers on arbitrary input.
func FuzzKeyExchange(f *testing.F) {
	f.Add([]byte{3, 0, 41, 1, 4, 0, 2, 0x30, 0})
	f.Add([]byte{0, 3, 0x30, 1, 0})
	fixtures(f)
	encKey := serverCert.Enc.PrivateKey
	f.Fuzz(func(t *testing.T, data []byte) {
		s := cryptoString(data)
		readECDHParams(&s)
		readSignature(cryptoString(data))
		eccProcessClientKeyExchange(bytes.NewReader(make([]byte, 64)), encKey, data)
		pub, _ := sm2PublicKey(serverCert.Sign.Leaf)
		eccVerifyServerKeyExchange(data, pub, make([]byte, 32), make([]byte, 32), serverCert.Enc.Chain[0])
		ecdheVerifyServerKeyExchange(data, pub, make([]byte, 32), make([]byte, 32))
	})
}
