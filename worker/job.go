package worker

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// Job is one mining.notify, decoded into the byte orders the header needs.
// It is immutable once parsed and shared by every device working on it.
type Job struct {
	ID       string
	PrevHash [32]byte // header (internal) order
	Coinb1   []byte
	Coinb2   []byte
	Branch   [][32]byte // internal order, as sent
	Version  uint32
	NBits    uint32
	NTime    uint32
	Clean    bool
	// NetTarget is the block target nbits encodes (little-endian, as the
	// hash is compared): a share under it solves the block.
	NetTarget [32]byte
}

// maxCoinbaseHalf bounds coinb1/coinb2: a coinbase is at most a block
// (4 MB weight), and a pool sending more is broken or hostile.
const maxCoinbaseHalf = 1 << 20

// maxJobIDLen bounds the job id, which is echoed in every submit. Pools use
// a few to a few dozen characters.
const maxJobIDLen = 256

// ParseJob decodes notify parameters. Every field is checked, because a
// malformed job would otherwise turn into shares the pool rejects.
func ParseJob(p *stratum.NotifyParams) (*Job, error) {
	j := &Job{ID: p.JobID, Clean: p.CleanJobs}
	if p.JobID == "" || len(p.JobID) > maxJobIDLen {
		return nil, fmt.Errorf("notify: job id of %d bytes (want 1..%d)", len(p.JobID), maxJobIDLen)
	}
	prev, err := decodeHex("prevhash", p.PrevHash, 32)
	if err != nil {
		return nil, err
	}
	j.PrevHash = notifyPrevHashToHeader(prev)
	if j.Coinb1, err = decodeHex("coinb1", p.Coinb1, -1); err != nil {
		return nil, err
	}
	if j.Coinb2, err = decodeHex("coinb2", p.Coinb2, -1); err != nil {
		return nil, err
	}
	if len(j.Coinb1) > maxCoinbaseHalf || len(j.Coinb2) > maxCoinbaseHalf {
		return nil, errors.New("notify: coinbase too large")
	}
	// 2^32 transactions would need far more than a block; a longer branch is
	// garbage.
	if len(p.MerkleBranch) > 32 {
		return nil, fmt.Errorf("notify: merkle branch has %d entries", len(p.MerkleBranch))
	}
	j.Branch = make([][32]byte, len(p.MerkleBranch))
	for i, s := range p.MerkleBranch {
		b, err := decodeHex("merkle branch", s, 32)
		if err != nil {
			return nil, err
		}
		copy(j.Branch[i][:], b)
	}
	if j.Version, err = parseHexUint32("version", p.Version); err != nil {
		return nil, err
	}
	if j.NBits, err = parseHexUint32("nbits", p.NBits); err != nil {
		return nil, err
	}
	j.NetTarget = sha256d.CompactTarget(j.NBits)
	if j.NTime, err = parseHexUint32("ntime", p.NTime); err != nil {
		return nil, err
	}
	return j, nil
}

// notifyPrevHashToHeader undoes the Stratum prevhash encoding: the pool sends
// the header bytes with every 4-byte word byte-swapped (a quirk of the
// original implementation treating the hash as eight big-endian uint32s).
func notifyPrevHashToHeader(b []byte) [32]byte {
	var out [32]byte
	for i := 0; i < 32; i += 4 {
		binary.LittleEndian.PutUint32(out[i:], binary.BigEndian.Uint32(b[i:]))
	}
	return out
}

func decodeHex(what, s string, size int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("notify: %s: %w", what, err)
	}
	if size >= 0 && len(b) != size {
		return nil, fmt.Errorf("notify: %s: want %d bytes, got %d", what, size, len(b))
	}
	return b, nil
}

// parseHexUint32 reads the 8-hex-digit big-endian form Stratum uses for
// version, nbits, ntime and nonce.
func parseHexUint32(what, s string) (uint32, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%s: want 8 hex digits, got %q", what, truncate(s, 16))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return binary.BigEndian.Uint32(b), nil
}

func hexUint32(v uint32) string { return fmt.Sprintf("%08x", v) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Coinbase returns coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
func (j *Job) Coinbase(en1, en2 []byte) []byte {
	cb := make([]byte, 0, len(j.Coinb1)+len(en1)+len(en2)+len(j.Coinb2))
	cb = append(cb, j.Coinb1...)
	cb = append(cb, en1...)
	cb = append(cb, en2...)
	return append(cb, j.Coinb2...)
}

// MerkleRoot folds the coinbase txid with the branch: the coinbase is always
// the leftmost leaf, so each step hashes (running ‖ sibling).
func (j *Job) MerkleRoot(en1, en2 []byte) [32]byte {
	root := sha256d2(j.Coinbase(en1, en2))
	var buf [64]byte
	for i := range j.Branch {
		copy(buf[:32], root[:])
		copy(buf[32:], j.Branch[i][:])
		root = sha256d2(buf[:])
	}
	return root
}

// Header assembles the 80-byte header for one point of the search space.
func (j *Job) Header(en1, en2 []byte, version, ntime, nonce uint32) [80]byte {
	root := j.MerkleRoot(en1, en2)
	return j.headerWithRoot(&root, version, ntime, nonce)
}

func (j *Job) headerWithRoot(root *[32]byte, version, ntime, nonce uint32) [80]byte {
	var h [80]byte
	binary.LittleEndian.PutUint32(h[0:], version)
	copy(h[4:36], j.PrevHash[:])
	copy(h[36:68], root[:])
	binary.LittleEndian.PutUint32(h[68:], ntime)
	binary.LittleEndian.PutUint32(h[72:], j.NBits)
	binary.LittleEndian.PutUint32(h[76:], nonce)
	return h
}

func sha256d2(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// diff1 is the difficulty-1 target 0x00000000FFFF0000…(26 zero bytes).
var diff1 = new(big.Int).Lsh(big.NewInt(0xFFFF), 208)

var maxTarget = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// DifficultyTarget returns floor(diff1 / diff) as a little-endian 256-bit
// target (the order sha256d compares in). The division is exact: a float64
// is m·2^e with an integer m, so the quotient is computed on integers and
// never loses the low bits a float division would.
func DifficultyTarget(diff float64) ([32]byte, error) {
	var out [32]byte
	if math.IsNaN(diff) || math.IsInf(diff, 0) || diff <= 0 {
		return out, fmt.Errorf("invalid share difficulty %v", diff)
	}
	frac, exp := math.Frexp(diff) // diff = frac·2^exp, frac in [0.5, 1)
	m := new(big.Int).SetUint64(uint64(math.Ldexp(frac, 53)))
	e := exp - 53
	num := new(big.Int).Set(diff1)
	if e >= 0 {
		m.Lsh(m, uint(e))
	} else {
		num.Lsh(num, uint(-e))
	}
	t := num.Quo(num, m)
	if t.Cmp(maxTarget) > 0 {
		t = maxTarget
	}
	var be [32]byte
	t.FillBytes(be[:])
	for i := range be {
		out[i] = be[31-i]
	}
	return out, nil
}

// targetDifficulty is the inverse of DifficultyTarget, for display only.
func targetDifficulty(t *[32]byte) float64 {
	var be [32]byte
	for i := range t {
		be[i] = t[31-i]
	}
	tv := new(big.Float).SetInt(new(big.Int).SetBytes(be[:]))
	if tv.Sign() == 0 {
		return math.Inf(1)
	}
	d, _ := new(big.Float).Quo(new(big.Float).SetInt(diff1), tv).Float64()
	return d
}

// hashDifficulty is the difficulty a hash achieves (diff1 / hash), for
// display of the best share.
func hashDifficulty(h *[32]byte) float64 { return targetDifficulty(h) }

// harderTarget returns the smaller (harder) of two targets.
func harderTarget(a, b [32]byte) [32]byte {
	if sha256d.Meets(&a, &b) {
		return a
	}
	return b
}

// CheckShare hashes a header with the reference implementation and reports
// whether it meets target. Every candidate goes through it before it is
// sent, whatever kernel found it: the miner must never submit an invalid
// share.
func CheckShare(header *[80]byte, target *[32]byte) (hash [32]byte, ok bool) {
	hash = sha256d.Sum(header)
	return hash, sha256d.Meets(&hash, target)
}

// HashHex is the display (reversed) hex of a header hash, as block explorers
// show it.
func HashHex(h *[32]byte) string {
	var r [32]byte
	for i := range h {
		r[i] = h[31-i]
	}
	return hex.EncodeToString(r[:])
}

// versionBits spreads the bits of n over the set bits of mask, lowest first,
// enumerating every rolled version inside the mask without touching others.
func versionBits(n uint64, mask uint32) uint32 {
	var out uint32
	for bit := uint32(1); bit != 0 && n != 0; bit <<= 1 {
		if mask&bit == 0 {
			continue
		}
		if n&1 != 0 {
			out |= bit
		}
		n >>= 1
	}
	return out
}

// sanitizeUserAgent keeps the subscribe user agent to printable ASCII so no
// pool log is garbled by it.
func sanitizeUserAgent(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
