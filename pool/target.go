package pool

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
var diff1 = func() *big.Int {
	t := new(big.Int).SetUint64(0xFFFF)
	return t.Lsh(t, 208)
}()

// maxTarget is 2^256-1; targets easier than that do not exist.
var maxTarget = func() *big.Int {
	t := new(big.Int).Lsh(big.NewInt(1), 256)
	return t.Sub(t, big.NewInt(1))
}()

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

// hashTarget reads a sha256d result in internal byte order (the order the
// hash function produces, i.e. little-endian as a number) as a Target.
func hashTarget(h *[32]byte) Target {
	return Target{
		binary.LittleEndian.Uint64(h[24:32]),
		binary.LittleEndian.Uint64(h[16:24]),
		binary.LittleEndian.Uint64(h[8:16]),
		binary.LittleEndian.Uint64(h[0:8]),
	}
}

// HashMeets reports whether a sha256d result (internal byte order) is at or
// below the target.
func HashMeets(h *[32]byte, t Target) bool {
	return !t.Less(hashTarget(h))
}

// DifficultyToTarget converts a Stratum difficulty to its share target,
// diff1 / difficulty, exactly (rounded down). It is meant to be called once
// per difficulty change, not per share.
func DifficultyToTarget(difficulty float64) (Target, error) {
	if !(difficulty > 0) || math.IsInf(difficulty, 0) {
		return Target{}, fmt.Errorf("pool: invalid difficulty %v", difficulty)
	}
	// 256 bits of quotient precision plus headroom keeps the truncation
	// to an integer exact for every float64 divisor we can be handed.
	q := new(big.Float).SetPrec(512).SetInt(diff1)
	q.Quo(q, new(big.Float).SetPrec(512).SetFloat64(difficulty))
	n, _ := q.Int(nil)
	return TargetFromBig(n), nil
}

// TargetToDifficulty returns diff1 / target as a float. It is for display
// and for clamping; never compare hashes through it.
func TargetToDifficulty(t Target) float64 {
	f := t.float()
	if f == 0 {
		return math.Inf(1)
	}
	return diff1Float / f
}

var diff1Float = 0xFFFF * math.Ldexp(1, 208)

func (t Target) float() float64 {
	return math.Ldexp(float64(t[0]), 192) + math.Ldexp(float64(t[1]), 128) +
		math.Ldexp(float64(t[2]), 64) + float64(t[3])
}

// hashDifficulty is the difficulty a hash (internal byte order) achieves:
// diff1 / hash. Informational only (Share.ActualDiff); allocation free.
func hashDifficulty(h *[32]byte) float64 {
	t := hashTarget(h)
	return TargetToDifficulty(t)
}

var errBadBits = errors.New("pool: invalid compact target")

// CompactToTarget expands a block header's nBits. Negative or overflowing
// encodings are errors: a node never sends them, and silently mining against
// a garbage target would waste the whole pool's work.
func CompactToTarget(bits uint32) (Target, error) {
	mantissa := bits & 0x007fffff
	exponent := uint(bits >> 24)
	if bits&0x00800000 != 0 && mantissa != 0 {
		return Target{}, fmt.Errorf("%w: %08x is negative", errBadBits, bits)
	}
	n := new(big.Int).SetUint64(uint64(mantissa))
	if exponent <= 3 {
		n.Rsh(n, 8*(3-exponent))
	} else {
		n.Lsh(n, 8*(exponent-3))
	}
	if n.Sign() == 0 {
		return Target{}, fmt.Errorf("%w: %08x is zero", errBadBits, bits)
	}
	if n.Cmp(maxTarget) > 0 {
		return Target{}, fmt.Errorf("%w: %08x overflows 256 bits", errBadBits, bits)
	}
	return TargetFromBig(n), nil
}
