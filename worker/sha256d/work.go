package sha256d

import (
	"encoding/binary"
	"math/bits"
)

// Work is the per-job precomputation of a header and target. It is
// read-only after NewWork and safe to share between goroutines.
type Work struct {
	header [80]byte
	target [32]byte
	k      kernelData
}

// kernelData holds everything about a job that does not depend on the nonce.
// The assembly kernels address it by offset (see the kd_* constants in the
// generated .s files), so fields must only be appended.
type kernelData struct {
	// SHA-NI view. Register order: dword 0 is the lowest lane; ABEF holds
	// A,B,E,F in dwords 3..0, CDGH likewise.
	midABEF [4]uint32 // 0: state after the first 64 header bytes
	midCDGH [4]uint32 // 16
	s2ABEF  [4]uint32 // 32: second block after its first two rounds
	s2CDGH  [4]uint32 // 48
	wk23    [4]uint32 // 64: W2+K2, K3 (W3, the nonce, is added per lane)
	g0      [4]uint32 // 80: W0, W1, W2, 0
	c5      [4]uint32 // 96: msg1(W4..W11) + W13..W16, all nonce-free
	c7      [4]uint32 // 112: msg1(W12..W16), the nonce-free half of W28..W31
	hi      uint32    // 128: top 32 bits of the target as an integer
	_       [3]uint32

	// 144: σ1 terms of W16..W19. They read W14..W17, all nonce-free, so the
	// SHA-NI kernel replaces that group's sha256msg2 (slow on Zen) by an add.
	c4 [4]uint32

	// Lane-per-nonce kernels (generic, AVX2, AVX-512), laid out by the plan
	// in internal/asmgen/plan.go. Every value is repeated 8 times so that
	// AVX2 can use it as a memory operand; generic reads element 0 and
	// AVX-512 broadcasts element 0.
	v4   [8][8]uint32  // 160: a..h after round 3 of block 2 with W3 = 0
	vmid [8][8]uint32  // 416: midstate a..h
	vj   [64][8]uint32 // 672: see laneAddends
}

var iv = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

var k256 = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

func s0(x uint32) uint32 { return bits.RotateLeft32(x, -7) ^ bits.RotateLeft32(x, -18) ^ x>>3 }
func s1(x uint32) uint32 { return bits.RotateLeft32(x, -17) ^ bits.RotateLeft32(x, -19) ^ x>>10 }

// round applies SHA-256 round i to s (a..h).
func round(s *[8]uint32, i int, w uint32) {
	a, b, c, d, e, f, g, h := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	t1 := h + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) +
		(g ^ (e & (f ^ g))) + k256[i] + w
	t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) +
		((a & b) | (c & (a | b)))
	s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7] = t1+t2, a, b, c, d+t1, e, f, g
}

// compress is the textbook compression function, used only for per-job setup.
func compress(state *[8]uint32, block []byte) {
	var w [64]uint32
	for i := 0; i < 16; i++ {
		w[i] = binary.BigEndian.Uint32(block[4*i:])
	}
	for i := 16; i < 64; i++ {
		w[i] = s1(w[i-2]) + w[i-7] + s0(w[i-15]) + w[i-16]
	}
	s := *state
	for i := 0; i < 64; i++ {
		round(&s, i, w[i])
	}
	for i := range state {
		state[i] += s[i]
	}
}

// abef and cdgh arrange a..h the way sha256rnds2 keeps them.
func abef(s *[8]uint32) [4]uint32 { return [4]uint32{s[5], s[4], s[1], s[0]} }
func cdgh(s *[8]uint32) [4]uint32 { return [4]uint32{s[7], s[6], s[3], s[2]} }

// msg1 is sha256msg1: lane i of the result is a[i] + σ0(the word after it).
func msg1(a, b [4]uint32) [4]uint32 {
	return [4]uint32{a[0] + s0(a[1]), a[1] + s0(a[2]), a[2] + s0(a[3]), a[3] + s0(b[0])}
}

// NewWork precomputes a job. Header bytes 76..79 (the nonce) are ignored.
func NewWork(header *[80]byte, target *[32]byte) *Work {
	w := &Work{header: *header, target: *target}
	binary.LittleEndian.PutUint32(w.header[76:], 0)
	k := &w.k

	mid := iv
	compress(&mid, header[:64])
	k.midABEF, k.midCDGH = abef(&mid), cdgh(&mid)
	k.hi = binary.LittleEndian.Uint32(target[28:])

	// Second block: W0..W2 from the header tail, W3 the nonce, then the
	// padding of an 80-byte message.
	var m [64]uint32
	for i := 0; i < 3; i++ {
		m[i] = binary.BigEndian.Uint32(header[64+4*i:])
	}
	m[4] = 0x80000000
	m[15] = 80 * 8
	// Schedule with W3 = 0: entries that do not depend on W3 come out exact
	// (W16, W17); the rest are the nonce-free part the kernels add W3 terms to.
	for i := 16; i < 64; i++ {
		m[i] = s1(m[i-2]) + m[i-7] + s0(m[i-15]) + m[i-16]
	}

	s := mid
	round(&s, 0, m[0])
	round(&s, 1, m[1])
	k.s2ABEF, k.s2CDGH = abef(&s), cdgh(&s)
	round(&s, 2, m[2])

	k.wk23 = [4]uint32{m[2] + k256[2], k256[3], 0, 0}
	k.g0 = [4]uint32{m[0], m[1], m[2], 0}
	// msg1(G1,G2) + (W13,W14,W15,W16): every term is nonce-free.
	c5 := msg1([4]uint32{m[4], m[5], m[6], m[7]}, [4]uint32{m[8], m[9], m[10], m[11]})
	k.c5 = [4]uint32{c5[0] + m[13], c5[1] + m[14], c5[2] + m[15], c5[3] + m[16]}
	// msg1(G3,G4) reads only W12..W16; the kernel adds W21..W24.
	k.c7 = msg1([4]uint32{m[12], m[13], m[14], m[15]}, [4]uint32{m[16], 0, 0, 0})
	k.c4 = [4]uint32{s1(m[14]), s1(m[15]), s1(m[16]), s1(m[17])}

	s4 := s
	round(&s4, 3, 0)
	vj := laneAddends(&m)
	for j := 0; j < 8; j++ {
		k.v4[j] = splat(s4[j])
		k.vmid[j] = splat(mid[j])
	}
	for i := range vj {
		k.vj[i] = splat(vj[i])
	}
	return w
}

func splat(v uint32) [8]uint32 { return [8]uint32{v, v, v, v, v, v, v, v} }

// laneAddends mirrors planBlock1 in internal/asmgen/plan.go. m is block 2's
// schedule computed with W3 = 0, exact for every word that does not depend
// on the nonce. For a nonce-dependent word i the kernels compute only the
// terms that read nonce-dependent words and add out[i], the sum of the
// others; out[16] and out[17] are the nonce-free W16+K16 and W17+K17.
func laneAddends(m *[64]uint32) (out [64]uint32) {
	var isVar [64]bool
	isVar[3] = true
	for i := 16; i < 64; i++ {
		isVar[i] = isVar[i-2] || isVar[i-7] || isVar[i-15] || isVar[i-16]
		if !isVar[i] {
			out[i] = m[i] + k256[i]
			continue
		}
		if !isVar[i-2] {
			out[i] += s1(m[i-2])
		}
		if !isVar[i-7] {
			out[i] += m[i-7]
		}
		if !isVar[i-15] {
			out[i] += s0(m[i-15])
		}
		if !isVar[i-16] {
			out[i] += m[i-16]
		}
	}
	return out
}

// Header returns the job's header with a zero nonce.
func (w *Work) Header() [80]byte { return w.header }

// Target returns the job's target.
func (w *Work) Target() [32]byte { return w.target }
