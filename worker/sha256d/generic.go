package sha256d

import (
	"math/bits"
)

//go:generate go run ./internal/asmgen

func init() { register("generic", 0, true, nil, func() Scanner { return generic{} }) }

// generic is the portable kernel: one nonce at a time in plain Go, with the
// same per-job savings as the SIMD kernels. genericH7 (generic_rounds.go) is
// generated from the plan the AVX2 and AVX-512 kernels share: block 2 of the
// header resumes after round 3, nonce-free schedule terms are summed per
// job, K and the padding words are folded into literals, and the second hash
// stops after round 60, computing only what state word 7 depends on.
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
