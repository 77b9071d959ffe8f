package sha256d

// Precomputed is a copy of a Work's nonce-independent values, for hashing
// engines outside this package (the OpenCL host in kernels/) that want the
// same per-job savings the CPU kernels get without redoing the setup.
//
// Word order is SHA-256's: a..h for states, W0..W17 for the schedule of the
// header's second 64-byte block (the block that holds the nonce as W3).
type Precomputed struct {
	// Midstate is the state after the header's first 64 bytes; the first
	// hash adds it to the second block's result.
	Midstate [8]uint32
	// State3 is a..h after rounds 0..2 of the second block, which read
	// only W0..W2 (merkle root tail, ntime, nbits).
	State3 [8]uint32
	// W holds W0..W17 of the second block with W3 (the nonce, byte-swapped)
	// taken as 0. Every other entry is exact: W16 and W17 do not read W3.
	W [18]uint32
	// TargetHi is the target's most significant 32 bits: a hash whose top
	// word (state word 7 of the second hash, byte-swapped) is above it
	// cannot meet the target.
	TargetHi uint32
}

// Precomputed returns the job's nonce-independent values.
func (w *Work) Precomputed() Precomputed {
	p := Precomputed{Midstate: w.k.mid, State3: w.k.s3, TargetHi: w.k.hi}
	copy(p.W[:], w.k.w[:18])
	return p
}
