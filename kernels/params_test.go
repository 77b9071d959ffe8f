package kernels

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/worker/sha256d"
)

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

func rotr(x uint32, n int) uint32 { return bits.RotateLeft32(x, -n) }
func sig0(x uint32) uint32        { return rotr(x, 7) ^ rotr(x, 18) ^ x>>3 }
func sig1(x uint32) uint32        { return rotr(x, 17) ^ rotr(x, 19) ^ x>>10 }
func bigSig0(x uint32) uint32     { return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22) }
func bigSig1(x uint32) uint32     { return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25) }

func emuRound(s *[8]uint32, i int, w uint32) {
	a, b, c, d, e, f, g, h := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	t1 := h + bigSig1(e) + (g ^ (e & (f ^ g))) + k256[i] + w
	t2 := bigSig0(a) + ((a & b) | (c & (a | b)))
	*s = [8]uint32{t1 + t2, a, b, c, d + t1, e, f, g}
}

// emulateH7 is sha256d.cl transcribed into Go: the same arguments, the same
// literal padding words, the same partial schedule sums. It pins the
// host-side precomputation (newJobArgs) without an OpenCL device, so a
// wrong partial shows up here as arithmetic, not as a kernel mystery.
func emulateH7(j *jobArgs, nonce uint32) uint32 {
	var w [64]uint32
	w3 := bits.ReverseBytes32(nonce)
	w[3] = w3
	w[4], w[15] = 0x80000000, 0x280
	w[16], w[17] = j[17], j[18]
	w[18] = j[19] + sig0(w3)
	w[19] = j[20] + w3
	w[20] = sig1(w[18]) + 0x80000000
	w[21] = sig1(w[19])
	w[22] = sig1(w[20]) + 0x280
	for i := 23; i <= 29; i++ {
		w[i] = sig1(w[i-2]) + w[i-7]
	}
	w[30] = sig1(w[28]) + w[23] + sig0(0x280)
	w[31] = sig1(w[29]) + w[24] + j[21]
	w[32] = sig1(w[30]) + w[25] + j[22]
	for i := 33; i < 64; i++ {
		w[i] = sig1(w[i-2]) + w[i-7] + sig0(w[i-15]) + w[i-16]
	}
	s := [8]uint32{j[1] + w3, j[2], j[3], j[4], j[5] + w3, j[6], j[7], j[8]}
	for i := 4; i < 64; i++ {
		emuRound(&s, i, w[i])
	}
	var x [64]uint32
	for i := range 8 {
		x[i] = s[i] + j[9+i]
	}
	x[8], x[15] = 0x80000000, 0x100
	for i := 16; i <= 60; i++ {
		x[i] = sig1(x[i-2]) + x[i-7] + sig0(x[i-15]) + x[i-16]
	}
	s = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
	for i := 0; i <= 60; i++ {
		emuRound(&s, i, x[i])
	}
	return s[4] + 0x5be0cd19 // round 60's new e, which becomes h by round 63
}

func TestJobArgsMatchReferenceHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var hdr [80]byte
		for i := range hdr {
			hdr[i] = byte(rng.Uint32())
		}
		var target [32]byte
		j := newJobArgs(sha256d.NewWork(&hdr, &target))
		nonce := rng.Uint32()
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		sum := pow.SHA256d(hdr[:])
		want := binary.BigEndian.Uint32(sum[28:])
		if got := emulateH7(&j, nonce); got != want {
			t.Fatalf("header %x nonce %#x: emulated H7 %#08x, reference %#08x", hdr, nonce, got, want)
		}
	}
}
