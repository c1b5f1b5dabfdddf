package tlcp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// parseCertKey parses a PEM certificate chain and the PEM private key of
// its leaf, and checks that they match.
func parseCertKey(certPEM, keyPEM []byte) (CertKey, error) {
	var ck CertKey
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			ck.Chain = append(ck.Chain, block.Bytes)
		}
	}
	if len(ck.Chain) == 0 {
		return ck, errors.New("no CERTIFICATE block")
	}
	leaf, err := smx509.ParseCertificate(ck.Chain[0])
	if err != nil {
		return ck, fmt.Errorf("parse certificate: %w", err)
	}
	ck.Leaf = leaf
	var keyBlock *pem.Block
	for rest := keyPEM; ; {
		keyBlock, rest = pem.Decode(rest)
		if keyBlock == nil || strings.HasSuffix(keyBlock.Type, "PRIVATE KEY") {
			break
		}
	}
	if keyBlock == nil {
		return ck, errors.New("no PRIVATE KEY block")
	}
	key, err := parsePrivateKey(keyBlock.Bytes)
	if err != nil {
		return ck, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return ck, errors.New("private key does not match certificate")
	}
	ck.PrivateKey = key
	return ck, nil
}

func parsePrivateKey(der []byte) (*sm2.PrivateKey, error) {
	if k, err := smx509.ParsePKCS8PrivateKey(der); err == nil {
		if sk, ok := k.(*sm2.PrivateKey); ok {
			return sk, nil
		}
		return nil, fmt.Errorf("private key is %T, not SM2", k)
	}
	k, err := smx509.ParseSM2PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	return k, nil
}

// sm2PublicKey returns the SM2 public key of a certificate.
func sm2PublicKey(c *smx509.Certificate) (*ecdsa.PublicKey, bool) {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(pub) {
		return nil, false
	}
	return pub, true
}

const (
	signKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	encKeyUsage  = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageKeyAgreement
)

// certError is a certificate problem together with the alert it earns.
type certError struct {
	alert alert
	err   error
}

func (e *certError) Error() string { return e.err.Error() }
func (e *certError) Unwrap() error { return e.err }

// checkPeerCertificates parses the certificates of a peer (signing first,
// encryption second, CA certificates after), checks key types and key
// usages, and, if verify is set, verifies both leaves against roots. It
// returns a *certError naming the alert to send.
func checkPeerCertificates(raw [][]byte, needEnc bool, verify bool, roots *smx509.CertPool, dnsName string, eku x509.ExtKeyUsage, cfg *Config) ([]*smx509.Certificate, [][]*smx509.Certificate, error) {
	if len(raw) == 0 || (needEnc && len(raw) < 2) {
		return nil, nil, &certError{alertBadCertificate, errors.New("tlcp: peer must send a signing and an encryption certificate")}
	}
	certs := make([]*smx509.Certificate, len(raw))
	for i, der := range raw {
		c, err := smx509.ParseCertificate(der)
		if err != nil {
			return nil, nil, &certError{alertBadCertificate, fmt.Errorf("tlcp: parse peer certificate %d: %w", i, err)}
		}
		certs[i] = c
	}
	leaves := 1
	if len(certs) >= 2 {
		leaves = 2
	}
	for i := 0; i < leaves; i++ {
		if _, ok := sm2PublicKey(certs[i]); !ok {
			return nil, nil, &certError{alertUnsupportedCertificate, fmt.Errorf("tlcp: peer certificate %d has no SM2 key", i)}
		}
	}
	if certs[0].KeyUsage&signKeyUsage == 0 {
		return nil, nil, &certError{alertBadCertificate, fmt.Errorf("tlcp: signing certificate %q lacks digitalSignature key usage", certs[0].Subject.CommonName)}
	}
	if leaves == 2 && certs[1].KeyUsage&encKeyUsage == 0 {
		return nil, nil, &certError{alertBadCertificate, fmt.Errorf("tlcp: encryption certificate %q lacks keyEncipherment, dataEncipherment or keyAgreement key usage", certs[1].Subject.CommonName)}
	}
	if !verify {
		return certs, nil, nil
	}
	inter := smx509.NewCertPool()
	for _, c := range certs[leaves:] {
		inter.AddCert(c)
	}
	opts := smx509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   cfg.now(),
		KeyUsages:     []x509.ExtKeyUsage{eku},
	}
	var chains [][]*smx509.Certificate
	for i := 0; i < leaves; i++ {
		o := opts
		if i == 0 {
			o.DNSName = dnsName
		}
		ch, err := certs[i].Verify(o)
		if err != nil {
			return nil, nil, &certError{verifyAlert(err), fmt.Errorf("tlcp: verify peer certificate %d: %w", i, err)}
		}
		if i == 0 {
			chains = ch
		}
	}
	return certs, chains, nil
}

// verifyAlert maps a chain verification error to its alert.
func verifyAlert(err error) alert {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		return alertCertificateExpired
	}
	var ua smx509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return alertUnknownCA
	}
	return alertBadCertificate
}

// sm2SignerOpts asks for an SM2 signature with the default user ID over a
// raw message (the signer computes Z_A and SM3 itself).
var sm2SignerOpts = sm2.NewSM2SignerOption(true, nil)

// signSM2 signs msg with key, which must be a crypto.Signer for SM2.
func signSM2(rand io.Reader, key crypto.PrivateKey, msg []byte) ([]byte, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("tlcp: signing key %T is not a crypto.Signer", key)
	}
	sig, err := signer.Sign(rand, msg, sm2SignerOpts)
	if err != nil {
		return nil, fmt.Errorf("tlcp: sm2 sign: %w", err)
	}
	return sig, nil
}

// verifySM2 checks an SM2 signature (default user ID) over msg.
func verifySM2(pub *ecdsa.PublicKey, msg, sig []byte) error {
	if !sm2.VerifyASN1WithSM2(pub, nil, msg, sig) {
		return errors.New("tlcp: sm2 signature verification failed")
	}
	return nil
}
