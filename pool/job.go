package pool

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// maxNTimeAhead bounds how far a miner may roll ntime past the job's
// curtime: consensus rejects blocks more than two hours ahead of the
// node's clock, and curtime is that clock.
const maxNTimeAhead = 7200

// JobParams are the pool-side inputs of a job beyond the node's template.
type JobParams struct {
	ID  string
	Seq uint64 // process-unique, increasing; identifies the job in per-session records
	// Clean is set on the first job of a new previous block: miners must
	// drop their current work at once.
	Clean           bool
	Tag             string // pool tag for the coinbase scriptSig, truncated to fit
	Extranonce2Size int
	// Outputs are the coinbase outputs. They must spend exactly the
	// template's coinbase value and include its witness commitment; see
	// PoolOutputs.
	Outputs []TxOut
	// SoloOutputs, when set, makes this a SOLO job: each session gets
	// its own coinbase, with the outputs this returns for the script of
	// the session's payout address, in place of Outputs.
	SoloOutputs func(finderScript []byte) []TxOut
	Created     time.Time
}

// Job is one unit of work built from a block template: everything needed to
// send mining.notify, check shares against it and assemble the block.
// A Job is immutable after NewJob except for its duplicate-share record.
type Job struct {
	ID      string
	Seq     uint64
	Height  int64
	Clean   bool
	Created time.Time

	version      uint32
	prevHash     [32]byte // header byte order
	prevDisplay  string
	notifyPrev   string
	bits         uint32
	curTime      uint32
	minNTime     uint32 // inclusive
	maxNTime     uint32 // inclusive
	coinb1       []byte
	coinb1Mid    pow.SHA256Midstate // coinb1's whole blocks, compressed once for every share
	coinb2       []byte
	en2Size      int
	branch       [][32]byte
	netTarget    pow.Target
	netDiff      float64
	coinbaseVal  int64
	segwit       bool
	txData       []string
	outputs      []TxOut
	scriptSigLen int

	// ahead: an empty job on a block another pool node announced, made
	// without the node; the node's first template on that tip replaces it
	// at once (see Server.workAhead).
	ahead bool

	// mining.notify lines, encoded once for all sessions (encodeLines).
	lineClean, lineNoClean []byte

	soloOutputs func([]byte) []TxOut
	soloMu      sync.RWMutex         // a leaf: see the lock order at Server.mu
	solo        map[string]*soloWork // by finder script; a string key looks up without allocating

	dups [dupShards]dupShard
}

// dupShards spreads duplicate bookkeeping over several locks so sessions
// submitting to the same job at once do not serialise on one mutex.
const dupShards = 16

type dupShard struct {
	mu   sync.Mutex // a leaf: see the lock order at Server.mu
	seen map[shareKey]struct{}
}

// shareKey identifies a header within a job: 128 bits of its hash (see
// newShareKey). Two different shares collide with probability 2^-128.
type shareKey [2]uint64

const maxExtranonce2Size = 16

// NewJob builds a job from a template. It does all per-template work
// (coinbase layout, merkle branch, byte-order conversions, network target)
// so that checking a share is hashing and comparing only.
func NewJob(t *node.Template, p JobParams) (*Job, error) {
	if p.Extranonce2Size < 1 || p.Extranonce2Size > maxExtranonce2Size {
		return nil, fmt.Errorf("pool: extranonce2 size %d outside 1..%d", p.Extranonce2Size, maxExtranonce2Size)
	}
	if t.Height < 0 {
		return nil, fmt.Errorf("pool: template height %d", t.Height)
	}
	var spent int64
	for _, o := range p.Outputs {
		if o.Value < 0 || spent+o.Value < spent {
			return nil, fmt.Errorf("pool: coinbase output value %d", o.Value)
		}
		spent += o.Value
	}
	if spent > t.CoinbaseValue {
		return nil, fmt.Errorf("pool: coinbase outputs spend %d sat of %d available", spent, t.CoinbaseValue)
	}
	if len(t.WitnessCommitment) > 0 && !hasOutputScript(p.Outputs, t.WitnessCommitment) {
		return nil, errors.New("pool: coinbase outputs lack the template's witness commitment")
	}
	prev := [32]byte(t.PreviousBlockHash)
	netTarget, err := pow.CompactToTarget(t.Bits)
	if err != nil {
		return nil, err
	}
	if t.CurTime <= 0 || t.CurTime > 0xffffffff-maxNTimeAhead {
		return nil, fmt.Errorf("pool: template curtime %d", t.CurTime)
	}
	split, err := buildCoinbase(t.Height, t.CoinbaseFlags, p.Tag, p.Extranonce2Size, p.Outputs)
	if err != nil {
		return nil, err
	}

	txids := make([][32]byte, len(t.Transactions))
	txData := make([]string, len(t.Transactions))
	for i, tx := range t.Transactions {
		txids[i] = [32]byte(tx.TxID)
		txData[i] = tx.Data
	}

	j := &Job{
		ID:           p.ID,
		Seq:          p.Seq,
		Height:       t.Height,
		Clean:        p.Clean,
		Created:      p.Created,
		version:      uint32(t.Version),
		prevHash:     prev,
		prevDisplay:  t.PreviousBlockHash.String(),
		bits:         t.Bits,
		curTime:      uint32(t.CurTime),
		coinb1:       split.coinb1,
		coinb1Mid:    pow.NewSHA256Midstate(split.coinb1),
		coinb2:       split.coinb2,
		en2Size:      p.Extranonce2Size,
		branch:       pow.MerkleBranch(txids),
		netTarget:    netTarget,
		netDiff:      pow.TargetToDifficulty(netTarget),
		coinbaseVal:  t.CoinbaseValue,
		segwit:       len(t.WitnessCommitment) > 0,
		txData:       txData,
		outputs:      p.Outputs,
		scriptSigLen: split.scriptSigLen,
		soloOutputs:  p.SoloOutputs,
	}
	notifyPrev := prev
	pow.SwapWords(&notifyPrev)
	j.notifyPrev = hex.EncodeToString(notifyPrev[:])
	j.minNTime, j.maxNTime = ntimeWindow(t.CurTime, t.MinTime, t.MaxTime)
	return j, nil
}

// ntimeWindow is the inclusive range of ntime a share may carry: the
// template's [mintime, maxtime] where given, curtime otherwise below, and
// never more than two hours past curtime above.
func ntimeWindow(cur, minT, maxT int64) (lo, hi uint32) {
	lo64 := cur
	if minT > 0 {
		lo64 = minT
	}
	hi64 := cur + maxNTimeAhead - 1
	if maxT > 0 && maxT < hi64 {
		hi64 = maxT
	}
	return uint32(max(lo64, 0)), uint32(max(hi64, 0))
}

func hasOutputScript(outs []TxOut, script []byte) bool {
	for _, o := range outs {
		if string(o.Script) == string(script) {
			return true
		}
	}
	return false
}

// PrevHash returns the previous block hash in display order.
func (j *Job) PrevHash() string { return j.prevDisplay }

// NetworkTarget is the target a header hash must meet to be a block.
func (j *Job) NetworkTarget() pow.Target { return j.netTarget }

// NetworkDifficulty is the network difficulty of the block the job builds.
func (j *Job) NetworkDifficulty() float64 { return j.netDiff }

// CoinbaseValue is the total the coinbase outputs spend, in satoshis.
func (j *Job) CoinbaseValue() int64 { return j.coinbaseVal }

// Extranonce2Size is the extranonce2 length miners must submit.
func (j *Job) Extranonce2Size() int { return j.en2Size }

// Notify returns the job's mining.notify parameters. Everything is
// precomputed, so this only formats.
func (j *Job) Notify(clean bool) stratum.NotifyParams {
	branch := make([]string, len(j.branch))
	for i := range j.branch {
		branch[i] = hex.EncodeToString(j.branch[i][:])
	}
	return stratum.NotifyParams{
		JobID:        j.ID,
		PrevHash:     j.notifyPrev,
		Coinb1:       hex.EncodeToString(j.coinb1),
		Coinb2:       hex.EncodeToString(j.coinb2),
		MerkleBranch: branch,
		Version:      fmt.Sprintf("%08x", j.version),
		NBits:        fmt.Sprintf("%08x", j.bits),
		NTime:        fmt.Sprintf("%08x", j.curTime),
		CleanJobs:    clean,
	}
}

// Coinbase returns the non-witness serialisation of the coinbase for the
// given extranonces (the bytes whose hash is the coinbase txid).
func (j *Job) Coinbase(en1, en2 []byte) []byte { return j.coinbase(en1, en2, j.coinb2) }

// coinbase is Coinbase with the session's coinb2 (SOLO sessions have their
// own).
func (j *Job) coinbase(en1, en2, coinb2 []byte) []byte {
	cb := make([]byte, 0, len(j.coinb1)+len(en1)+len(en2)+len(coinb2))
	return append(append(append(append(cb, j.coinb1...), en1...), en2...), coinb2...)
}

// soloWork is a SOLO job as one payout address sees it: its own coinb2
// (coinb1 ends at the extranonce, so it is shared) and notify lines.
type soloWork struct {
	coinb2                 []byte
	lineClean, lineNoClean []byte
}

// soloFor returns the job's work for a finder's output script, built on
// first use and shared by every session paying that script.
func (j *Job) soloFor(script string) (*soloWork, error) {
	j.soloMu.RLock()
	w, ok := j.solo[script]
	j.soloMu.RUnlock()
	if ok {
		return w, nil
	}
	outs := j.soloOutputs([]byte(script))
	var spent int64
	for _, o := range outs {
		spent += o.Value
	}
	if spent > j.coinbaseVal {
		return nil, fmt.Errorf("pool: SOLO outputs spend %d sat of %d", spent, j.coinbaseVal)
	}
	w = &soloWork{coinb2: Coinb2(outs)}
	n := j.Notify(true)
	n.Coinb2 = hex.EncodeToString(w.coinb2)
	var err error
	if w.lineClean, err = stratum.EncodeNotification("mining.notify", n); err != nil {
		return nil, err
	}
	n.CleanJobs = false
	if w.lineNoClean, err = stratum.EncodeNotification("mining.notify", n); err != nil {
		return nil, err
	}
	j.soloMu.Lock()
	defer j.soloMu.Unlock()
	if got, ok := j.solo[script]; ok { // built meanwhile by another session
		return got, nil
	}
	if j.solo == nil {
		j.solo = make(map[string]*soloWork)
	}
	j.solo[script] = w
	return w, nil
}

// blockHex assembles the full block for a solved header: header, tx count,
// the coinbase (with the witness reserved value when the block commits to
// witnesses), then the template's transactions as the node gave them.
func (j *Job) blockHex(header *[80]byte, en1, en2, coinb2 []byte) string {
	cb := j.coinbase(en1, en2, coinb2)
	if j.segwit {
		cb = witnessCoinbase(cb)
	}
	head := make([]byte, 0, 80+9+len(cb))
	head = append(head, header[:]...)
	head = appendVarInt(head, uint64(1+len(j.txData)))
	head = append(head, cb...)

	size := hex.EncodedLen(len(head))
	for _, d := range j.txData {
		size += len(d)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(hex.EncodeToString(head))
	for _, d := range j.txData {
		b.WriteString(d)
	}
	return b.String()
}

// JobBook holds the recent jobs shares may reference. A job whose previous
// block is no longer the tip is stale; a job that was evicted (or never
// existed, e.g. from before a restart) is unknown.
type JobBook struct {
	mu      sync.RWMutex // a leaf: see the lock order at Server.mu
	byID    map[string]*Job
	order   []*Job // oldest first
	current *Job
	limit   int
	// solved is the previous block of a block this pool got accepted:
	// the tip has moved past it even before the node's next template
	// arrives, so work on it is stale.
	solved    [32]byte
	hasSolved bool
}

// DefaultJobBookSize keeps about eight minutes of 30-second refreshes:
// longer than any miner sensibly works one job.
const DefaultJobBookSize = 16

// NewJobBook returns a book keeping the last limit jobs.
func NewJobBook(limit int) *JobBook {
	if limit < 2 {
		limit = 2
	}
	return &JobBook{byID: make(map[string]*Job, limit+1), limit: limit}
}

// Add makes j the current job, evicting the oldest beyond the limit.
// Evicting a job frees its duplicate record with it.
func (b *JobBook) Add(j *Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byID[j.ID] = j
	b.order = append(b.order, j)
	b.current = j
	for len(b.order) > b.limit {
		delete(b.byID, b.order[0].ID)
		b.order[0] = nil
		b.order = b.order[1:]
	}
}

// Current returns the newest job, or nil before the first template.
func (b *JobBook) Current() *Job {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.current
}

// Lookup finds a job that shares may still be submitted for. A job whose
// previous block has been superseded comes back with ErrStaleJob, so the
// caller can still tell a resubmitted share (a duplicate) from a late one.
func (b *JobBook) Lookup(id string) (*Job, error) {
	b.mu.RLock()
	j, ok := b.byID[id]
	cur := b.current
	solved, hasSolved := b.solved, b.hasSolved
	b.mu.RUnlock()
	if !ok {
		return nil, ErrJobNotFound
	}
	if j.prevHash != cur.prevHash || hasSolved && j.prevHash == solved {
		return j, ErrStaleJob
	}
	return j, nil
}

// Solved records that the node accepted a block built on prev. Every job on
// prev is stale from then on: a share for it would at best make a competing
// block at the same height. Without this, the moment between our block and
// the node's next template lets miners (on a test network, where nearly
// every hash is a block) pile side-chain blocks onto the one that counts.
func (b *JobBook) Solved(prev [32]byte) {
	b.mu.Lock()
	b.solved, b.hasSolved = prev, true
	b.mu.Unlock()
}
