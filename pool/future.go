package pool

import (
	"bytes"

	"github.com/hashforge/hashforge/pool/node"
)

// FutureConn is a Conn that takes jobs before their previous block exists
// (Stratum V2's future jobs): the next height's empty job goes out ahead,
// and when a block on the current tip is known (one this pool found, or
// one another pool node announced) its activation is the job's
// mining.notify line under the same id, which such a connection turns
// into one small message (SetNewPrevHash). A Conn without it sees only
// the activated job, as an ordinary clean job.
type FutureConn interface {
	SendFutureJob(notifyLine []byte) bool
}

// futureJob is the next height's empty job, sent ahead. Its previous
// block and times are unknown until it is activated.
type futureJob struct {
	tmpl           *node.Template // the empty block's, previous block unset
	height         int64
	id             string
	coinb1, coinb2 []byte // the activated job must carry the same coinbase
	line           []byte // its mining.notify line (previous block zero)
}

// emptyTemplate is an empty block's template at height next from the
// current template, or nil when its bits cannot be known without the node
// (a retarget, a network with minimum-difficulty blocks, a signet).
func (s *Server) emptyTemplate(last *node.Template, next int64) *node.Template {
	p := s.cfg.Network
	if last == nil || last.SignetChallenge != "" {
		return nil
	}
	if !p.PoWNoRetargeting {
		if p.ReduceMinDifficulty {
			return nil // testnet: the bits depend on the block's time
		}
		if per := int64(p.TargetTimespan / p.TargetTimePerBlock); per > 0 && next%per == 0 {
			return nil
		}
	}
	return &node.Template{
		Version:       last.Version,
		CoinbaseValue: subsidy(next, p.SubsidyReductionInterval),
		Bits:          last.Bits,
		Height:        next,
		MinTime:       last.MinTime,
		CurTime:       last.CurTime,
		Rules:         last.Rules,
		CoinbaseFlags: last.CoinbaseFlags,
	}
}

// sendFuture makes the job for the block after cur's ahead of time and
// sends it to every ready session that takes future jobs. Run only.
func (s *Server) sendFuture(cur *Job, last *node.Template) {
	if cur == nil {
		return
	}
	next := cur.Height + 1
	if f := s.jobs.future.Load(); f != nil && f.height == next {
		return
	}
	// In SOLO each finder has a coinbase of its own: no job is the same
	// work for every session.
	var t *node.Template
	if !s.cfg.Solo {
		t = s.emptyTemplate(last, next)
	}
	if t == nil {
		s.jobs.future.Store(nil)
		return
	}
	id, seq := s.jobs.next()
	j, err := s.newJob(t, id, seq, false)
	if err != nil {
		s.jobs.future.Store(nil)
		s.log.Error("cannot build the next height's job ahead", "height", next, "err", err)
		return
	}
	f := &futureJob{tmpl: t, height: next, id: id, coinb1: j.coinb1, coinb2: j.coinb2, line: j.lineNoClean}
	s.jobs.future.Store(f)

	s.eachFutureSession(func(ss *session) { ss.c.(FutureConn).SendFutureJob(f.line) })
}

// eachFutureSession calls send, under the session's lock, for every
// ready session that takes future jobs. Run only.
func (s *Server) eachFutureSession(send func(*session)) {
	s.mu.Lock()
	s.jobs.fanout = s.jobs.fanout[:0]
	for ss := range s.sessions {
		if _, ok := ss.c.(FutureConn); ok {
			s.jobs.fanout = append(s.jobs.fanout, ss)
		}
	}
	s.mu.Unlock()
	for i, ss := range s.jobs.fanout {
		ss.mu.Lock()
		if ss.ready() {
			send(ss)
		}
		ss.mu.Unlock()
		s.jobs.fanout[i] = nil
	}
}

// sendFutureLocked gives a session that just got its first job the
// future job too, if it takes them.
func (s *Server) sendFutureLocked(ss *session) {
	fc, ok := ss.c.(FutureConn)
	if !ok {
		return
	}
	if f, cur := s.jobs.future.Load(), s.jobs.Current(); f != nil && cur != nil && f.height == cur.Height+1 {
		fc.SendFutureJob(f.line)
	}
}

// futureJobOf is the job of t, a template for the future job's height on
// a block now known, under the future job's id when it is the same work
// (the same coinbase, no transactions), so connections that hold it need
// only its previous block; nil when it is not.
func (s *Server) futureJobOf(t *node.Template, seq uint64, clean bool) (*Job, error) {
	f := s.jobs.future.Load()
	if f == nil || f.height != t.Height {
		return nil, nil
	}
	j, err := s.newJob(t, f.id, seq, clean)
	if err != nil || !bytes.Equal(f.coinb1, j.coinb1) || !bytes.Equal(f.coinb2, j.coinb2) || len(j.branch) != 0 {
		return nil, err
	}
	return j, nil
}

// activateFuture starts the future job on the previous block of t, the
// node's first template on a new tip, for the sessions that hold it, just
// before t's own job goes out: a new block from anywhere reaches them as
// the small message that starts the job they have, and t's job follows on
// the same previous block (no new block to them). Other sessions get t's
// job alone. Run only.
func (s *Server) activateFuture(t *node.Template) {
	f := s.jobs.future.Load()
	if f == nil || f.height != t.Height {
		return
	}
	et := *f.tmpl
	et.PreviousBlockHash, et.Bits, et.MinTime, et.CurTime = t.PreviousBlockHash, t.Bits, t.MinTime, t.CurTime
	_, seq := s.jobs.next()
	j, _ := s.futureJobOf(&et, seq, true)
	s.jobs.future.Store(nil)
	if j == nil {
		return
	}
	s.jobs.Add(j)
	s.eachFutureSession(func(ss *session) { s.sendJobLocked(ss, j, true) })
}
