package kernels

import "github.com/hashforge/hashforge/worker/sha256d"

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

// newJobArgs derives the kernel's per-job arguments from the CPU engine's
// precomputation, so both engines share one definition of the midstate and
// the early rounds.
func newJobArgs(w *sha256d.Work) jobArgs {
	p := w.Precomputed()
	var j jobArgs
	j[0] = p.TargetHi
	copy(j[1:9], p.State4[:]) // the kernel adds the nonce to a and e
	copy(j[9:17], p.Midstate[:])
	j[17], j[18] = p.W16, p.W17
	// The nonce-free terms of W18, W19, W31 and W32, the words whose other
	// terms the kernel computes from the nonce.
	j[19], j[20], j[21], j[22] = p.Addends[18], p.Addends[19], p.Addends[31], p.Addends[32]
	return j
}
