package sha256d

import (
	"math/bits"
)

func init() { register("generic", 0, true, func() Scanner { return generic{} }) }

// generic is the portable kernel. It already does the per-job savings the
// SIMD kernels do (three precomputed rounds, nonce-free schedule words, the
// second hash stopped once H7 is known) so that it is a fair fallback.
type generic struct{}

func (generic) Name() string { return "generic" }

func (generic) Scan(w *Work, first, last uint32, found []uint32) []uint32 {
	if first > last {
		return found
	}
	hi := w.k.hi
	for n := first; ; n++ {
		if h7 := genericH7(&w.k, n); bits.ReverseBytes32(h7) <= hi {
			found = confirm(w, n, found)
		}
		if n == last {
			return found
		}
	}
}

// genericH7 returns state word 7 of the double SHA-256 for one nonce, which
// as hash bytes 28..31 is the top of the 256-bit integer.
func genericH7(k *kernelData, nonce uint32) uint32 {
	w3 := bits.ReverseBytes32(nonce)
	var m [64]uint32
	copy(m[:18], k.w[:18])
	m[3] = w3
	for i := 18; i < 64; i++ {
		m[i] = s1(m[i-2]) + m[i-7] + s0(m[i-15]) + m[i-16]
	}
	s := k.s3
	for i := 3; i < 64; i++ {
		round(&s, i, m[i])
	}
	for i := range s {
		m[i] = s[i] + k.mid[i]
	}
	m[8] = 0x80000000
	for i := 9; i < 15; i++ {
		m[i] = 0
	}
	m[15] = 32 * 8
	for i := 16; i < 61; i++ {
		m[i] = s1(m[i-2]) + m[i-7] + s0(m[i-15]) + m[i-16]
	}
	s = iv
	for i := 0; i < 60; i++ {
		round(&s, i, m[i])
	}
	// After round 60 the new e moves to h by round 63, so that e plus the
	// initial H7 is the final word 7; rounds 61..63 cannot change it.
	e := s[4]
	t1 := s[7] + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) +
		(s[6] ^ (e & (s[5] ^ s[6]))) + k256[60] + m[60]
	return iv[7] + s[3] + t1
}
