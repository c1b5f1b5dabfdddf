package tlcp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm4"
)

// The benchmarks put TLCP next to what a user would pick instead: TLS 1.3
// from crypto/tls with ECDHE P-256 and AES-128-GCM. `make bench` prints
// their ratios; no absolute time is asserted anywhere.

func tls13Configs(b testing.TB) (client, server *tls.Config) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tls.test"},
		DNSNames:     []string{"tls.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{
		Certificates:     []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.CurveP256},
	}
	client = &tls.Config{
		RootCAs: pool, ServerName: "tls.test", MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.CurveP256},
	}
	return client, server
}

type handshaker interface {
	net.Conn
	Handshake() error
}

func benchHandshake(b *testing.B, newPair func(c, s net.Conn) (handshaker, handshaker)) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cr, sr := net.Pipe()
		c, s := newPair(cr, sr)
		errc := make(chan error, 1)
		go func() { errc <- s.Handshake() }()
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		cr.Close()
		sr.Close()
	}
}

func BenchmarkHandshakeTLCP_ECC_GCM(b *testing.B) {
	ccfg, scfg := clientConfig(b), serverConfig(b)
	ccfg.CipherSuites = []uint16{ECC_SM4_GCM_SM3}
	ccfg.Certificates = nil
	benchHandshake(b, func(c, s net.Conn) (handshaker, handshaker) {
		return Client(c, ccfg), Server(s, scfg)
	})
}

func BenchmarkHandshakeTLCP_ECDHE_GCM(b *testing.B) {
	ccfg, scfg := clientConfig(b), serverConfig(b)
	ccfg.CipherSuites = []uint16{ECDHE_SM4_GCM_SM3}
	benchHandshake(b, func(c, s net.Conn) (handshaker, handshaker) {
		return Client(c, ccfg), Server(s, scfg)
	})
}

func BenchmarkHandshakeTLS13(b *testing.B) {
	ccfg, scfg := tls13Configs(b)
	benchHandshake(b, func(c, s net.Conn) (handshaker, handshaker) {
		return tls.Client(c, ccfg), tls.Server(s, scfg)
	})
}

const bulkChunk = 16 * 1024

func benchBulk(b *testing.B, c, s handshaker) {
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, s, int64(b.N)*bulkChunk)
		done <- err
	}()
	buf := make([]byte, bulkChunk)
	b.SetBytes(bulkChunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	c.Close()
	s.Close()
}

func BenchmarkBulkTLCP_GCM(b *testing.B) {
	ccfg, scfg := clientConfig(b), serverConfig(b)
	ccfg.CipherSuites = []uint16{ECC_SM4_GCM_SM3}
	cr, sr := net.Pipe()
	benchBulk(b, Client(cr, ccfg), Server(sr, scfg))
}

func BenchmarkBulkTLCP_CBC(b *testing.B) {
	ccfg, scfg := clientConfig(b), serverConfig(b)
	ccfg.CipherSuites = []uint16{ECC_SM4_CBC_SM3}
	cr, sr := net.Pipe()
	benchBulk(b, Client(cr, ccfg), Server(sr, scfg))
}

func BenchmarkBulkTLS13(b *testing.B) {
	ccfg, scfg := tls13Configs(b)
	ccfg.CipherSuites = nil // TLS 1.3 picks AES-128-GCM first on AES hardware
	cr, sr := net.Pipe()
	benchBulk(b, tls.Client(cr, ccfg), tls.Server(sr, scfg))
}

// The cipher alone, SM4-GCM against AES-128-GCM sealing 16 KiB records: the
// ceiling of the bulk ratio above, whatever the record layer does.
func benchSeal(b *testing.B, block cipher.Block) {
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	record := make([]byte, maxPlaintext)
	out := make([]byte, 0, len(record)+aead.Overhead())
	b.SetBytes(int64(len(record)))
	for i := 0; i < b.N; i++ {
		out = aead.Seal(out[:0], nonce, record, nil)
	}
}

func BenchmarkSealSM4GCM(b *testing.B) {
	block, err := sm4.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, block)
}

func BenchmarkSealAESGCM(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	benchSeal(b, block)
}
