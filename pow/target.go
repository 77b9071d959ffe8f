// Package pow is Bitcoin's proof-of-work arithmetic, written once for the
// pool, the payout process, the miner and its OpenCL host: the compact
// nBits encoding, 256-bit targets, Stratum difficulty (both ways),
// double SHA-256, the merkle branch and its fold, the 80-byte header and
// the word-swapped prevhash of mining.notify.
//
// It imports only the standard library. Byte orders follow the chain:
// "internal" order is the 32 bytes SHA-256 produces (a little-endian
// number; headers and merkle branches carry it), "display" order is the
// reversed hex that RPC and block explorers print.
package pow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// Target is a 256-bit proof-of-work target as four 64-bit limbs, most
// significant first. Shares are judged by integer comparison against it: a
// float comparison would misjudge hashes within rounding distance of the
// target, and a big.Int per share would cost allocations on the hot path.
type Target [4]uint64

// diff1 is the difficulty-1 target 0x00000000FFFF0000…0000 (bdiff), the
// reference every Stratum difficulty is relative to.
var diff1 = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

// diff1Float is diff1 as a float64 (exact: 16 significant bits).
var diff1Float = 0xFFFF * math.Ldexp(1, 208)

// maxTarget is 2^256-1; targets easier than that do not exist.
var maxTarget = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// TargetFromBig converts n to a Target, saturating at 2^256-1 and at zero.
func TargetFromBig(n *big.Int) Target {
	if n.Sign() <= 0 {
		return Target{}
	}
	if n.Cmp(maxTarget) > 0 {
		n = maxTarget
	}
	var buf [32]byte
	n.FillBytes(buf[:])
	return Target{
		binary.BigEndian.Uint64(buf[0:8]),
		binary.BigEndian.Uint64(buf[8:16]),
		binary.BigEndian.Uint64(buf[16:24]),
		binary.BigEndian.Uint64(buf[24:32]),
	}
}

// Big returns the target as a big.Int.
func (t Target) Big() *big.Int {
	var buf [32]byte
	for i, limb := range t {
		binary.BigEndian.PutUint64(buf[i*8:], limb)
	}
	return new(big.Int).SetBytes(buf[:])
}

// String returns the target as 64 hex digits, most significant first.
func (t Target) String() string {
	return fmt.Sprintf("%016x%016x%016x%016x", t[0], t[1], t[2], t[3])
}

// Less reports whether t is a strictly harder (smaller) target than u.
func (t Target) Less(u Target) bool {
	for i := range t {
		if t[i] != u[i] {
			return t[i] < u[i]
		}
	}
	return false
}

// TargetFromHash reads 32 bytes in internal byte order (the order SHA-256
// produces, a little-endian number) as a Target. A hash read this way is
// the number it must keep at or below a target.
func TargetFromHash(h *[32]byte) Target {
	return Target{
		binary.LittleEndian.Uint64(h[24:32]),
		binary.LittleEndian.Uint64(h[16:24]),
		binary.LittleEndian.Uint64(h[8:16]),
		binary.LittleEndian.Uint64(h[0:8]),
	}
}

// Hash returns the target in internal byte order (little-endian), the form
// the miner's scanning kernels compare hashes with. TargetFromHash is its
// inverse.
func (t Target) Hash() [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[24:32], t[0])
	binary.LittleEndian.PutUint64(b[16:24], t[1])
	binary.LittleEndian.PutUint64(b[8:16], t[2])
	binary.LittleEndian.PutUint64(b[0:8], t[3])
	return b
}

// HashMeets reports whether a sha256d result (internal byte order) is at or
// below the target.
func HashMeets(h *[32]byte, t Target) bool {
	return !t.Less(TargetFromHash(h))
}

// ErrDifficulty is wrapped by DifficultyToTarget's errors.
var ErrDifficulty = errors.New("invalid difficulty")

// DifficultyToTarget converts a Stratum difficulty to its share target,
// floor(diff1 / difficulty), exactly, saturating at 2^256-1. The division
// is on integers: a float64 is m·2^e with an integer m, so no low bits are
// lost the way a float division would lose them. It is meant to be called
// once per difficulty change, not per share.
func DifficultyToTarget(difficulty float64) (Target, error) {
	if !(difficulty > 0) || math.IsInf(difficulty, 0) {
		return Target{}, fmt.Errorf("%w %v", ErrDifficulty, difficulty)
	}
	frac, exp := math.Frexp(difficulty) // difficulty = frac·2^exp, frac in [0.5, 1)
	m := new(big.Int).SetUint64(uint64(math.Ldexp(frac, 53)))
	e := exp - 53
	num := new(big.Int).Set(diff1)
	if e >= 0 {
		m.Lsh(m, uint(e))
	} else {
		num.Lsh(num, uint(-e))
	}
	return TargetFromBig(num.Quo(num, m)), nil
}

// TargetToDifficulty returns diff1 / target as a float (+Inf for the zero
// target). It is for display and for clamping; never compare hashes
// through it. It does not allocate.
func TargetToDifficulty(t Target) float64 {
	f := math.Ldexp(float64(t[0]), 192) + math.Ldexp(float64(t[1]), 128) +
		math.Ldexp(float64(t[2]), 64) + float64(t[3])
	if f == 0 {
		return math.Inf(1)
	}
	return diff1Float / f
}

// HashDifficulty is the difficulty a hash (internal byte order) achieves:
// diff1 / hash. Informational only; it does not allocate.
func HashDifficulty(h *[32]byte) float64 {
	return TargetToDifficulty(TargetFromHash(h))
}

// ErrBits is wrapped by CompactToTarget's errors.
var ErrBits = errors.New("invalid compact target")

// CompactToTarget expands a block header's nBits: the top byte is the size
// in bytes, the low 23 bits the mantissa, bit 23 the sign. Negative, zero
// or overflowing encodings are errors: a node never sends them, and mining
// against a garbage target would waste the work.
func CompactToTarget(bits uint32) (Target, error) {
	mantissa := bits & 0x007fffff
	exponent := uint(bits >> 24)
	if bits&0x00800000 != 0 && mantissa != 0 {
		return Target{}, fmt.Errorf("%w: %08x is negative", ErrBits, bits)
	}
	n := new(big.Int).SetUint64(uint64(mantissa))
	if exponent <= 3 {
		n.Rsh(n, 8*(3-exponent))
	} else {
		n.Lsh(n, 8*(exponent-3))
	}
	if n.Sign() == 0 {
		return Target{}, fmt.Errorf("%w: %08x is zero", ErrBits, bits)
	}
	if n.Cmp(maxTarget) > 0 {
		return Target{}, fmt.Errorf("%w: %08x overflows 256 bits", ErrBits, bits)
	}
	return TargetFromBig(n), nil
}
