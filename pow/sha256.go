package pow

import (
	"encoding/binary"
	"math/bits"
)

// The share check hashes short messages only: a coinbase of a few hundred
// bytes, a 64-byte merkle pair per branch step, an 80-byte header. For
// those crypto/sha256's per-call work (digest setup, buffering, padding,
// Sum) costs about as much as the block compressions themselves, so pow
// carries its own SHA-256: a compression function per CPU path
// (sha256block_*.go) and, above it, the few message shapes the pool hashes,
// with their fixed padding built in.

var sha256IV = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

var sha256K = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// expandSchedule fills w[16:] from the message words w[:16].
func expandSchedule(w *[64]uint32) {
	for i := 16; i < 64; i++ {
		v1, v2 := w[i-2], w[i-15]
		s1 := bits.RotateLeft32(v1, -17) ^ bits.RotateLeft32(v1, -19) ^ v1>>10
		s0 := bits.RotateLeft32(v2, -7) ^ bits.RotateLeft32(v2, -18) ^ v2>>3
		w[i] = s1 + w[i-7] + s0 + w[i-16]
	}
}

// SHA256Midstate is SHA-256's chaining state after the whole 64-byte
// blocks of a message prefix: a message sharing the prefix is hashed from
// here, so the prefix's blocks are compressed once, not per message (the
// pool's coinbase starts with the job's fixed coinb1). The zero value is
// the state of an empty prefix.
type SHA256Midstate struct {
	h [8]uint32
	n int // bytes consumed, a multiple of 64
}

// NewSHA256Midstate compresses prefix's whole 64-byte blocks; Len says how
// many bytes that is. The rest of prefix, if any, is the caller's to pass
// on to SHA256d with the rest of the message.
func NewSHA256Midstate(prefix []byte) SHA256Midstate {
	m := SHA256Midstate{h: sha256IV, n: len(prefix) &^ 63}
	if m.n > 0 {
		block(&m.h, prefix[:m.n])
	}
	return m
}

// Len is how many bytes of the prefix the state covers.
func (m *SHA256Midstate) Len() int { return m.n }

// SHA256d returns the double SHA-256 of the covered prefix followed by
// rest. It does not allocate.
func (m *SHA256Midstate) SHA256d(rest []byte) [32]byte {
	h := m.finish(rest)
	var out [32]byte
	hash32(&out, &h)
	return out
}

// sum256 is the single SHA-256 of the covered prefix followed by rest.
func (m *SHA256Midstate) sum256(rest []byte) [32]byte {
	h := m.finish(rest)
	var out [32]byte
	putState(&out, &h)
	return out
}

// finish returns the final state: rest's whole blocks, then the last one
// or two with the padding and bit length.
func (m *SHA256Midstate) finish(rest []byte) [8]uint32 {
	h := m.h
	if m.n == 0 {
		h = sha256IV
	}
	full := len(rest) &^ 63
	if full > 0 {
		block(&h, rest[:full])
	}
	var last [128]byte
	r := copy(last[:], rest[full:])
	last[r] = 0x80
	end := 64
	if r >= 56 {
		end = 128
	}
	binary.BigEndian.PutUint64(last[end-8:end], uint64(m.n+len(rest))*8)
	block(&h, last[:end])
	return h
}

// SHA256d64 is the double SHA-256 of exactly 64 bytes: one merkle tree
// step. It does not allocate.
func SHA256d64(b *[64]byte) [32]byte {
	var out [32]byte
	sha256d64(&out, b)
	return out
}

// putState writes a SHA-256 state as its digest bytes.
func putState(out *[32]byte, h *[8]uint32) {
	for i, v := range h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
}
