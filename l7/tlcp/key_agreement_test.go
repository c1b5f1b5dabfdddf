package tlcp

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// TestECDHEKeyExchangeAgrees runs the SM2 key exchange through the
// ServerKeyExchange and ClientKeyExchange bodies, with the client
// parameters bare and as a 2-byte vector.
func TestECDHEKeyExchangeAgrees(t *testing.T) {
	fixtures(t)
	cr := bytes.Repeat([]byte{1}, 32)
	sr := bytes.Repeat([]byte{2}, 32)
	serverEncPub, _ := sm2PublicKey(serverCert.Enc.Leaf)
	serverSignPub, _ := sm2PublicKey(serverCert.Sign.Leaf)
	clientEncPub, _ := sm2PublicKey(cliCert.Enc.Leaf)
	for _, vector := range []bool{false, true} {
		var srv ecdheServer
		skx, err := srv.serverKeyExchange(rand.Reader, serverCert.Sign.PrivateKey, serverCert.Enc.PrivateKey, cr, sr)
		if err != nil {
			t.Fatal(err)
		}
		eph, err := ecdheVerifyServerKeyExchange(skx, serverSignPub, cr, sr)
		if err != nil {
			t.Fatalf("verify ServerKeyExchange: %v", err)
		}
		if _, err := ecdheVerifyServerKeyExchange(skx, serverSignPub, sr, cr); err == nil {
			t.Fatalf("signature over swapped randoms verified")
		}
		clientPre, body, err := ecdheClientKeyExchange(rand.Reader, cliCert.Enc.PrivateKey, serverEncPub, eph)
		if err != nil {
			t.Fatal(err)
		}
		if vector {
			body = append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
		}
		serverPre, err := srv.processClientKeyExchange(body, clientEncPub)
		if err != nil {
			t.Fatalf("process ClientKeyExchange (vector %v): %v", vector, err)
		}
		if len(clientPre) != 48 || !bytes.Equal(clientPre, serverPre) {
			t.Fatalf("pre-master secrets differ: %x vs %x", clientPre, serverPre)
		}
	}
}

// TestECCKeyExchangeRoundTrip checks the ECC bodies: the signature covers
// the encryption certificate, and the pre-master secret survives SM2
// encryption and carries the version.
func TestECCKeyExchangeRoundTrip(t *testing.T) {
	fixtures(t)
	cr := bytes.Repeat([]byte{3}, 32)
	sr := bytes.Repeat([]byte{4}, 32)
	signPub, _ := sm2PublicKey(serverCert.Sign.Leaf)
	encPub, _ := sm2PublicKey(serverCert.Enc.Leaf)
	skx, err := eccServerKeyExchange(rand.Reader, serverCert.Sign.PrivateKey, cr, sr, serverCert.Enc.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := eccVerifyServerKeyExchange(skx, signPub, cr, sr, serverCert.Enc.Chain[0]); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := eccVerifyServerKeyExchange(skx, signPub, cr, sr, serverCert.Sign.Chain[0]); err == nil {
		t.Fatalf("signature verified over the wrong certificate")
	}
	pre, body, err := eccClientKeyExchange(rand.Reader, encPub)
	if err != nil {
		t.Fatal(err)
	}
	if pre[0] != 0x01 || pre[1] != 0x01 {
		t.Fatalf("pre-master secret version %x", pre[:2])
	}
	got, err := eccProcessClientKeyExchange(rand.Reader, serverCert.Enc.PrivateKey, body)
	if err != nil || !bytes.Equal(got, pre) {
		t.Fatalf("decrypted %x, %v; want %x", got, err, pre)
	}
	if _, err := eccProcessClientKeyExchange(rand.Reader, serverCert.Sign.PrivateKey, body); err == nil {
		t.Fatalf("decrypted with the wrong key")
	}
}
