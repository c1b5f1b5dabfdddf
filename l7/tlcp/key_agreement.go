package tlcp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/crypto/cryptobyte"
)

// ECC key exchange: the server signs client_random + server_random + its
// encryption certificate (with a 3-byte length) and the client encrypts a
// 48-byte pre-master secret to the encryption certificate with SM2 (ASN.1
// ciphertext, GM/T 0009).

// eccSignedParams returns the bytes the ECC ServerKeyExchange signs.
func eccSignedParams(clientRandom, serverRandom, encCert []byte) []byte {
	b := make([]byte, 0, 64+3+len(encCert))
	b = append(b, clientRandom...)
	b = append(b, serverRandom...)
	n := len(encCert)
	b = append(b, byte(n>>16), byte(n>>8), byte(n))
	return append(b, encCert...)
}

// signedBody is a signature with a 2-byte length prefix.
func signedBody(params, sig []byte) []byte {
	b := make([]byte, 0, len(params)+2+len(sig))
	b = append(b, params...)
	b = append(b, byte(len(sig)>>8), byte(len(sig)))
	return append(b, sig...)
}

func eccServerKeyExchange(rand io.Reader, signKey crypto.PrivateKey, clientRandom, serverRandom, encCert []byte) ([]byte, error) {
	sig, err := signSM2(rand, signKey, eccSignedParams(clientRandom, serverRandom, encCert))
	if err != nil {
		return nil, err
	}
	return signedBody(nil, sig), nil
}

// readSignature parses the signature<2> that ends a ServerKeyExchange.
func readSignature(s cryptobyte.String) ([]byte, bool) {
	var sig cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&sig) || len(sig) == 0 || !s.Empty() {
		return nil, false
	}
	return sig, true
}

func eccVerifyServerKeyExchange(body []byte, signPub *ecdsa.PublicKey, clientRandom, serverRandom, encCert []byte) error {
	sig, ok := readSignature(body)
	if !ok {
		return errDecode
	}
	return verifySM2(signPub, eccSignedParams(clientRandom, serverRandom, encCert), sig)
}

// eccClientKeyExchange makes the pre-master secret and its encryption.
func eccClientKeyExchange(rand io.Reader, encPub *ecdsa.PublicKey) (preMaster, body []byte, err error) {
	preMaster = make([]byte, preMasterLen)
	preMaster[0] = byte(VersionTLCP >> 8)
	preMaster[1] = byte(VersionTLCP & 0xff)
	if _, err := io.ReadFull(rand, preMaster[2:]); err != nil {
		return nil, nil, fmt.Errorf("tlcp: read pre-master secret: %w", err)
	}
	ct, err := sm2.EncryptASN1(rand, encPub, preMaster)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: sm2 encrypt pre-master secret: %w", err)
	}
	return preMaster, signedBody(nil, ct), nil
}

var errPreMaster = errors.New("tlcp: bad encrypted pre-master secret")

func eccProcessClientKeyExchange(rand io.Reader, encKey crypto.PrivateKey, body []byte) ([]byte, error) {
	s := cryptobyte.String(body)
	var ct cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&ct) || len(ct) == 0 || !s.Empty() {
		return nil, errDecode
	}
	dec, ok := encKey.(crypto.Decrypter)
	if !ok {
		return nil, fmt.Errorf("tlcp: encryption key %T is not a crypto.Decrypter", encKey)
	}
	pm, err := dec.Decrypt(rand, ct, sm2.ASN1DecrypterOpts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPreMaster, err)
	}
	if len(pm) != preMasterLen || pm[0] != byte(VersionTLCP>>8) || pm[1] != byte(VersionTLCP&0xff) {
		return nil, errPreMaster
	}
	return pm, nil
}

// ECDHE key exchange: the SM2 key exchange protocol of GB/T 32918.3 with the
// server as initiator and the client as responder. Each side uses its
// encryption key pair as the static key and an ephemeral key pair whose
// public half travels as ECDH parameters (named curve SM2); the 48-byte
// shared key is the pre-master secret.

// ecdhParams encodes curve_type named_curve(3), curveSM2 and the point.
func ecdhParams(pub *ecdsa.PublicKey) []byte {
	// The SM2 key exchange API speaks *ecdsa.PublicKey, hence the
	// (deprecated but exact) elliptic encoding helpers.
	point := elliptic.Marshal(sm2.P256(), pub.X, pub.Y)
	b := []byte{3, byte(curveSM2 >> 8), byte(curveSM2 & 0xff), byte(len(point))}
	return append(b, point...)
}

// readECDHParams parses ECDH parameters from s and returns the point.
func readECDHParams(s *cryptobyte.String) (*ecdsa.PublicKey, []byte, bool) {
	start := *s
	var curveType uint8
	var curve uint16
	var point cryptobyte.String
	if !s.ReadUint8(&curveType) || curveType != 3 || !s.ReadUint16(&curve) || curve != curveSM2 ||
		!s.ReadUint8LengthPrefixed(&point) {
		return nil, nil, false
	}
	x, y := elliptic.Unmarshal(sm2.P256(), point) // nil unless an uncompressed point on the curve
	if x == nil {
		return nil, nil, false
	}
	raw := start[:len(start)-len(*s)]
	return &ecdsa.PublicKey{Curve: sm2.P256(), X: x, Y: y}, raw, true
}

func sm2Key(k crypto.PrivateKey) (*sm2.PrivateKey, error) {
	sk, ok := k.(*sm2.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("tlcp: ECDHE needs an *sm2.PrivateKey encryption key, have %T", k)
	}
	return sk, nil
}

// ecdheServer is the server side of one ECDHE exchange.
type ecdheServer struct {
	ke *sm2.KeyExchange
}

func (e *ecdheServer) serverKeyExchange(rand io.Reader, signKey, encKey crypto.PrivateKey, clientRandom, serverRandom []byte) ([]byte, error) {
	sk, err := sm2Key(encKey)
	if err != nil {
		return nil, err
	}
	e.ke, err = sm2.NewKeyExchange(sk, nil, nil, nil, preMasterLen, false)
	if err != nil {
		return nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	eph, err := e.ke.InitKeyExchange(rand)
	if err != nil {
		return nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	params := ecdhParams(eph)
	signed := make([]byte, 0, 64+len(params))
	signed = append(append(append(signed, clientRandom...), serverRandom...), params...)
	sig, err := signSM2(rand, signKey, signed)
	if err != nil {
		return nil, err
	}
	return signedBody(params, sig), nil
}

// processClientKeyExchange completes the exchange with the client's
// ephemeral key. ClientECDHParams come bare (as this package and gotlcp
// send them) or, as some implementations read GB/T 38636, inside an
// opaque<1..2^16-1>; both are accepted, the first byte tells them apart.
func (e *ecdheServer) processClientKeyExchange(body []byte, clientEncPub *ecdsa.PublicKey) ([]byte, error) {
	s := cryptobyte.String(body)
	if len(body) > 0 && body[0] != 3 {
		var inner cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&inner) || !s.Empty() {
			return nil, errDecode
		}
		s = inner
	}
	eph, _, ok := readECDHParams(&s)
	if !ok || !s.Empty() {
		return nil, errDecode
	}
	if err := e.ke.SetPeerParameters(clientEncPub, nil); err != nil {
		return nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	key, _, err := e.ke.ConfirmResponder(eph, nil)
	if err != nil {
		return nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	return key, nil
}

// ecdheVerifyServerKeyExchange checks the signature and returns the
// server's ephemeral key.
func ecdheVerifyServerKeyExchange(body []byte, signPub *ecdsa.PublicKey, clientRandom, serverRandom []byte) (*ecdsa.PublicKey, error) {
	s := cryptobyte.String(body)
	eph, params, ok := readECDHParams(&s)
	if !ok {
		return nil, errDecode
	}
	sig, ok := readSignature(s)
	if !ok {
		return nil, errDecode
	}
	signed := make([]byte, 0, 64+len(params))
	signed = append(append(append(signed, clientRandom...), serverRandom...), params...)
	if err := verifySM2(signPub, signed, sig); err != nil {
		return nil, err
	}
	return eph, nil
}

// ecdheClientKeyExchange answers the server's ephemeral key and returns
// the pre-master secret and the ClientKeyExchange body.
func ecdheClientKeyExchange(rand io.Reader, encKey crypto.PrivateKey, serverEncPub, serverEph *ecdsa.PublicKey) ([]byte, []byte, error) {
	sk, err := sm2Key(encKey)
	if err != nil {
		return nil, nil, err
	}
	ke, err := sm2.NewKeyExchange(sk, serverEncPub, nil, nil, preMasterLen, false)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	eph, _, err := ke.RepondKeyExchange(rand, serverEph)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	key, err := ke.ConfirmInitiator(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("tlcp: sm2 key exchange: %w", err)
	}
	return key, ecdhParams(eph), nil
}
