package pool

import (
	"encoding/binary"
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

// stackCoinbase is the longest coinbase remainder (coinb1 past its
// precomputed blocks, the extranonces, coinb2) assembled on the stack: the
// pool's own coinb2 (one or two outputs and the witness commitment) is
// under 200 bytes; a SOLO finder's may be longer.
const stackCoinbase = 256

var scratchPool = sync.Pool{New: func() any { return &scratch{cb: make([]byte, 0, 512)} }}

// CheckShare checks a submitted share against the job book and the
// session's difficulty record, in the order cheapest first: job known,
// extranonce sizes, ntime window, version bits; then the header hash, which
// also keys the duplicate record, so a share for a stale job is hashed
// before it is refused (as a duplicate if it was accepted before); then the
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
	coinb2 := j.coinb2
	if sub.SoloScript != "" && j.soloOutputs != nil {
		w, err := j.soloFor(sub.SoloScript)
		if err != nil {
			if stale {
				return res, ErrStaleJob
			}
			return res, &RejectError{Code: stratum.CodeOther, Reason: err.Error()}
		}
		coinb2 = w.coinb2
	}
	j.hashShare(sub, version, coinb2, &res)
	if stale {
		// A share already accepted, block-solving ones included, is a
		// duplicate whenever it comes back: the miner must hear 22, not
		// "stale", or it may count the share as lost work.
		if j.wasSeen(&res.Hash) {
			return res, ErrDuplicate
		}
		return res, ErrStaleJob
	}

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
	if !j.markSeen(&res.Hash) {
		return res, ErrDuplicate
	}
	res.Job = j
	res.Coinb2 = coinb2
	res.Difficulty = diff
	res.ActualDiff = pow.HashDifficulty(&res.Hash)
	return res, nil
}

// hashShare assembles the share's header in res and hashes it. The
// coinbase is coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2 and coinb1 is the
// job's, so its whole 64-byte blocks are hashed once (coinb1Mid) and a
// share hashes only what follows them. A Job built without NewJob has a
// zero coinb1Mid, which covers nothing: the whole coinb1 is hashed.
func (j *Job) hashShare(sub *Submission, version uint32, coinb2 []byte, res *ShareResult) {
	var txid [32]byte
	tail := j.coinb1[j.coinb1Mid.Len():]
	if n := len(tail) + len(sub.Extranonce1) + len(sub.Extranonce2) + len(coinb2); n <= stackCoinbase {
		// Most coinbases fit on the stack, which costs less than the pool.
		var buf [stackCoinbase]byte
		rest := append(append(append(append(buf[:0], tail...), sub.Extranonce1...), sub.Extranonce2...), coinb2...)
		txid = j.coinb1Mid.SHA256d(rest)
	} else {
		s := scratchPool.Get().(*scratch)
		rest := append(append(append(append(s.cb[:0], tail...), sub.Extranonce1...), sub.Extranonce2...), coinb2...)
		txid = j.coinb1Mid.SHA256d(rest)
		s.cb = rest
		scratchPool.Put(s)
	}

	root := pow.FoldMerkleBranch(txid, j.branch)
	pow.PutHeader(&res.Header, version, &j.prevHash, &root, sub.NTime, j.bits, sub.Nonce)
	res.Hash = pow.SHA256d(res.Header[:])
}

// markSeen records a valid share's header and reports whether it was new.
// Only shares that passed every other check are recorded, so a miner
// retrying a share refused for another reason is not told it is a
// duplicate.
func (j *Job) markSeen(hash *[32]byte) bool {
	k := newShareKey(hash)
	sh := &j.dups[k[0]%dupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.seen == nil {
		sh.seen = make(map[shareKey]struct{}, 64)
	}
	// One probe, not a lookup and an insert: on a busy job the map is
	// large and each probe is a cache miss.
	n := len(sh.seen)
	sh.seen[k] = struct{}{}
	return len(sh.seen) > n
}

// wasSeen reports whether markSeen already recorded this header.
func (j *Job) wasSeen(hash *[32]byte) bool {
	k := newShareKey(hash)
	sh := &j.dups[k[0]%dupShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, dup := sh.seen[k]
	return dup
}

// newShareKey takes the low 128 bits of the header hash. The job fixes
// every header field but the ones a share chooses (extranonce1 and 2,
// ntime, nonce, version bits), so the hash stands for them: half the
// size of the fields themselves, a cheaper map key, and computed anyway.
// The low bytes, because a share's hash has zeros at the top.
func newShareKey(hash *[32]byte) shareKey {
	return shareKey{binary.LittleEndian.Uint64(hash[0:8]), binary.LittleEndian.Uint64(hash[8:16])}
}

// jobLogSize matches the job book: a session's record covers every job a
// share may still be submitted for, the jobLogSize newest by sequence.
const jobLogSize = DefaultJobBookSize

// DifficultyLog remembers, per session, the difficulty each recent job was
// sent at, so a retarget never rejects work done at the old difficulty: a
// share is judged at the easier of the difficulty its job was sent with and
// the session's current one (miners differ on whether set_difficulty
// applies to work already under way; both readings are honoured).
//
// Nearly every job goes out at the difficulty the previous one did, so
// the record is a few epochs (runs of job sequences sent at one
// difficulty), not an entry per job: an idle session holds one. Jobs older
// than the jobLogSize newest sent are forgotten; the job book no longer
// holds them either, so no share for them reaches ShareTarget.
// It is not safe for concurrent use; the session's lock guards it.
type DifficultyLog struct {
	cur diffLevel
	top uint64 // newest job sequence sent
	// epochs are disjoint and ascending by sequence; adjacent ones differ
	// in level or leave a gap.
	epochs []diffEpoch
}

type diffLevel struct {
	diff   float64
	target pow.Target
}

// diffEpoch: jobs lo..hi were last sent at level (the easier, for a job
// sent more than once).
type diffEpoch struct {
	lo, hi uint64
	level  diffLevel
}

// Set records the difficulty the session has just been told.
func (l *DifficultyLog) Set(diff float64, target pow.Target) {
	l.cur = diffLevel{diff: diff, target: target}
}

// Current returns the difficulty the session was last told (0 before any).
func (l *DifficultyLog) Current() (float64, pow.Target) { return l.cur.diff, l.cur.target }

// JobSent records that job seq was sent at the current difficulty. A job
// re-sent after a retarget keeps the easier of its difficulties.
func (l *DifficultyLog) JobSent(seq uint64) {
	if n := len(l.epochs); n > 0 {
		// The common case, the next job at an unchanged difficulty,
		// extends the newest epoch without allocating.
		if e := &l.epochs[n-1]; seq == e.hi+1 && e.level == l.cur {
			e.hi = seq
			l.advance(seq)
			return
		}
	}
	if len(l.epochs) > 0 && l.tooOld(seq) {
		return // out of the job book: never asked for
	}
	if i, ok := l.find(seq); ok {
		e := &l.epochs[i]
		if l.cur.target.Less(e.level.target) || e.level == l.cur {
			return
		}
		l.remove(i, seq)
	}
	l.insert(seq)
	l.advance(seq)
}

// tooOld reports whether seq is older than the jobLogSize newest sent.
func (l *DifficultyLog) tooOld(seq uint64) bool {
	return l.top >= jobLogSize && seq <= l.top-jobLogSize
}

// advance moves the newest sequence to seq if it is newer, and forgets the
// epochs that fell out of the window.
func (l *DifficultyLog) advance(seq uint64) {
	if seq <= l.top {
		return
	}
	l.top = seq
	k := 0
	for k < len(l.epochs) && l.tooOld(l.epochs[k].hi) {
		k++
	}
	if k > 0 {
		n := copy(l.epochs, l.epochs[k:])
		l.epochs = l.epochs[:n]
	}
}

// find returns the epoch holding seq, searching from the newest: shares
// are mostly for the newest job.
func (l *DifficultyLog) find(seq uint64) (int, bool) {
	for i := len(l.epochs) - 1; i >= 0; i-- {
		e := &l.epochs[i]
		if seq > e.hi {
			return i + 1, false
		}
		if seq >= e.lo {
			return i, true
		}
	}
	return 0, false
}

// remove takes seq out of epoch i, splitting it when seq is inside.
func (l *DifficultyLog) remove(i int, seq uint64) {
	e := l.epochs[i]
	switch {
	case e.lo == seq && e.hi == seq:
		l.epochs = append(l.epochs[:i], l.epochs[i+1:]...)
	case e.lo == seq:
		l.epochs[i].lo++
	case e.hi == seq:
		l.epochs[i].hi--
	default:
		l.epochs[i].hi = seq - 1
		l.epochs = append(l.epochs[:i+1], append([]diffEpoch{{seq + 1, e.hi, e.level}}, l.epochs[i+1:]...)...)
	}
}

// insert records seq, held by no epoch, at the current level, joining the
// epochs on either side when they are at the same level and adjacent.
func (l *DifficultyLog) insert(seq uint64) {
	i, _ := l.find(seq)
	joinLeft := i > 0 && l.epochs[i-1].hi+1 == seq && l.epochs[i-1].level == l.cur
	joinRight := i < len(l.epochs) && l.epochs[i].lo == seq+1 && l.epochs[i].level == l.cur
	switch {
	case joinLeft && joinRight:
		l.epochs[i-1].hi = l.epochs[i].hi
		l.epochs = append(l.epochs[:i], l.epochs[i+1:]...)
	case joinLeft:
		l.epochs[i-1].hi = seq
	case joinRight:
		l.epochs[i].lo = seq
	default:
		l.epochs = append(l.epochs, diffEpoch{})
		copy(l.epochs[i+1:], l.epochs[i:])
		l.epochs[i] = diffEpoch{seq, seq, l.cur}
	}
}

// ShareTarget returns the easiest target a share for job seq may meet, and
// the difficulty it stands for.
func (l *DifficultyLog) ShareTarget(seq uint64) (pow.Target, float64) {
	if i, ok := l.find(seq); ok && !l.tooOld(seq) {
		if e := &l.epochs[i]; l.cur.target.Less(e.level.target) {
			return e.level.target, e.level.diff
		}
	}
	return l.cur.target, l.cur.diff
}
