package tlcp

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestCloseNotifyGivesEOF(t *testing.T) {
	cc, sc, cerr, serr := handshakePair(t, clientConfig(t), serverConfig(t))
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if _, err := cc.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sc)
	if err != nil || string(got) != "last words" {
		t.Fatalf("read %q, %v; want the data then EOF", got, err)
	}
	if _, err := cc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := cc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func TestHelloRequestRefused(t *testing.T) {
	cc, sc, cerr, serr := handshakePair(t, clientConfig(t), serverConfig(t))
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	// The server asks for renegotiation; the client answers with a
	// no_renegotiation warning and goes on.
	sc.outMu.Lock()
	sc.writeRecordLocked(recordTypeHandshake, []byte{typeHelloRequest, 0, 0, 0})
	sc.writeRecordLocked(recordTypeApplicationData, []byte("after"))
	sc.flushLocked()
	sc.outMu.Unlock()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "after" {
		t.Fatalf("client read %q: %v", buf, err)
	}
	// The warning is skipped by the server's reader.
	exchange(t, cc, sc, 100)
}

func TestLargeWritesAreSplit(t *testing.T) {
	ccfg := clientConfig(t)
	ccfg.CipherSuites = []uint16{ECC_SM4_CBC_SM3}
	cc, sc, cerr, serr := handshakePair(t, ccfg, serverConfig(t))
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	exchange(t, cc, sc, 3*maxPlaintext+7)
}

func TestReadDeadlineBetweenRecordsIsNotFatal(t *testing.T) {
	cc, sc, cerr, serr := handshakePair(t, clientConfig(t), serverConfig(t))
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if _, err := sc.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	sc.SetReadDeadline(time.Now().Add(testTimeout))
	exchange(t, cc, sc, 10)
}
