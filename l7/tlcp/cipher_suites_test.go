package tlcp

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"testing"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

func TestGCMRecordKnownAnswer(t *testing.T) {
	key := unhex(t, "0123456789abcdeffedcba9876543210")
	salt := unhex(t, "a1b2c3d4")
	seq := [8]byte{0, 0, 0, 0, 0, 0, 0, 7}
	plaintext := []byte("GET / HTTP/1.1\r\nHost: tlcp.test\r\n\r\n")

	// The reference: SM4-GCM from crypto/cipher, nonce = salt || seq,
	// additional data = seq || type || version || length (RFC 5288).
	block, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := append(append([]byte{}, salt...), seq[:]...)
	ad := append(append([]byte{}, seq[:]...), 23, 0x01, 0x01, 0, byte(len(plaintext)))
	want := append(append([]byte{}, seq[:]...), gcm.Seal(nil, nonce, plaintext, ad)...)

	p, err := newProtector(suiteByID(ECC_SM4_GCM_SM3), nil, key, salt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.seal(nil, &seq, recordTypeApplicationData, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed\n got %x\nwant %x", got, want)
	}
	// open consumes its fragment (it decrypts in place): each call gets a copy.
	fresh := func() []byte { return append([]byte{}, want...) }
	pt, _, ok := p.open(&seq, recordTypeApplicationData, fresh())
	if !ok || !bytes.Equal(pt, plaintext) {
		t.Fatalf("open failed: %v %q", ok, pt)
	}
	// Wrong type, wrong sequence number or a flipped bit all fail.
	if _, a, ok := p.open(&seq, recordTypeHandshake, fresh()); ok || a != alertBadRecordMAC {
		t.Fatalf("open with wrong type succeeded")
	}
	other := [8]byte{7}
	if _, _, ok := p.open(&other, recordTypeApplicationData, fresh()); ok {
		t.Fatalf("open with wrong sequence number succeeded")
	}
	bad := fresh()
	bad[len(bad)-1] ^= 1
	if _, _, ok := p.open(&seq, recordTypeApplicationData, bad); ok {
		t.Fatalf("open of tampered record succeeded")
	}
	for _, n := range []int{0, 8, 23} {
		if _, _, ok := p.open(&seq, recordTypeApplicationData, make([]byte, n)); ok {
			t.Fatalf("short fragment of %d bytes accepted", n)
		}
	}
}

// refCBCRecord builds a CBC record by hand: HMAC-SM3 over seq || header ||
// data, then data || mac || padding, SM4-CBC under an explicit IV.
func refCBCRecord(t *testing.T, macKey, key, iv []byte, seq [8]byte, typ byte, data []byte, padLen int, padByte byte) []byte {
	t.Helper()
	h := hmac.New(sm3.New, macKey)
	h.Write(seq[:])
	h.Write([]byte{typ, 1, 1, byte(len(data) >> 8), byte(len(data))})
	h.Write(data)
	body := append(append([]byte{}, data...), h.Sum(nil)...)
	for i := 0; i < padLen; i++ {
		body = append(body, padByte)
	}
	block, err := sm4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(body))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, body)
	return append(append([]byte{}, iv...), out...)
}

func TestCBCRecordKnownAnswer(t *testing.T) {
	macKey := bytes.Repeat([]byte{0x4d}, 32)
	key := unhex(t, "00112233445566778899aabbccddeeff")
	iv := unhex(t, "f0e0d0c0b0a090807060504030201000")
	seq := [8]byte{0, 0, 0, 0, 0, 0, 1, 0}
	data := []byte("sixteen bytes!!!x") // 17 bytes: 17+32 = 49, 15 bytes of padding
	want := refCBCRecord(t, macKey, key, iv, seq, 23, data, 15, 14)

	p, err := newProtector(suiteByID(ECC_SM4_CBC_SM3), macKey, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.seal(bytes.NewReader(iv), &seq, recordTypeApplicationData, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed\n got %x\nwant %x", got, want)
	}
	if pt, _, ok := p.open(&seq, recordTypeApplicationData, want); !ok || !bytes.Equal(pt, data) {
		t.Fatalf("open failed")
	}

	// A valid MAC under bad padding is rejected with bad_record_mac, like
	// a bad MAC.
	badPad := refCBCRecord(t, macKey, key, iv, seq, 23, data, 15, 13)
	if _, a, ok := p.open(&seq, recordTypeApplicationData, badPad); ok || a != alertBadRecordMAC {
		t.Fatalf("bad padding accepted (alert %v)", a)
	}
	badMAC := refCBCRecord(t, bytes.Repeat([]byte{0x4e}, 32), key, iv, seq, 23, data, 15, 14)
	if _, a, ok := p.open(&seq, recordTypeApplicationData, badMAC); ok || a != alertBadRecordMAC {
		t.Fatalf("bad MAC accepted (alert %v)", a)
	}
	for _, n := range []int{0, 15, 16, 47, 48, 63} {
		if _, _, ok := p.open(&seq, recordTypeApplicationData, make([]byte, n)); ok {
			t.Fatalf("short fragment of %d bytes accepted", n)
		}
	}
}

func TestExtractPadding(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		remove int
		good   byte
	}{
		{[]byte{1, 2, 3, 0}, 1, 255},
		{[]byte{1, 1, 1}, 2, 255},
		{[]byte{9, 2, 2, 2}, 3, 255},
		{[]byte{9, 3, 2, 2}, 1, 0},
		{[]byte{5}, 1, 0},
	} {
		r, g := extractPadding(tc.in)
		if r != tc.remove || g != tc.good {
			t.Errorf("extractPadding(%v) = %d, %d; want %d, %d", tc.in, r, g, tc.remove, tc.good)
		}
	}
}
