package worker

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/hashforge/hashforge/pow"
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
	// Root, when set, is the merkle root the pool computed (header-only
	// work: a Stratum V2 standard job); Coinb1, Coinb2 and Branch are
	// then unused and there is no extranonce to roll.
	Root *[32]byte
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
	// The pool sends the header bytes with every 4-byte word
	// byte-swapped (a quirk of the original implementation treating the
	// hash as eight big-endian uint32s).
	j.PrevHash = [32]byte(prev)
	pow.SwapWords(&j.PrevHash)
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
	j.NetTarget = netTarget(j.NBits)
	if j.NTime, err = parseHexUint32("ntime", p.NTime); err != nil {
		return nil, err
	}
	return j, nil
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

// MerkleRoot folds the coinbase txid with the branch.
func (j *Job) MerkleRoot(en1, en2 []byte) [32]byte {
	if j.Root != nil {
		return *j.Root
	}
	return pow.FoldMerkleBranch(pow.SHA256d(j.Coinbase(en1, en2)), j.Branch)
}

// Header assembles the 80-byte header for one point of the search space.
func (j *Job) Header(en1, en2 []byte, version, ntime, nonce uint32) [80]byte {
	root := j.MerkleRoot(en1, en2)
	var h [80]byte
	pow.PutHeader(&h, version, &j.PrevHash, &root, ntime, j.NBits, nonce)
	return h
}

// netTarget is the block target nbits encodes, little-endian. A negative or
// overflowing nbits (never valid in a block) gives the zero target, so
// nothing is ever mistaken for a block solution.
func netTarget(bits uint32) [32]byte {
	t, err := pow.CompactToTarget(bits)
	if err != nil {
		return [32]byte{}
	}
	return t.Hash()
}

// DifficultyTarget returns floor(diff1 / diff) as a little-endian 256-bit
// target (the order sha256d compares in), exactly.
func DifficultyTarget(diff float64) ([32]byte, error) {
	t, err := pow.DifficultyToTarget(diff)
	if err != nil {
		return [32]byte{}, fmt.Errorf("invalid share difficulty %v", diff)
	}
	return t.Hash(), nil
}

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
	hash = pow.SHA256d(header[:])
	return hash, sha256d.Meets(&hash, target)
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
