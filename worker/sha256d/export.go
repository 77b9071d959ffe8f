package sha256d

// Precomputed is a copy of a Work's nonce-independent values, for hashing
// engines outside this package (the OpenCL host in kernels/) that want the
// same per-job savings the CPU kernels get without redoing the setup.
//
// Word order is SHA-256's: a..h for states; schedule words are those of the
// header's second 64-byte block (the block that holds the nonce as W3).
type Precomputed struct {
	// Midstate is the state after the header's first 64 bytes; the first
	// hash adds it to the second block's result.
	Midstate [8]uint32
	// State4 is a..h after round 3 of the second block computed with
	// W3 (the nonce) = 0: W3 enters round 3's new a and new e as a plain
	// addend, so an engine adds the byte-swapped nonce to both.
	State4 [8]uint32
	// W16 and W17 of the second block: the first schedule words, which
	// read no nonce.
	W16, W17 uint32
	// Addends[i], for a schedule word i ≥ 18 that reads the nonce, is the
	// sum of its terms that do not (the lane kernels' plan: see
	// laneAddends); an engine computes only the nonce-dependent terms.
	Addends [64]uint32
	// TargetHi is the target's most significant 32 bits: a hash whose top
	// word (state word 7 of the second hash, byte-swapped) is above it
	// cannot meet the target.
	TargetHi uint32
}

// Precomputed returns the job's nonce-independent values.
func (w *Work) Precomputed() Precomputed {
	p := Precomputed{TargetHi: w.k.hi,
		// laneAddends gives W16+K16 and W17+K17 whole.
		W16: w.k.vj[16][0] - k256[16], W17: w.k.vj[17][0] - k256[17]}
	for i := range p.State4 {
		p.State4[i] = w.k.v4[i][0]
		p.Midstate[i] = w.k.vmid[i][0]
	}
	for i := range p.Addends {
		p.Addends[i] = w.k.vj[i][0]
	}
	return p
}
