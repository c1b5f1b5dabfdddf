package tlcp

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
)

// cipherSuite describes one TLCP cipher suite.
type cipherSuite struct {
	id    uint16
	name  string
	ecdhe bool // SM2 key exchange instead of SM2 encryption of the pre-master secret
	aead  bool // SM4-GCM instead of SM4-CBC with HMAC-SM3
	// Lengths of the key block parts per direction.
	macLen, keyLen, ivLen int
}

var cipherSuites = []*cipherSuite{
	{id: ECC_SM4_GCM_SM3, name: "ECC_SM4_GCM_SM3", aead: true, keyLen: 16, ivLen: 4},
	{id: ECC_SM4_CBC_SM3, name: "ECC_SM4_CBC_SM3", macLen: 32, keyLen: 16, ivLen: 16},
	{id: ECDHE_SM4_GCM_SM3, name: "ECDHE_SM4_GCM_SM3", ecdhe: true, aead: true, keyLen: 16, ivLen: 4},
	{id: ECDHE_SM4_CBC_SM3, name: "ECDHE_SM4_CBC_SM3", ecdhe: true, macLen: 32, keyLen: 16, ivLen: 16},
}

func suiteByID(id uint16) *cipherSuite {
	for _, s := range cipherSuites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// CipherSuiteName returns the GB/T 38636 name of a suite ID, or a hex
// string for an unknown one.
func CipherSuiteName(id uint16) string {
	if s := suiteByID(id); s != nil {
		return s.name
	}
	return fmt.Sprintf("0x%04X", id)
}

// recordProtector seals and opens the fragments of one direction.
type recordProtector interface {
	// seal returns the protected fragment of a plaintext record.
	seal(rand io.Reader, seq *[8]byte, typ recordType, plaintext []byte) ([]byte, error)
	// open returns the plaintext of a protected fragment, or the alert to
	// send. It may decrypt in place: the fragment is consumed.
	open(seq *[8]byte, typ recordType, fragment []byte) ([]byte, alert, bool)
}

// newProtector builds the protector of one direction from the key block.
func newProtector(s *cipherSuite, macKey, key, iv []byte) (recordProtector, error) {
	block, err := sm4.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("tlcp: sm4 key: %w", err)
	}
	if s.aead {
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("tlcp: sm4 gcm: %w", err)
		}
		return &gcmProtector{aead: aead, salt: append([]byte(nil), iv...)}, nil
	}
	return &cbcProtector{block: block, mac: hmac.New(sm3.New, macKey)}, nil
}

// additionalData builds seq_num + type + version + length, the MAC header
// of RFC 5246 and the GCM additional data of RFC 5288.
func additionalData(seq *[8]byte, typ recordType, n int) []byte {
	ad := make([]byte, 13)
	copy(ad, seq[:])
	ad[8] = byte(typ)
	ad[9] = byte(VersionTLCP >> 8)
	ad[10] = byte(VersionTLCP & 0xff)
	ad[11] = byte(n >> 8)
	ad[12] = byte(n)
	return ad
}

// gcmProtector is SM4-GCM with a 4-byte implicit salt and an 8-byte explicit
// nonce (the sequence number), as in RFC 5288.
type gcmProtector struct {
	aead cipher.AEAD
	salt []byte
}

const gcmExplicitNonceLen = 8

func (g *gcmProtector) seal(_ io.Reader, seq *[8]byte, typ recordType, plaintext []byte) ([]byte, error) {
	var nonceBuf [12]byte
	nonce := append(append(nonceBuf[:0], g.salt...), seq[:]...)
	out := make([]byte, gcmExplicitNonceLen, gcmExplicitNonceLen+len(plaintext)+g.aead.Overhead())
	copy(out, seq[:])
	return g.aead.Seal(out, nonce, plaintext, additionalData(seq, typ, len(plaintext))), nil
}

func (g *gcmProtector) open(seq *[8]byte, typ recordType, fragment []byte) ([]byte, alert, bool) {
	if len(fragment) < gcmExplicitNonceLen+g.aead.Overhead() {
		return nil, alertBadRecordMAC, false
	}
	var nonceBuf [12]byte
	nonce := append(append(nonceBuf[:0], g.salt...), fragment[:gcmExplicitNonceLen]...)
	ct := fragment[gcmExplicitNonceLen:]
	n := len(ct) - g.aead.Overhead()
	// The fragment is the record's own buffer: decrypting in place saves a
	// copy of every record.
	pt, err := g.aead.Open(ct[:0], nonce, ct, additionalData(seq, typ, n))
	if err != nil {
		return nil, alertBadRecordMAC, false
	}
	return pt, 0, true
}

// cbcProtector is SM4-CBC with HMAC-SM3, MAC-then-encrypt, with an explicit
// random IV per record.
type cbcProtector struct {
	block cipher.Block
	mac   hash.Hash
}

func (c *cbcProtector) seal(rand io.Reader, seq *[8]byte, typ recordType, plaintext []byte) ([]byte, error) {
	bs := c.block.BlockSize()
	c.mac.Reset()
	c.mac.Write(additionalData(seq, typ, len(plaintext)))
	c.mac.Write(plaintext)
	padLen := bs - (len(plaintext)+c.mac.Size())%bs
	out := make([]byte, bs, bs+len(plaintext)+c.mac.Size()+padLen)
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("tlcp: read explicit iv: %w", err)
	}
	out = append(out, plaintext...)
	out = c.mac.Sum(out)
	for i := 0; i < padLen; i++ {
		out = append(out, byte(padLen-1))
	}
	cipher.NewCBCEncrypter(c.block, out[:bs]).CryptBlocks(out[bs:], out[bs:])
	return out, nil
}

func (c *cbcProtector) open(seq *[8]byte, typ recordType, fragment []byte) ([]byte, alert, bool) {
	bs := c.block.BlockSize()
	macSize := c.mac.Size()
	minLen := bs + (macSize+1+bs-1)/bs*bs
	if len(fragment)%bs != 0 || len(fragment) < minLen {
		return nil, alertBadRecordMAC, false
	}
	payload := make([]byte, len(fragment)-bs)
	cipher.NewCBCDecrypter(c.block, fragment[:bs]).CryptBlocks(payload, fragment[bs:])

	// From here on the work done must not depend on the padding, so that
	// neither timing nor the alert tells a padding error from a MAC error
	// (Lucky Thirteen); this follows crypto/tls.
	paddingLen, paddingGood := extractPadding(payload)
	n := len(payload) - macSize - paddingLen
	n = subtle.ConstantTimeSelect(int(uint32(n)>>31), 0, n) // if n < 0 { n = 0 }
	remoteMAC := payload[n : n+macSize]
	c.mac.Reset()
	c.mac.Write(additionalData(seq, typ, n))
	c.mac.Write(payload[:n])
	localMAC := c.mac.Sum(nil)
	// Hash the padding too, so the amount hashed is the same whatever
	// the padding length.
	c.mac.Write(payload[n+macSize:])
	if subtle.ConstantTimeCompare(localMAC, remoteMAC)&int(paddingGood) != 1 {
		return nil, alertBadRecordMAC, false
	}
	return payload[:n], 0, true
}

// extractPadding returns, in constant time, the number of bytes of CBC
// padding (with its length byte) at the end of payload and 255 if the
// padding is well formed, 0 if not. It is adapted from crypto/tls.
func extractPadding(payload []byte) (toRemove int, good byte) {
	if len(payload) < 1 {
		return 0, 0
	}
	paddingLen := payload[len(payload)-1]
	t := uint(len(payload)-1) - uint(paddingLen)
	// if len(payload) >= (paddingLen - 1) then the MSB of t is zero
	good = byte(int32(^t) >> 31)

	// The maximum possible padding length plus the length byte.
	toCheck := 256
	// The length of the padded data is public, so we can use an if here.
	if toCheck > len(payload) {
		toCheck = len(payload)
	}
	for i := 0; i < toCheck; i++ {
		t := uint(paddingLen) - uint(i)
		// if i <= paddingLen then the MSB of t is zero
		mask := byte(int32(^t) >> 31)
		b := payload[len(payload)-1-i]
		good &^= mask&paddingLen ^ mask&b
	}

	// AND together the bits of good and replicate the result across all
	// the bits.
	good &= good << 4
	good &= good << 2
	good &= good << 1
	good = uint8(int8(good) >> 7)

	paddingLen &= good
	toRemove = int(paddingLen) + 1
	return toRemove, good
}

var errSeqOverflow = errors.New("tlcp: sequence number wraparound")
