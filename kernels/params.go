package kernels

import (
	"math/bits"

	"github.com/hashforge/hashforge/worker/sha256d"
)

// jobArgs are the kernel's per-job arguments in declaration order, starting
// at kernel argument argJob: hi, the state after round 3 without the nonce,
// the midstate, then the schedule terms (see sha256d.cl).
type jobArgs [23]uint32

// Kernel argument indices of sha256d_scan.
const (
	argOut   = 0
	argSlots = 1
	argBase  = 2
	argCount = 3
	argJob   = 4
)

const k3 = 0xe9b5dba5 // SHA-256 round constant 3

func rotr(x uint32, n int) uint32 { return bits.RotateLeft32(x, -n) }
func sig0(x uint32) uint32        { return rotr(x, 7) ^ rotr(x, 18) ^ x>>3 }
func sig1(x uint32) uint32        { return rotr(x, 17) ^ rotr(x, 19) ^ x>>10 }
func bigSig0(x uint32) uint32     { return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22) }
func bigSig1(x uint32) uint32     { return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25) }

// newJobArgs derives the kernel's per-job arguments from the CPU engine's
// precomputation, so both engines share one definition of the midstate and
// the early rounds.
func newJobArgs(w *sha256d.Work) jobArgs {
	p := w.Precomputed()
	s := p.State3 // a..h after rounds 0..2
	W := &p.W     // W3 is 0 here; every other word up to W17 is exact
	a, b, c, d, e, f, g, h := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]

	// Round 3 with W3 left out: t1 = h + Σ1(e) + Ch(e,f,g) + K3 + W3, new
	// a = t1 + Σ0(a) + Maj(a,b,c), new e = d + t1. W3 is a plain addend of
	// both, so the kernel only adds the nonce.
	t1 := h + bigSig1(e) + (g ^ (e & (f ^ g))) + k3
	t2 := bigSig0(a) + ((a & b) | (c & (a | b)))

	var j jobArgs
	j[0] = p.TargetHi
	j[1], j[2], j[3], j[4] = t1+t2, a, b, c
	j[5], j[6], j[7], j[8] = d+t1, e, f, g
	copy(j[9:17], p.Midstate[:])
	j[17], j[18] = W[16], W[17]
	// W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16]; these are the
	// terms of W18, W19, W31 and W32 that read no nonce-dependent word.
	j[19] = sig1(W[16]) + W[11] + W[2]       // W18 = j19 + σ0(W3)
	j[20] = sig1(W[17]) + W[12] + sig0(W[4]) // W19 = j20 + W3
	j[21] = sig0(W[16]) + W[15]              // W31 = σ1(W29) + W24 + j21
	j[22] = sig0(W[17]) + W[16]              // W32 = σ1(W30) + W25 + j22
	return j
}
