package main

import "math/bits"

// The per-nonce work of SHA-256d, shared by every lane-per-nonce kernel
// (generic Go, AVX2, AVX-512). Only the header's second block and the second
// hash run per nonce; of the second block's message, W0..W2 are fixed per job,
// W3 is the nonce and W4..W15 are the padding of an 80-byte message. A
// schedule word is "var" when it depends on the nonce; its other terms are
// summed once per job into an addend (kernelData.vj, computed by the mirror
// of this logic in work.go) or, in the second hash, folded into a constant
// here. The kernels differ only in how they spell the operations.

// term is one summand of W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16].
type term struct {
	src int
	fn  int // 0: the word itself, 1: σ0, 2: σ1
}

// wordPlan says how to form schedule word i from the nonce-dependent words.
type wordPlan struct {
	vars  []term // terms that read var words, computed per nonce
	jobIx int    // ≥ 0: add kernelData.vj[jobIx] (nonce-free terms of block 1)
	c     uint32 // constant terms (second hash only; block 1 puts them in vj)
}

func sig0(x uint32) uint32 { return bits.RotateLeft32(x, -7) ^ bits.RotateLeft32(x, -18) ^ x>>3 }
func sig1(x uint32) uint32 { return bits.RotateLeft32(x, -17) ^ bits.RotateLeft32(x, -19) ^ x>>10 }

func schedTerms(i int) []term {
	return []term{{i - 2, 2}, {i - 7, 0}, {i - 15, 1}, {i - 16, 0}}
}

// planBlock1 returns the plan of the header's second block for W18..W63
// (W16 and W17 do not read the nonce); words that do not read the nonce
// have no plan.
func planBlock1() (plans [64]wordPlan) {
	var isVar [64]bool // whether W[j] reads the nonce
	isVar[3] = true
	for i := 16; i < 64; i++ {
		p := wordPlan{jobIx: -1}
		for _, t := range schedTerms(i) {
			if isVar[t.src] {
				p.vars = append(p.vars, t)
			} else if t.src < 5 || t.src > 14 {
				// Job words W0..W2, W16, W17 and the padding words W4 and
				// W15: work.go sums these terms into vj[i]. W5..W14 are 0.
				p.jobIx = i
			}
		}
		isVar[i] = len(p.vars) > 0
		if isVar[i] {
			plans[i] = p
		}
	}
	return plans
}

// block2Const holds the constant words of the second hash's message (the
// 32-byte first hash padded to one block); W0..W7 are the first hash.
func block2Const(j int) (uint32, bool) {
	switch {
	case j < 8 || j > 15:
		return 0, false
	case j == 8:
		return 0x80000000, true
	case j == 15:
		return 256, true
	default:
		return 0, true
	}
}

// planBlock2 returns the second hash's plan for W16..W60 (W61..W63 are not
// needed: the kernels stop once state word 7 is known, after round 60).
func planBlock2() (plans [64]wordPlan) {
	for i := 16; i <= 60; i++ {
		p := wordPlan{jobIx: -1}
		for _, t := range schedTerms(i) {
			if !isConst2(t.src) {
				p.vars = append(p.vars, t)
				continue
			}
			c, _ := block2Const(t.src)
			switch t.fn {
			case 1:
				c = sig0(c)
			case 2:
				c = sig1(c)
			}
			p.c += c
		}
		plans[i] = p
	}
	return plans
}

func isConst2(j int) bool { _, ok := block2Const(j); return ok }

// lastRound is the last round of the second hash that runs: its new e plus
// the initial H7 is the final state word 7 (rounds 61..63 only move it to h).
const lastRound = 60
