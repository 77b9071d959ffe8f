package stratum2

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// MACLen is the Poly1305 tag length.
const MACLen = 16

// ErrDecrypt is an AEAD failure: a flipped bit, a replayed or reordered
// message, or the wrong key. The connection cannot continue after it.
var ErrDecrypt = errors.New("stratum2: message authentication failed")

// errNonceExhausted stops a CipherState before its nonce would wrap, which
// would reuse a key/nonce pair.
var errNonceExhausted = errors.New("stratum2: cipher nonce exhausted")

// cipherState is the spec's CipherState: key k and a 64-bit counter n. The
// nonce is 4 zero bytes then n little-endian (the Noise convention).
type cipherState struct {
	aead interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	}
	n     uint64
	nonce [12]byte
	// scratch holds a plaintext frame header: a stack array would escape
	// through the AEAD interface and cost an allocation per frame.
	scratch [HeaderLen]byte
}

func (c *cipherState) initializeKey(k []byte) {
	a, err := chacha20poly1305.New(k)
	if err != nil {
		panic(err) // k is always 32 bytes here
	}
	c.aead = a
	c.n = 0
}

func (c *cipherState) hasKey() bool { return c.aead != nil }

func (c *cipherState) setNonce() error {
	if c.n == ^uint64(0) {
		return errNonceExhausted
	}
	binary.LittleEndian.PutUint64(c.nonce[4:], c.n)
	return nil
}

// encryptWithAd appends the ciphertext of pt to dst. Without a key it appends
// pt unchanged (the first handshake message).
func (c *cipherState) encryptWithAd(dst, ad, pt []byte) ([]byte, error) {
	if !c.hasKey() {
		return append(dst, pt...), nil
	}
	if err := c.setNonce(); err != nil {
		return dst, err
	}
	out := c.aead.Seal(dst, c.nonce[:], pt, ad)
	c.n++
	return out, nil
}

// decryptWithAd appends the plaintext of ct to dst. On failure n is left as
// it was, as the spec says; the caller closes the connection anyway.
func (c *cipherState) decryptWithAd(dst, ad, ct []byte) ([]byte, error) {
	if !c.hasKey() {
		return append(dst, ct...), nil
	}
	if err := c.setNonce(); err != nil {
		return dst, err
	}
	out, err := c.aead.Open(dst, c.nonce[:], ct, ad)
	if err != nil {
		return dst, ErrDecrypt
	}
	c.n++
	return out, nil
}

// hmacHash is HMAC-SHA256 (RFC 2104).
func hmacHash(key, data []byte) [32]byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// hkdf2 is the spec's HKDF with two outputs and empty info: RFC 5869's
// extract (salt = chaining key) then two expand blocks.
func hkdf2(ck, ikm []byte) (out1, out2 [32]byte) {
	temp := hmacHash(ck, ikm)
	out1 = hmacHash(temp[:], []byte{0x01})
	var buf [33]byte
	copy(buf[:], out1[:])
	buf[32] = 0x02
	out2 = hmacHash(temp[:], buf[:])
	return out1, out2
}

// symmetricState is the handshake's h, ck and CipherState.
type symmetricState struct {
	h, ck [32]byte
	cs    cipherState
	sha   hash.Hash
}

// ProtocolName is the Noise protocol name both sides hash into h and ck.
const ProtocolName = "Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"

func newSymmetricState() *symmetricState {
	s := &symmetricState{sha: sha256.New()}
	s.ck = sha256.Sum256([]byte(ProtocolName))
	s.h = sha256.Sum256(s.ck[:])
	return s
}

func (s *symmetricState) mixHash(data []byte) {
	s.sha.Reset()
	s.sha.Write(s.h[:])
	s.sha.Write(data)
	s.sha.Sum(s.h[:0])
}

func (s *symmetricState) mixKey(ikm []byte) {
	ck, k := hkdf2(s.ck[:], ikm)
	s.ck = ck
	s.cs.initializeKey(k[:])
}

func (s *symmetricState) encryptAndHash(dst, pt []byte) ([]byte, error) {
	start := len(dst)
	out, err := s.cs.encryptWithAd(dst, s.h[:], pt)
	if err != nil {
		return dst, err
	}
	s.mixHash(out[start:])
	return out, nil
}

func (s *symmetricState) decryptAndHash(dst, ct []byte) ([]byte, error) {
	out, err := s.cs.decryptWithAd(dst, s.h[:], ct)
	if err != nil {
		return dst, err
	}
	s.mixHash(ct)
	return out, nil
}

// split derives the two transport CipherStates: c1 for initiator → responder,
// c2 for responder → initiator.
func (s *symmetricState) split() (c1, c2 *cipherState) {
	k1, k2 := hkdf2(s.ck[:], nil)
	c1, c2 = new(cipherState), new(cipherState)
	c1.initializeKey(k1[:])
	c2.initializeKey(k2[:])
	return c1, c2
}
