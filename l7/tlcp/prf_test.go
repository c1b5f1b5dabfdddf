package tlcp

import (
	"bytes"
	"crypto/hmac"
	"encoding/hex"
	"hash"
	"testing"

	"github.com/emmansun/gmsm/sm3"
)

// refPHash is P_SM3 written out from RFC 5246 section 5, independently of
// prf.go: A(0) = seed, A(i) = HMAC(secret, A(i-1)), output = HMAC(secret,
// A(1) + seed) + HMAC(secret, A(2) + seed) + ...
func refPHash(secret, label, seed []byte, n int) []byte {
	mac := func(parts ...[]byte) []byte {
		var h hash.Hash = hmac.New(sm3.New, secret)
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	fullSeed := append(append([]byte{}, label...), seed...)
	var out []byte
	a := fullSeed
	for len(out) < n {
		a = mac(a)
		out = append(out, mac(a, fullSeed)...)
	}
	return out[:n]
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pinnedPRF is P_SM3(0x0b * 48, "test label", 0x00..0x1f) truncated to 48
// bytes, computed once with refPHash.
const pinnedPRF = "c06801c1605635bd5ade53aab2e1c47815aa5ef57642220b95ed52576ee3d6909eb5ffea9a26683df4de4e69acc8852d"

func TestPRFKnownAnswer(t *testing.T) {
	secret := bytes.Repeat([]byte{0x0b}, 48)
	seed := unhex(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	for _, n := range []int{1, 12, 32, 48, 100, 128} {
		want := refPHash(secret, []byte("test label"), seed, n)
		if got := prf(secret, "test label", seed, n); !bytes.Equal(got, want) {
			t.Fatalf("prf(%d) = %x, want %x", n, got, want)
		}
	}
	// The pinned vector guards against both implementations drifting
	// together.
	want := unhex(t, pinnedPRF)
	if got := prf(secret, "test label", seed, 48); !bytes.Equal(got, want) {
		t.Fatalf("prf = %x, want pinned %x", got, want)
	}
}

func TestMasterAndKeyBlock(t *testing.T) {
	pre := bytes.Repeat([]byte{0x01}, 48)
	cr := bytes.Repeat([]byte{0xc1}, 32)
	sr := bytes.Repeat([]byte{0x5e}, 32)
	master := masterFromPreMaster(pre, cr, sr)
	if want := refPHash(pre, []byte("master secret"), append(append([]byte{}, cr...), sr...), 48); !bytes.Equal(master, want) {
		t.Fatalf("master = %x, want %x", master, want)
	}
	kb := keysFromMaster(master, cr, sr, 32, 16, 16)
	block := refPHash(master, []byte("key expansion"), append(append([]byte{}, sr...), cr...), 128)
	got := bytes.Join([][]byte{kb.clientMAC, kb.serverMAC, kb.clientKey, kb.serverKey, kb.clientIV, kb.serverIV}, nil)
	if !bytes.Equal(got, block) {
		t.Fatalf("key block = %x, want %x", got, block)
	}
	tr := newTranscript()
	tr.write([]byte("handshake messages"))
	h := sm3.Sum([]byte("handshake messages"))
	if want := refPHash(master, []byte("client finished"), h[:], 12); !bytes.Equal(tr.clientFinished(master), want) {
		t.Fatalf("client finished mismatch")
	}
	if want := refPHash(master, []byte("server finished"), h[:], 12); !bytes.Equal(tr.serverFinished(master), want) {
		t.Fatalf("server finished mismatch")
	}
}
