package tlcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/smx509"
	"golang.org/x/crypto/cryptobyte"
)

// testTimeout bounds every handshake and exchange in the tests.
const testTimeout = 10 * time.Second

var (
	pkiOnce             sync.Once
	serverPKI, cliPKI   *TestPKI
	otherPKI            *TestPKI
	pkiErr              error
	serverCert, cliCert Certificate
)

// fixtures returns shared test PKIs: one for the server "tlcp.test", one
// for a client "client.test", and an unrelated CA.
func fixtures(t testing.TB) {
	t.Helper()
	pkiOnce.Do(func() {
		if serverPKI, pkiErr = NewTestPKI("tlcp.test"); pkiErr != nil {
			return
		}
		if cliPKI, pkiErr = NewTestPKI("client.test"); pkiErr != nil {
			return
		}
		if otherPKI, pkiErr = NewTestPKI("tlcp.test"); pkiErr != nil {
			return
		}
		if serverCert, pkiErr = serverPKI.Certificate(); pkiErr != nil {
			return
		}
		cliCert, pkiErr = cliPKI.Certificate()
	})
	if pkiErr != nil {
		t.Fatalf("test pki: %v", pkiErr)
	}
}

func serverConfig(t testing.TB) *Config {
	fixtures(t)
	return &Config{Certificates: []Certificate{serverCert}, ClientCAs: cliPKI.CertPool()}
}

func clientConfig(t testing.TB) *Config {
	fixtures(t)
	return &Config{RootCAs: serverPKI.CertPool(), ServerName: "tlcp.test", Certificates: []Certificate{cliCert}}
}

// tcpPair returns two ends of a loopback TCP connection with deadlines.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	dl := time.Now().Add(testTimeout)
	client.SetDeadline(dl)
	r.c.SetDeadline(dl)
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// handshakePair runs both handshakes concurrently and returns both
// errors.
func handshakePair(t testing.TB, ccfg, scfg *Config) (*Conn, *Conn, error, error) {
	t.Helper()
	cr, sr := tcpPair(t)
	cc, sc := Client(cr, ccfg), Server(sr, scfg)
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	cerr := cc.Handshake()
	serr := <-errc
	return cc, sc, cerr, serr
}

// exchange sends data both ways and checks it arrives intact.
func exchange(t testing.TB, a, b net.Conn, size int) {
	t.Helper()
	msg := bytes.Repeat([]byte("sluice-tlcp-"), size/12+1)[:size]
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		errc := make(chan error, 1)
		go func() {
			_, err := dir[0].Write(msg)
			errc <- err
		}()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(dir[1], got); err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("data corrupted in transit")
		}
	}
}

// wantAlert checks that err reports alert a, sent or received.
func wantAlert(t testing.TB, err error, a alert) {
	t.Helper()
	var la *LocalAlertError
	var ra *AlertError
	switch {
	case errors.As(err, &la) && alert(la.Description) == a:
	case errors.As(err, &ra) && alert(ra.Description) == a:
	default:
		t.Fatalf("error %v, want alert %v", err, a)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func cryptoString(b []byte) cryptobyte.String { return cryptobyte.String(b) }

func newPoolFromPEM(t testing.TB, caPEM []byte) *smx509.CertPool {
	t.Helper()
	pool := smx509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in CA PEM")
	}
	return pool
}
