package worker

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
)

// template is everything that defines one search space: a job as seen
// through one session (its extranonce1, extranonce2 size and version mask).
// It is immutable; any change publishes a new template.
type template struct {
	job     *Job
	en1     []byte
	en2Size int
	mask    uint32 // granted version-rolling mask, 0 when not rolling
	owner   any    // the session that produced it; shares go back through it only
	rec     *jobRecord
}

// Slice is one unit of work a device pulls: a header (with its merkle root
// for one extranonce2 and rolled version) and an inclusive nonce range.
// Devices read it only; the scheduler never changes a slice once handed out.
type Slice struct {
	Header      [80]byte // nonce bytes are zero
	Target      [32]byte // little-endian share target the device filters with
	First, Last uint32
	JobID       string
	Extranonce2 []byte
	Version     uint32

	gen  uint64
	tmpl *template
}

// Nonces is the number of nonces in the slice.
func (s *Slice) Nonces() uint64 { return uint64(s.Last) - uint64(s.First) + 1 }

// WorkSource hands out slices. Each device pulls its own, sized to its
// speed, so a fast device never waits for a slow one and a new job reaches
// every device at its next slice boundary (or sooner through Stale).
type WorkSource interface {
	// Next blocks until work exists and returns a slice of at most size
	// nonces (size is a hint; a slice never crosses a header boundary).
	Next(ctx context.Context, size uint64) (*Slice, error)
	// Stale reports whether the slice's work has been superseded. It is one
	// atomic load, cheap enough to call between short scan chunks.
	Stale(s *Slice) bool
}

// Results receives what devices produce.
type Results interface {
	// Found reports a nonce the device's kernel says meets s.Target.
	Found(s *Slice, nonce uint32)
	// Hashed reports nonces scanned, for the hashrate meter.
	Hashed(n uint64)
	// HWErrors reports candidates the device itself refuted on the CPU
	// (OpenCL hosts re-check every candidate before reporting it).
	HWErrors(n uint64)
}

// scheduler is the WorkSource: one cursor walks the current template's
// search space in the order nonce, extranonce2, version bits. ntime is never
// rolled: Stratum V1 gives no standard way to learn how far a pool allows it.
type scheduler struct {
	gen atomic.Uint64

	mu      sync.Mutex
	cur     *template
	target  [32]byte
	changed chan struct{} // closed when cur changes, then replaced

	// cursor
	en2, vidx, nonce uint64
	en2Limit         uint64
	vLimit           uint64
	hdr              [80]byte
	hdrValid         bool
	exhausted        bool
	// paused is set by solved: the current job's block is found, its
	// remaining hashes are worth nothing.
	paused bool

	nonceLimit uint64 // 2^32 except in tests
	log        *slog.Logger
}

func newScheduler(nonceBits uint, log *slog.Logger) *scheduler {
	if nonceBits == 0 || nonceBits > 32 {
		nonceBits = 32
	}
	if log == nil {
		log = slog.Default()
	}
	return &scheduler{changed: make(chan struct{}), nonceLimit: 1 << nonceBits, log: log}
}

// set publishes new work (nil stops all devices) and restarts the cursor.
func (s *scheduler) set(t *template, target [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = t
	s.target = target
	s.en2, s.vidx, s.nonce = 0, 0, 0
	s.hdrValid, s.exhausted, s.paused = false, false, false
	if t != nil {
		s.en2Limit = 1
		if t.en2Size > 0 {
			n := min(t.en2Size, 8)
			if n == 8 {
				s.en2Limit = 0 // wraps: effectively unlimited
			} else {
				s.en2Limit = 1 << (8 * n)
			}
		}
		s.vLimit = 1 << bits.OnesCount32(t.mask)
	}
	s.gen.Add(1)
	close(s.changed)
	s.changed = make(chan struct{})
}

// setTarget changes the share target of the current work without restarting
// it: slices already out keep filtering with their copy, and every candidate
// is re-checked against the live target before it is sent.
func (s *scheduler) setTarget(target [32]byte) {
	s.mu.Lock()
	s.target = target
	s.mu.Unlock()
}

// solved stops the work a block-solving share came from. Every other hash
// on that previous block is wasted once the block is in, and on a test
// network where most hashes solve a block, keeping on would only flood the
// pool with shares that are stale a moment later. Devices wait until the
// pool sends the next job, or until resume (the pool refused the block, or
// no new job came in time). It reports whether it paused anything.
func (s *scheduler) solved(sl *Slice) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen.Load() != sl.gen || s.paused || s.exhausted {
		return false
	}
	s.paused = true
	s.gen.Add(1)
	return true
}

// solvedBy reports whether devices are paused because a share of t solved
// its block: the job's other shares are worthless (stale at the pool a
// moment later), so candidates already queued are not sent.
func (s *scheduler) solvedBy(t *template) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused && s.cur == t
}

// resume undoes solved: the job is still the current one, so the cursor
// carries on where it stopped.
func (s *scheduler) resume(t *template) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != t || !s.paused {
		return
	}
	s.paused = false
	s.gen.Add(1)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *scheduler) current() *template {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *scheduler) Stale(sl *Slice) bool { return s.gen.Load() != sl.gen }

func (s *scheduler) Next(ctx context.Context, size uint64) (*Slice, error) {
	if size == 0 {
		size = 1
	}
	s.mu.Lock()
	for s.cur == nil || s.exhausted || s.paused {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	t := s.cur
	if !s.hdrValid {
		s.buildHeader()
	}
	first := s.nonce
	last := min(first+size, s.nonceLimit) - 1
	sl := &Slice{
		Header:      s.hdr,
		Target:      s.target,
		First:       uint32(first),
		Last:        uint32(last),
		JobID:       t.job.ID,
		Extranonce2: s.en2Bytes(),
		Version:     binary.LittleEndian.Uint32(s.hdr[0:]),
		gen:         s.gen.Load(),
		tmpl:        t,
	}
	s.nonce = last + 1
	if s.nonce >= s.nonceLimit {
		s.advanceHeader()
	}
	return sl, nil
}

// advanceHeader moves to the next extranonce2, then to the next version
// inside the mask once every extranonce2 is used.
func (s *scheduler) advanceHeader() {
	s.nonce = 0
	s.hdrValid = false
	s.en2++
	if s.en2Limit == 0 || s.en2 < s.en2Limit {
		return
	}
	s.en2 = 0
	s.vidx++
	if s.vidx < s.vLimit {
		return
	}
	// The whole space is done; devices wait for the next job. Only a tiny
	// extranonce2 without version rolling gets here (one byte is 2^40
	// hashes); ntime is not rolled to stretch it, see the type comment.
	s.exhausted = true
	s.log.Warn("search space of the job exhausted, waiting for the next job", "job", s.cur.job.ID)
}

func (s *scheduler) en2Bytes() []byte {
	b := make([]byte, s.cur.en2Size)
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], s.en2)
	copy(b, le[:])
	return b
}

func (s *scheduler) buildHeader() {
	t := s.cur
	// XOR keeps vidx 0 equal to the job's own version, so a pool that does
	// not understand rolling still sees its version when nothing is rolled.
	version := t.job.Version ^ versionBits(s.vidx, t.mask)
	s.hdr = t.job.Header(t.en1, s.en2Bytes(), version, t.job.NTime, 0)
	s.hdrValid = true
}
