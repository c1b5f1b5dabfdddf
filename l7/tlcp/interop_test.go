package tlcp

import (
	"io"
	"net"
	"testing"

	"github.com/tjfoc/gmsm/gmtls"
	tjx509 "github.com/tjfoc/gmsm/x509"
)

// Interoperability with github.com/tjfoc/gmsm/gmtls, an independent
// implementation with its own SM2 and X.509 code. Certificates are made by
// this package (emmansun/gmsm) and parsed from PEM by tjfoc.
//
// tjfoc v1.4.1 speaks only ECC_SM4_CBC_SM3 in practice: its ECDHE server
// side is a stub (ecdheKeyAgreementGM.generateServerKeyExchange is
// `panic("")`), and its ECDHE client looks the curve up among the NIST
// curves (curveForCurveID) and panics with "internal error" for the SM2
// curve, and it implements plain ECDH rather than the SM2 key exchange
// that GB/T 38636 requires. It has no GCM suites. So ECDHE_* and *_GCM_*
// interop cannot be tested against it; those suites are covered by our
// own client and server and by the known-answer tests.

func tjfocServerConfig(t *testing.T) *gmtls.Config {
	fixtures(t)
	sign, err := gmtls.X509KeyPair(serverPKI.SignCertPEM, serverPKI.SignKeyPEM)
	if err != nil {
		t.Fatalf("tjfoc sign pair: %v", err)
	}
	enc, err := gmtls.X509KeyPair(serverPKI.EncCertPEM, serverPKI.EncKeyPEM)
	if err != nil {
		t.Fatalf("tjfoc enc pair: %v", err)
	}
	return &gmtls.Config{GMSupport: gmtls.NewGMSupport(), Certificates: []gmtls.Certificate{sign, enc}}
}

func tjfocClientConfig(t *testing.T) *gmtls.Config {
	fixtures(t)
	pool := tjx509.NewCertPool()
	if !pool.AppendCertsFromPEM(serverPKI.CACertPEM) {
		t.Fatalf("tjfoc: parse CA PEM")
	}
	return &gmtls.Config{
		GMSupport:    gmtls.NewGMSupport(),
		RootCAs:      pool,
		ServerName:   "tlcp.test",
		CipherSuites: []uint16{gmtls.GMTLS_SM2_WITH_SM4_SM3},
	}
}

func TestInteropTjfocClientOurServer(t *testing.T) {
	cr, sr := tcpPair(t)
	ours := Server(sr, serverConfig(t))
	theirs := gmtls.Client(cr, tjfocClientConfig(t))
	errc := make(chan error, 1)
	go func() { errc <- ours.Handshake() }()
	if err := theirs.Handshake(); err != nil {
		t.Fatalf("tjfoc client handshake: %v (our server: %v)", err, <-errc)
	}
	if err := <-errc; err != nil {
		t.Fatalf("our server handshake: %v", err)
	}
	if got := ours.ConnectionState().CipherSuite; got != ECC_SM4_CBC_SM3 {
		t.Fatalf("suite %#04x", got)
	}
	exchange(t, theirs, ours, 50000)
	exchangeSmall(t, theirs, ours)
}

func TestInteropOurClientTjfocServer(t *testing.T) {
	cr, sr := tcpPair(t)
	theirs := gmtls.Server(sr, tjfocServerConfig(t))
	ccfg := clientConfig(t)
	ccfg.CipherSuites = []uint16{ECC_SM4_CBC_SM3}
	ours := Client(cr, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- theirs.Handshake() }()
	if err := ours.Handshake(); err != nil {
		t.Fatalf("our client handshake: %v (tjfoc server: %v)", err, <-errc)
	}
	if err := <-errc; err != nil {
		t.Fatalf("tjfoc server handshake: %v", err)
	}
	exchange(t, ours, theirs, 50000)
	exchangeSmall(t, ours, theirs)
}

// TestInteropOurClientOffersAllTjfocServer checks that a client offering
// every suite settles on the one tjfoc supports.
func TestInteropOurClientOffersAllTjfocServer(t *testing.T) {
	cr, sr := tcpPair(t)
	theirs := gmtls.Server(sr, tjfocServerConfig(t))
	ours := Client(cr, clientConfig(t))
	errc := make(chan error, 1)
	go func() { errc <- theirs.Handshake() }()
	if err := ours.Handshake(); err != nil {
		t.Fatalf("our client handshake: %v (tjfoc server: %v)", err, <-errc)
	}
	if err := <-errc; err != nil {
		t.Fatalf("tjfoc server handshake: %v", err)
	}
	if got := ours.ConnectionState().CipherSuite; got != ECC_SM4_CBC_SM3 {
		t.Fatalf("suite %#04x", got)
	}
	exchangeSmall(t, ours, theirs)
}

// exchangeSmall sends one short message each way, one record each.
func exchangeSmall(t *testing.T, a, b net.Conn) {
	t.Helper()
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		if _, err := dir[0].Write([]byte("ping")); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(dir[1], buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q: %v", buf, err)
		}
	}
}

// TestInteropClientAuthOurClientTjfocServer: tjfoc demands and verifies a
// client certificate; our client sends its signing certificate and an SM2
// CertificateVerify over the SM3 transcript hash.
func TestInteropClientAuthOurClientTjfocServer(t *testing.T) {
	cr, sr := tcpPair(t)
	scfg := tjfocServerConfig(t)
	pool := tjx509.NewCertPool()
	if !pool.AppendCertsFromPEM(cliPKI.CACertPEM) {
		t.Fatalf("tjfoc: parse client CA PEM")
	}
	scfg.ClientAuth = gmtls.RequireAndVerifyClientCert
	scfg.ClientCAs = pool
	theirs := gmtls.Server(sr, scfg)
	ccfg := clientConfig(t)
	ccfg.CipherSuites = []uint16{ECC_SM4_CBC_SM3}
	ours := Client(cr, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- theirs.Handshake() }()
	if err := ours.Handshake(); err != nil {
		t.Fatalf("our client handshake: %v (tjfoc server: %v)", err, <-errc)
	}
	if err := <-errc; err != nil {
		t.Fatalf("tjfoc server handshake: %v", err)
	}
	if pc := theirs.ConnectionState().PeerCertificates; len(pc) == 0 || pc[0].Subject.CommonName != "client.test" {
		t.Fatalf("tjfoc server saw client certificates %v", pc)
	}
	exchangeSmall(t, ours, theirs)
}

// TestInteropClientAuthTjfocClientOurServer: our server demands and
// verifies a client certificate from tjfoc.
func TestInteropClientAuthTjfocClientOurServer(t *testing.T) {
	cr, sr := tcpPair(t)
	scfg := serverConfig(t)
	scfg.ClientAuth = RequireAndVerifyClientCert
	ours := Server(sr, scfg)
	ccfg := tjfocClientConfig(t)
	sign, err := gmtls.X509KeyPair(cliPKI.SignCertPEM, cliPKI.SignKeyPEM)
	if err != nil {
		t.Fatalf("tjfoc client pair: %v", err)
	}
	ccfg.Certificates = []gmtls.Certificate{sign}
	theirs := gmtls.Client(cr, ccfg)
	errc := make(chan error, 1)
	go func() { errc <- ours.Handshake() }()
	if err := theirs.Handshake(); err != nil {
		t.Fatalf("tjfoc client handshake: %v (our server: %v)", err, <-errc)
	}
	if err := <-errc; err != nil {
		t.Fatalf("our server handshake: %v", err)
	}
	if pc := ours.ConnectionState().PeerCertificates; len(pc) == 0 || pc[0].Subject.CommonName != "client.test" {
		t.Fatalf("our server saw client certificates %v", pc)
	}
	exchangeSmall(t, theirs, ours)
}

// TestInteropTjfocClientUnknownCA: our server is not trusted by tjfoc,
// which must refuse it (and our server must see the failure).
func TestInteropTjfocClientUnknownCA(t *testing.T) {
	cr, sr := tcpPair(t)
	scfg := serverConfig(t)
	other, err := otherPKI.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	scfg.Certificates = []Certificate{other}
	ours := Server(sr, scfg)
	theirs := gmtls.Client(cr, tjfocClientConfig(t))
	errc := make(chan error, 1)
	go func() { errc <- ours.Handshake() }()
	if err := theirs.Handshake(); err == nil {
		t.Fatalf("tjfoc accepted a server from an unknown CA")
	}
	wantAlert(t, <-errc, alertBadCertificate)
}
