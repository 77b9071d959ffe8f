package pool

import (
	"sync"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// RejectError is why a share was refused, with its Stratum error code.
// The values below are the only ones CheckShare returns; they are shared
// sentinels so that rejecting costs no allocation.
type RejectError struct {
	Code   int
	Reason string
}

func (e *RejectError) Error() string { return e.Reason }

// Stratum converts the reject to its wire error.
func (e *RejectError) Stratum() *stratum.Error {
	return &stratum.Error{Code: e.Code, Message: e.Reason}
}

// Share reject reasons, with the codes miners in the wild understand.
var (
	ErrJobNotFound     = &RejectError{stratum.CodeJobNotFound, "job not found"}
	ErrStaleJob        = &RejectError{stratum.CodeJobNotFound, "stale job"}
	ErrDuplicate       = &RejectError{stratum.CodeDuplicate, "duplicate share"}
	ErrLowDifficulty   = &RejectError{stratum.CodeLowDifficulty, "low difficulty share"}
	ErrExtranonce2Size = &RejectError{stratum.CodeOther, "incorrect size of extranonce2"}
	ErrNTime           = &RejectError{stratum.CodeOther, "ntime out of range"}
	ErrVersionBits     = &RejectError{stratum.CodeOther, "version bits outside the negotiated mask"}
	ErrExtranonce1     = &RejectError{stratum.CodeOther, "invalid extranonce1"}
)

// Submission is a mining.submit as CheckShare needs it: the miner's
// fields plus what the session negotiated.
type Submission struct {
	JobID          string
	Extranonce1    []byte // the session's
	Extranonce2    []byte
	NTime          uint32
	Nonce          uint32
	VersionBits    uint32
	HasVersionBits bool
	VersionMask    uint32 // granted by mining.configure; 0 = no rolling
	// SoloScript is the output script a SOLO session's coinbase pays
	// (as a string: it keys the job's per-finder work without allocating);
	// "" for shared-reward sessions.
	SoloScript string
}

// ShareResult describes an accepted share.
type ShareResult struct {
	Job        *Job
	Difficulty float64  // share difficulty the share was judged (and is credited) at
	ActualDiff float64  // difficulty the hash achieves
	IsBlock    bool     // hash meets the network target
	Hash       [32]byte // header hash, internal byte order
	Header     [80]byte
	Coinb2     []byte // the coinbase tail the share was checked with
}

// BlockHash returns the header hash in display order.
func (r *ShareResult) BlockHash() string { return pow.HashString(&r.Hash) }

// scratch holds the buffer a share's coinbase is assembled in, so checking
// a share does not allocate.
type scratch struct{ cb []byte }

var scratchPool = sync.Pool{New: func() any { return &scratch{cb: make([]byte, 0, 512)} }}

// CheckShare checks a submitted share against the job book and the
// session's difficulty record, in the order cheapest first: job known and
// current, extranonce sizes, ntime window, version bits, then the header
// hash against the share target, then duplicates. Every check applies to
// block-solving shares as well. It performs no I/O.
func (b *JobBook) CheckShare(sub *Submission, diffs *DifficultyLog) (ShareResult, error) {
	var res ShareResult
	j, err := b.Lookup(sub.JobID)
	if j == nil {
		return res, err
	}
	stale := err != nil
	if len(sub.Extranonce1) != Extranonce1Size {
		return res, ErrExtranonce1
	}
	if len(sub.Extranonce2) != j.en2Size {
		return res, ErrExtranonce2Size
	}
	if sub.NTime < j.minNTime || sub.NTime > j.maxNTime {
		return res, ErrNTime
	}
	version := j.version
	if sub.HasVersionBits {
		if sub.VersionBits&^sub.VersionMask != 0 {
			return res, ErrVersionBits
		}
		version = version&^sub.VersionMask | sub.VersionBits&sub.VersionMask
	}
	if stale {
		// A share already accepted, block-solving ones included, is a
		// duplicate whenever it comes back: the miner must hear 22, not
		// "stale", or it may count the share as lost work.
		if j.wasSeen(sub, version) {
			return res, ErrDuplicate
		}
		return res, ErrStaleJob
	}

	coinb2 := j.coinb2
	if sub.SoloScript != "" && j.soloOutputs != nil {
		w, err := j.soloFor(sub.SoloScript)
		if err != nil {
			return res, &RejectError{Code: stratum.CodeOther, Reason: err.Error()}
		}
		coinb2 = w.coinb2
	}
	s := scratchPool.Get().(*scratch)
	cb := append(s.cb[:0], j.coinb1...)
	cb = append(cb, sub.Extranonce1...)
	cb = append(cb, sub.Extranonce2...)
	cb = append(cb, coinb2...)
	txid := pow.SHA256d(cb)
	s.cb = cb
	scratchPool.Put(s)

	root := pow.FoldMerkleBranch(txid, j.branch)
	pow.PutHeader(&res.Header, version, &j.prevHash, &root, sub.NTime, j.bits, sub.Nonce)
	res.Hash = pow.SHA256d(res.Header[:])

	target, diff := diffs.ShareTarget(j.Seq)
	res.IsBlock = pow.HashMeets(&res.Hash, j.netTarget)
	if !pow.HashMeets(&res.Hash, target) {
		// A block is never refused as a low-difficulty share, whatever
		// the session was told: on a network easier than the session's
		// difficulty it is accepted, and credited at the network
		// difficulty, the most that was required of it.
		if !res.IsBlock {
			return res, ErrLowDifficulty
		}
		diff = j.netDiff
	}
	if !j.markSeen(sub, version) {
		return res, ErrDuplicate
	}
	res.Job = j
	res.Coinb2 = coinb2
	res.Difficulty = diff
	res.ActualDiff = pow.HashDifficulty(&res.Hash)
	return res, nil
}

// markSeen records a valid share's header fields and reports whether they
// were new. Only shares that passed every other check are recorded, so a
// miner retrying a share refused for another reason is not told it is a
// duplicate.
func (j *Job) markSeen(sub *Submission, version uint32) bool {
	k := newShareKey(sub, version)
	sh := &j.dups[k.en1[3]%dupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, dup := sh.seen[k]; dup {
		return false
	}
	if sh.seen == nil {
		sh.seen = make(map[shareKey]struct{}, 64)
	}
	sh.seen[k] = struct{}{}
	return true
}

// wasSeen reports whether markSeen already recorded these header fields.
func (j *Job) wasSeen(sub *Submission, version uint32) bool {
	k := newShareKey(sub, version)
	sh := &j.dups[k.en1[3]%dupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, dup := sh.seen[k]
	return dup
}

func newShareKey(sub *Submission, version uint32) shareKey {
	var k shareKey
	copy(k.en1[:], sub.Extranonce1)
	copy(k.en2[:], sub.Extranonce2)
	k.ntime, k.nonce, k.version = sub.NTime, sub.Nonce, version
	return k
}

// jobLogSize matches the job book: a session's record covers every job a
// share may still be submitted for.
const jobLogSize = DefaultJobBookSize

// DifficultyLog remembers, per session, the difficulty each recent job was
// sent at, so a retarget never rejects work done at the old difficulty: a
// share is judged at the easier of the difficulty its job was sent with and
// the session's current one (miners differ on whether set_difficulty
// applies to work already under way; both readings are honoured).
// It is not safe for concurrent use; the session's lock guards it.
type DifficultyLog struct {
	cur  diffEntry
	sent [jobLogSize]diffEntry
}

type diffEntry struct {
	seq    uint64 // job sequence; 0 = empty slot
	diff   float64
	target pow.Target
}

// Set records the difficulty the session has just been told.
func (l *DifficultyLog) Set(diff float64, target pow.Target) {
	l.cur = diffEntry{diff: diff, target: target}
}

// Current returns the difficulty the session was last told (0 before any).
func (l *DifficultyLog) Current() (float64, pow.Target) { return l.cur.diff, l.cur.target }

// JobSent records that job seq was sent at the current difficulty. A job
// re-sent after a retarget keeps the easier of its difficulties.
func (l *DifficultyLog) JobSent(seq uint64) {
	e := &l.sent[seq%jobLogSize]
	if e.seq == seq && l.cur.target.Less(e.target) {
		return
	}
	*e = l.cur
	e.seq = seq
}

// ShareTarget returns the easiest target a share for job seq may meet, and
// the difficulty it stands for.
func (l *DifficultyLog) ShareTarget(seq uint64) (pow.Target, float64) {
	e := &l.sent[seq%jobLogSize]
	if e.seq == seq && l.cur.target.Less(e.target) {
		return e.target, e.diff
	}
	return l.cur.target, l.cur.diff
}
