package tlcp

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// TestPKI is a throwaway SM2 certificate authority with one signing and
// one encryption certificate for a name, all PEM encoded. It is meant for
// tests and demos (`sluice tlcp gen-certs`), never for production.
type TestPKI struct {
	CACertPEM, CAKeyPEM     []byte
	SignCertPEM, SignKeyPEM []byte
	EncCertPEM, EncKeyPEM   []byte

	ca    *smx509.Certificate
	caKey *sm2.PrivateKey
}

// NewTestPKI creates a CA and a certificate pair for name (a DNS name or an
// IP address), valid from an hour ago for a year. It returns an error only
// if key generation or signing fails.
func NewTestPKI(name string) (*TestPKI, error) {
	caKey, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlcp: generate ca key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "Sluice TLCP test CA " + name, Organization: []string{"Sluice test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("tlcp: create ca certificate: %w", err)
	}
	ca, err := smx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlcp: parse ca certificate: %w", err)
	}
	caKeyPEM, err := keyPEM(caKey)
	if err != nil {
		return nil, err
	}
	p := &TestPKI{CACertPEM: certPEM(der), CAKeyPEM: caKeyPEM, ca: ca, caKey: caKey}
	p.SignCertPEM, p.SignKeyPEM, err = p.issue(name, now.Add(-time.Hour), now.AddDate(1, 0, 0), x509.KeyUsageDigitalSignature)
	if err != nil {
		return nil, err
	}
	p.EncCertPEM, p.EncKeyPEM, err = p.issue(name, now.Add(-time.Hour), now.AddDate(1, 0, 0), encKeyUsage)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// issue makes a leaf certificate for name with the given validity and key
// usage, signed by the CA, and returns certificate and key as PEM.
func (p *TestPKI) issue(name string, notBefore, notAfter time.Time, usage x509.KeyUsage) (certOut, keyOut []byte, err error) {
	key, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Sluice test"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     usage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := smx509.CreateCertificate(rand.Reader, tmpl, p.ca.ToX509(), &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: create certificate for %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM(der), kp, nil
}

// Certificate parses the pair into a Certificate.
func (p *TestPKI) Certificate() (Certificate, error) {
	return X509KeyPair(p.SignCertPEM, p.SignKeyPEM, p.EncCertPEM, p.EncKeyPEM)
}

// CertPool returns a pool that holds the CA.
func (p *TestPKI) CertPool() *smx509.CertPool {
	pool := smx509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// GenerateTestPKI writes a new TestPKI for name into dir (created if
// missing) as ca.crt, ca.key, NAME-sign.crt, NAME-sign.key, NAME-enc.crt
// and NAME-enc.key. Keys are PKCS#8 PEM with mode 0600. It returns an
// error if generation or a write fails.
func GenerateTestPKI(dir, name string) error {
	p, err := NewTestPKI(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tlcp: create %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.crt", p.CACertPEM, 0o644},
		{"ca.key", p.CAKeyPEM, 0o600},
		{name + "-sign.crt", p.SignCertPEM, 0o644},
		{name + "-sign.key", p.SignKeyPEM, 0o600},
		{name + "-enc.crt", p.EncCertPEM, 0o644},
		{name + "-enc.key", p.EncKeyPEM, 0o600},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return fmt.Errorf("tlcp: write %s: %w", path, err)
		}
	}
	return nil
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k *sm2.PrivateKey) ([]byte, error) {
	der, err := smx509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("tlcp: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
