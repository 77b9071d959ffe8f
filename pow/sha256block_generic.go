package pow

import (
	"encoding/binary"
	"math/bits"
)

// pad64WK is the message schedule plus round constants of the block that
// ends every 64-byte message (0x80, zeros, the bit length 512). Every merkle
// step hashes one, so its schedule is worked out once, here: in plain Go
// that saves about a third of the step.
var pad64WK = func() [64]uint32 {
	var w [64]uint32
	w[0], w[15] = 0x80000000, 64*8
	expandSchedule(&w)
	for i := range w {
		w[i] += sha256K[i]
	}
	return w
}()

// blockGeneric compresses p's whole 64-byte blocks into h, in plain Go: the
// path for CPUs without SHA extensions, other architectures and -tags
// purego, and the reference the assembly is tested against.
func blockGeneric(h *[8]uint32, p []byte) {
	var w [64]uint32
	for ; len(p) >= 64; p = p[64:] {
		for i := range 16 {
			w[i] = binary.BigEndian.Uint32(p[4*i:])
		}
		expandSchedule(&w)
		for i := range w {
			w[i] += sha256K[i]
		}
		roundsGeneric(h, &w)
	}
}

// roundsGeneric runs the 64 rounds on a schedule that already has the
// round constants added (so fixed blocks can bring a precomputed one), and
// adds the result into h.
func roundsGeneric(h *[8]uint32, wk *[64]uint32) {
	a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	for i := range wk {
		t1 := hh + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) +
			(e&f ^ ^e&g) + wk[i]
		t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) +
			(a&b ^ a&c ^ b&c)
		hh, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+t2
	}
	h[0] += a
	h[1] += b
	h[2] += c
	h[3] += d
	h[4] += e
	h[5] += f
	h[6] += g
	h[7] += hh
}

// hash32Generic writes the SHA-256 of the 32-byte digest state h stands for.
func hash32Generic(out *[32]byte, h *[8]uint32) {
	var blk [64]byte
	for i, v := range h {
		binary.BigEndian.PutUint32(blk[4*i:], v)
	}
	blk[32] = 0x80
	blk[62] = 0x01 // bit length 256
	s := sha256IV
	blockGeneric(&s, blk[:])
	putState(out, &s)
}

// sha256d64Generic is SHA256d64's plain Go path.
func sha256d64Generic(out *[32]byte, in *[64]byte) {
	h := sha256IV
	blockGeneric(&h, in[:])
	roundsGeneric(&h, &pad64WK)
	hash32Generic(out, &h)
}
