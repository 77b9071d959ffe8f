package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/worker/sha256d"
)

type candidate struct {
	slice *Slice
	nonce uint32
}

// submitLoop re-checks every candidate with the reference hash and sends
// the good ones, one at a time and in order. The staleness check runs right
// before each send, so once the miner has seen a clean job (or a new
// extranonce or mask) nothing built on the old work goes out, even if it
// was found earlier and queued behind a slow reply. Shares wait at most a
// round trip each; at the share rates pools set with vardiff (seconds
// apart) that costs nothing.
func (m *Miner) submitLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-m.candidates:
			m.handleCandidate(ctx, c)
		}
	}
}

func (m *Miner) handleCandidate(ctx context.Context, c candidate) {
	sl := c.slice
	header := sl.Header
	binary.LittleEndian.PutUint32(header[76:], c.nonce)
	// One reference hash (the generic path) per candidate, checked against
	// each target below: the kernel's own verdict is never trusted.
	hash := pow.SHA256d(header[:])
	if !sha256d.Meets(&hash, &sl.Target) {
		m.hwErrors.Add(1)
		m.log.Warn("kernel returned a nonce that does not meet its target (hardware error)",
			"job", sl.JobID, "nonce", hexUint32(c.nonce))
		return
	}
	if m.cfg.Benchmark {
		m.noteBest(&hash)
		m.submitted.Add(1)
		m.accepted.Add(1)
		return
	}
	s, _ := sl.tmpl.owner.(*session)
	if s == nil || !m.isCurrent(s) {
		m.discarded.Add(1)
		m.log.Debug("discarding share from a closed connection", "job", sl.JobID)
		return
	}
	if m.sched.solvedBy(sl.tmpl) {
		m.discarded.Add(1)
		m.log.Debug("discarding a share of a job whose block is found", "job", sl.JobID)
		return
	}
	params, target, err := s.prepareSubmit(sl, c.nonce)
	if err != nil {
		m.discarded.Add(1)
		m.log.Debug("discarding stale share", "job", sl.JobID, "nonce", hexUint32(c.nonce))
		return
	}
	if !sha256d.Meets(&hash, &target) {
		// The difficulty went up after the slice was cut: the candidate
		// was fine for the old target and is simply not a share any more.
		m.log.Debug("candidate below the current share target", "job", sl.JobID)
		return
	}
	m.noteBest(&hash)
	paused := false
	if sha256d.Meets(&hash, &sl.tmpl.job.NetTarget) {
		paused = m.sched.solved(sl)
		m.log.Info("block candidate found, pausing until the next job", "job", sl.JobID, "hash", pow.HashString(&hash))
	}
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	var accepted bool
	if s.v2 != nil {
		accepted = s.v2.submit(ctx, sl, c.nonce, &hash)
	} else {
		accepted = m.submit(ctx, s, params, &hash)
	}
	switch {
	case paused && !accepted:
		m.sched.resume(sl.tmpl)
	case paused:
		// A pool that took the share but whose node did not take the block
		// (or that judges blocks by another target) may not send a new job
		// for a while: never sit idle longer than the block pause.
		t := sl.tmpl
		time.AfterFunc(m.cfg.blockPause, func() { m.sched.resume(t) })
	}
}

// defaultBlockPause bounds how long devices wait for a new job after a block
// was found and accepted. Pools announce the next block's job within
// milliseconds of their own block; two seconds is plenty.
const defaultBlockPause = 2 * time.Second

// submit sends one share and reports whether the pool accepted it.
func (m *Miner) submit(ctx context.Context, s *session, params []any, hash *[32]byte) bool {
	// The submit outlives a cancelled run by a little, so shares found just
	// before Ctrl-C still count.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CallTimeout)
	defer cancel()
	m.submitted.Add(1)
	res, err := s.client.Call(cctx, "mining.submit", params)
	job, nonce := params[1], params[4]
	var serr *stratum.Error
	switch {
	case errors.As(err, &serr):
		if serr.Code == stratum.CodeJobNotFound {
			m.stale.Add(1)
		} else {
			m.rejected.Add(1)
		}
		m.log.Warn("share rejected", "job", job, "nonce", nonce, "code", serr.Code, "reason", serr.Message)
	case err != nil:
		// Timed out, or the connection ended first: the pool may or may
		// not have counted it, nobody will say.
		m.lost.Add(1)
		m.log.Warn("share lost: no reply from pool", "job", job, "nonce", nonce, "err", err)
	case string(res) == "true":
		n := m.accepted.Add(1)
		m.log.Info("share accepted", "job", job, "nonce", nonce, "hash", pow.HashString(hash),
			"accepted", n, "rejected", m.rejected.Load())
		return true
	default:
		m.rejected.Add(1)
		m.log.Warn("share rejected", "job", job, "nonce", nonce, "result", truncate(string(res), 64))
	}
	return false
}

// drainSubmits gives shares already sent a moment to be answered before a
// shutdown closes the connection, so the summary counts them.
func (m *Miner) drainSubmits(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for m.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *Miner) noteBest(h *[32]byte) {
	d := pow.HashDifficulty(h)
	m.mu.Lock()
	if d > m.bestShare {
		m.bestShare = d
	}
	m.mu.Unlock()
}
