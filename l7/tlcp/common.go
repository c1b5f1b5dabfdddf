// Package tlcp implements TLCP, the Chinese national transport layer
// cryptography protocol of GB/T 38636-2020 (also known as GM/T 0024), on top
// of the SM2, SM3 and SM4 primitives of github.com/emmansun/gmsm.
//
// The API follows crypto/tls: Server and Client wrap a net.Conn, Listen and
// Dial create listeners and connections, and a Conn implements net.Conn.
// Unlike TLS, a TLCP server holds two certificates, one for signing and one
// for encryption (key exchange), so a Certificate here is such a pair.
package tlcp

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/emmansun/gmsm/smx509"
)

// VersionTLCP is the protocol version of TLCP 1.1 as it appears in record
// headers and hello messages.
const VersionTLCP = 0x0101

// Cipher suite IDs defined by GB/T 38636-2020 that this package implements.
const (
	ECC_SM4_CBC_SM3   uint16 = 0xe013
	ECC_SM4_GCM_SM3   uint16 = 0xe053
	ECDHE_SM4_CBC_SM3 uint16 = 0xe011
	ECDHE_SM4_GCM_SM3 uint16 = 0xe051
)

// curveSM2 is the named curve ID of the SM2 curve in ECDHE parameters
// (RFC 8998 assigns 41 to curveSM2).
const curveSM2 = 41

const (
	recordHeaderLen   = 5
	maxPlaintext      = 16384
	maxCiphertext     = maxPlaintext + 2048
	maxHandshakeSize  = 65536
	masterSecretLen   = 48
	preMasterLen      = 48
	finishedVerifyLen = 12
	sessionIDLen      = 32
)

type recordType uint8

const (
	recordTypeChangeCipherSpec recordType = 20
	recordTypeAlert            recordType = 21
	recordTypeHandshake        recordType = 22
	recordTypeApplicationData  recordType = 23
)

const (
	typeHelloRequest       uint8 = 0
	typeClientHello        uint8 = 1
	typeServerHello        uint8 = 2
	typeCertificate        uint8 = 11
	typeServerKeyExchange  uint8 = 12
	typeCertificateRequest uint8 = 13
	typeServerHelloDone    uint8 = 14
	typeCertificateVerify  uint8 = 15
	typeClientKeyExchange  uint8 = 16
	typeFinished           uint8 = 20
)

const (
	extensionServerName uint16 = 0
	extensionALPN       uint16 = 16
)

// Certificate types of a CertificateRequest message.
const (
	certTypeRSASign   = 1
	certTypeECDSASign = 64
)

// ClientAuthType says whether a server requests and verifies client
// certificates, with the same meaning as tls.ClientAuthType.
type ClientAuthType int

// The client authentication policies, weakest first.
const (
	NoClientCert ClientAuthType = iota
	RequestClientCert
	RequireAnyClientCert
	VerifyClientCertIfGiven
	RequireAndVerifyClientCert
)

// CertKey is one certificate chain (leaf first, DER) with the private key of
// its leaf. The key of a signing certificate must be a crypto.Signer, the key
// of an encryption certificate a crypto.Decrypter (for ECDHE suites an
// *sm2.PrivateKey).
type CertKey struct {
	Chain      [][]byte
	PrivateKey crypto.PrivateKey
	// Leaf is the parsed leaf; it is filled in by X509KeyPair and parsed on
	// demand when nil.
	Leaf *smx509.Certificate
}

func (ck *CertKey) leaf() (*smx509.Certificate, error) {
	if ck.Leaf != nil {
		return ck.Leaf, nil
	}
	if len(ck.Chain) == 0 {
		return nil, errors.New("tlcp: empty certificate chain")
	}
	return smx509.ParseCertificate(ck.Chain[0])
}

// Certificate is a TLCP credential: a signing certificate and an encryption
// certificate with their keys. A client that authenticates needs at least
// Sign; ECDHE suites need Enc as well.
type Certificate struct {
	Sign CertKey
	Enc  CertKey
}

// CertificatePair is another name for Certificate, the sign and enc pair.
type CertificatePair = Certificate

// ClientHelloInfo describes a ClientHello for Config.GetCertificate.
type ClientHelloInfo struct {
	ServerName      string
	CipherSuites    []uint16
	SupportedProtos []string
	// Conn is the underlying connection; do not read from or write to it.
	Conn net.Conn
}

// ConnectionState describes an established connection.
type ConnectionState struct {
	Version            uint16
	HandshakeComplete  bool
	DidResume          bool
	CipherSuite        uint16
	NegotiatedProtocol string
	ServerName         string
	// PeerCertificates are the certificates the peer sent: the signing
	// certificate first, then the encryption certificate, then the rest.
	PeerCertificates []*smx509.Certificate
	VerifiedChains   [][]*smx509.Certificate
}

// Config configures a TLCP client or server. A Config may be shared by
// many connections once it is in use and must not be modified then.
type Config struct {
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Time returns the current time for certificate checks; nil means
	// time.Now.
	Time func() time.Time
	// Certificates holds the credentials a server presents, or a client
	// presents when asked.
	Certificates []Certificate
	// GetCertificate, when set, picks the server credential for a
	// ClientHello (for example by SNI); returning nil falls back to
	// Certificates.
	GetCertificate func(*ClientHelloInfo) (*CertificatePair, error)
	// RootCAs verifies server certificates; ClientCAs verifies client
	// certificates.
	RootCAs   *smx509.CertPool
	ClientCAs *smx509.CertPool
	// ServerName is sent as SNI and checked against the server's
	// signing certificate.
	ServerName string
	// InsecureSkipVerify disables verification of the server chain and
	// name; key usage is still checked.
	InsecureSkipVerify bool
	// NextProtos lists ALPN protocols in order of preference.
	NextProtos []string
	// CipherSuites lists enabled suites in order of preference; nil
	// enables all four.
	CipherSuites []uint16
	// ClientAuth is the server's client certificate policy. ECDHE suites
	// always require a client certificate pair.
	ClientAuth ClientAuthType
	// SessionCache enables session resumption by session ID. On a server
	// it stores the sessions it issues, on a client the sessions it may
	// resume (keyed by server name and address). Nil disables it.
	SessionCache *SessionCache
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) now() time.Time {
	if c.Time != nil {
		return c.Time()
	}
	return time.Now()
}

// Clone returns a shallow copy of c; the session cache is shared.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	return &n
}

var defaultCipherSuites = []uint16{ECC_SM4_GCM_SM3, ECDHE_SM4_GCM_SM3, ECC_SM4_CBC_SM3, ECDHE_SM4_CBC_SM3}

func (c *Config) cipherSuites() []uint16 {
	if len(c.CipherSuites) > 0 {
		return c.CipherSuites
	}
	return defaultCipherSuites
}

// X509KeyPair parses a credential from PEM: the signing certificate (chain)
// and key, then the encryption certificate (chain) and key. It returns an
// error if a block is missing or a key does not match its certificate.
func X509KeyPair(signCertPEM, signKeyPEM, encCertPEM, encKeyPEM []byte) (Certificate, error) {
	sign, err := parseCertKey(signCertPEM, signKeyPEM)
	if err != nil {
		return Certificate{}, fmt.Errorf("tlcp: signing pair: %w", err)
	}
	enc, err := parseCertKey(encCertPEM, encKeyPEM)
	if err != nil {
		return Certificate{}, fmt.Errorf("tlcp: encryption pair: %w", err)
	}
	return Certificate{Sign: sign, Enc: enc}, nil
}

// LoadX509KeyPair reads the four PEM files of a credential and parses them
// with X509KeyPair.
func LoadX509KeyPair(signCertFile, signKeyFile, encCertFile, encKeyFile string) (Certificate, error) {
	var blobs [4][]byte
	for i, name := range []string{signCertFile, signKeyFile, encCertFile, encKeyFile} {
		b, err := os.ReadFile(name)
		if err != nil {
			return Certificate{}, fmt.Errorf("tlcp: read %s: %w", name, err)
		}
		blobs[i] = b
	}
	return X509KeyPair(blobs[0], blobs[1], blobs[2], blobs[3])
}
