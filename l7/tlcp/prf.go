package tlcp

import (
	"crypto/hmac"
	"hash"

	"github.com/emmansun/gmsm/sm3"
)

const (
	labelMasterSecret   = "master secret"
	labelKeyExpansion   = "key expansion"
	labelClientFinished = "client finished"
	labelServerFinished = "server finished"
)

// pHash fills out with P_hash(secret, seed) of RFC 5246 section 5 using
// HMAC-SM3.
func pHash(out, secret, seed []byte) {
	h := hmac.New(sm3.New, secret)
	h.Write(seed)
	a := h.Sum(nil)
	for j := 0; j < len(out); {
		h.Reset()
		h.Write(a)
		h.Write(seed)
		b := h.Sum(nil)
		j += copy(out[j:], b)
		h.Reset()
		h.Write(a)
		a = h.Sum(a[:0])
	}
}

// prf is the TLCP pseudo-random function: P_SM3(secret, label + seed)
// truncated to n bytes.
func prf(secret []byte, label string, seed []byte, n int) []byte {
	labelAndSeed := make([]byte, 0, len(label)+len(seed))
	labelAndSeed = append(labelAndSeed, label...)
	labelAndSeed = append(labelAndSeed, seed...)
	out := make([]byte, n)
	pHash(out, secret, labelAndSeed)
	return out
}

func masterFromPreMaster(preMaster, clientRandom, serverRandom []byte) []byte {
	seed := make([]byte, 0, 64)
	seed = append(seed, clientRandom...)
	seed = append(seed, serverRandom...)
	return prf(preMaster, labelMasterSecret, seed, masterSecretLen)
}

// keyBlock is the key material of one connection, split per direction.
type keyBlock struct {
	clientMAC, serverMAC []byte
	clientKey, serverKey []byte
	clientIV, serverIV   []byte
}

func keysFromMaster(master, clientRandom, serverRandom []byte, macLen, keyLen, ivLen int) keyBlock {
	seed := make([]byte, 0, 64)
	seed = append(seed, serverRandom...)
	seed = append(seed, clientRandom...)
	kb := prf(master, labelKeyExpansion, seed, 2*(macLen+keyLen+ivLen))
	var k keyBlock
	k.clientMAC, kb = kb[:macLen], kb[macLen:]
	k.serverMAC, kb = kb[:macLen], kb[macLen:]
	k.clientKey, kb = kb[:keyLen], kb[keyLen:]
	k.serverKey, kb = kb[:keyLen], kb[keyLen:]
	k.clientIV, kb = kb[:ivLen], kb[ivLen:]
	k.serverIV = kb[:ivLen]
	return k
}

// transcript is the running SM3 hash of the handshake messages.
type transcript struct {
	h hash.Hash
}

func newTranscript() *transcript { return &transcript{h: sm3.New()} }

func (t *transcript) write(msg []byte) { t.h.Write(msg) }

// sum returns the SM3 hash of the messages so far.
func (t *transcript) sum() []byte { return t.h.Sum(nil) }

func (t *transcript) clientFinished(master []byte) []byte {
	return prf(master, labelClientFinished, t.sum(), finishedVerifyLen)
}

func (t *transcript) serverFinished(master []byte) []byte {
	return prf(master, labelServerFinished, t.sum(), finishedVerifyLen)
}
