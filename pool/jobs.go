package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/stratum"
)

// jobManager is the job state: the book shares are checked against (its
// lock is its own, see Server) and what only Run touches, so needs no lock.
type jobManager struct {
	*JobBook
	base   string     // per-boot random job id prefix
	seq    uint64     // owned by Run
	fanout []*session // broadcast's reusable snapshot; owned by Run
	// future is the next height's job sent ahead (FutureConn); written by
	// Run, read by sessions starting work.
	future atomic.Pointer[futureJob]
}

// next returns the id and sequence number of the next job. Run only.
func (m *jobManager) next() (id string, seq uint64) {
	m.seq++
	return fmt.Sprintf("%s%x", m.base, m.seq), m.seq
}

// Run builds jobs from templates until ctx ends (it then returns nil) or
// the template channel is closed (an error: the pool can no longer make
// work). A template on a new previous block becomes a clean job sent at
// once; templates on the same block are coalesced to one job per
// Config.JobRefresh.
//
// Run also bounds the life of the block recorder: found blocks the ledger
// has not taken yet are retried until Run returns, which first gives them a
// few seconds' grace and then logs every block it could not record.
func (s *Server) Run(ctx context.Context, templates <-chan *node.Template) error {
	defer s.rec.shutdown()
	var (
		pending   *node.Template
		last      *node.Template // the newest template taken
		lastSent  time.Time
		refresh   = time.NewTimer(time.Hour)
		refreshOn bool
	)
	refresh.Stop()
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t, ok := <-templates:
			if !ok {
				return errors.New("pool: template channel closed")
			}
			if t == nil {
				continue
			}
			last = t
			cur := s.jobs.Current()
			newBlock := cur == nil || cur.prevHash != [32]byte(t.PreviousBlockHash)
			if cur != nil && !newBlock && t.Height != cur.Height {
				s.log.Warn("template height changed without a new previous block; ignoring",
					"height", t.Height, "job_height", cur.Height)
				continue
			}
			since := s.now().Sub(lastSent)
			if !newBlock && since < s.cfg.JobRefresh && !cur.ahead {
				pending = t
				if !refreshOn {
					refresh.Reset(s.cfg.JobRefresh - since)
					refreshOn = true
				}
				continue
			}
			pending = nil
			if newBlock {
				s.activateFuture(t)
			}
			// After an empty job made ahead of the node, its template on
			// the same tip is clean too: miners leave the empty block.
			if s.publish(t, newBlock || (cur != nil && cur.ahead)) {
				lastSent = s.now()
				s.sendFuture(s.jobs.Current(), last)
			}
		case b := <-s.external:
			if s.workAhead(b, last) {
				lastSent = s.now()
				s.sendFuture(s.jobs.Current(), last)
			}
		case <-refresh.C:
			refreshOn = false
			if pending != nil {
				if s.publish(pending, false) {
					lastSent = s.now()
				}
				pending = nil
			}
		}
	}
}

// publish turns a template into the current job and broadcasts it.
func (s *Server) publish(t *node.Template, clean bool) bool {
	return s.publishJobOf(t, clean, false)
}

// publishJobOf is publish, marking the job as made ahead of the node
// (see workAhead). An empty job ahead of the node that is the work of the
// future job already sent takes its id (see FutureConn).
func (s *Server) publishJobOf(t *node.Template, clean, ahead bool) bool {
	id, seq := s.jobs.next()
	var j *Job
	var err error
	if ahead {
		j, err = s.futureJobOf(t, seq, clean)
	}
	if j == nil && err == nil {
		j, err = s.newJob(t, id, seq, clean)
	}
	if err != nil {
		// Miners keep the previous job: better stale-ish work than none.
		s.log.Error("cannot build job from template", "height", t.Height, "prev", t.PreviousBlockHash.String(), "err", err)
		return false
	}
	j.ahead = ahead
	s.jobs.Add(j)
	s.log.Info("new job", "job", j.ID, "height", j.Height, "clean", clean, "txs", len(j.txData),
		"network_difficulty", j.netDiff, "ahead", ahead, "future", j.ID != id)
	start := time.Now()
	s.broadcast(j)
	s.publishJob(j, len(s.jobs.fanout), time.Since(start))
	return true
}

// newJob builds the job of a template, its lines encoded.
func (s *Server) newJob(t *node.Template, id string, seq uint64, clean bool) (*Job, error) {
	j, err := NewJob(t, JobParams{
		ID:              id,
		Seq:             seq,
		Clean:           clean,
		Tag:             s.cfg.CoinbaseTag,
		Extranonce2Size: s.cfg.Extranonce2Size,
		Outputs:         PoolOutputs(t, s.payout),
		SoloOutputs:     s.soloOutputs(t),
		Created:         s.now(),
	})
	if err == nil {
		err = j.encodeLines()
	}
	return j, err
}

// broadcast sends j to every session that can work. The notify line is
// encoded once per job; a session whose difficulty changes gets its own
// set_difficulty first. Sending never blocks: a session whose queue is full
// is closed by the stratum layer and the others carry on.
func (s *Server) broadcast(j *Job) {
	// Followed until the last session's socket has the job (the
	// hand-off below returns long before): NotifyFanout in Stats.
	fo := stratum.TrackFanOut(s.stats.notifyFanout, j.lineClean, j.lineNoClean)
	defer fo.Seal()
	s.mu.Lock()
	s.jobs.fanout = s.jobs.fanout[:0]
	for ss := range s.sessions {
		s.jobs.fanout = append(s.jobs.fanout, ss)
	}
	s.mu.Unlock()

	now := s.now()
	for i, ss := range s.jobs.fanout {
		ss.mu.Lock()
		if ss.ready() {
			// Silent miners never trigger a share-driven retarget;
			// the broadcast cadence is their clock.
			if f := ss.vd.tick(now); f != 1 {
				s.retargetLocked(ss, f, j)
			}
			s.sendJobLocked(ss, j, j.Clean)
		}
		ss.mu.Unlock()
		s.jobs.fanout[i] = nil
	}
}

// CurrentJob returns the height of the block the current job builds.
func (s *Server) CurrentJob() (height int64, ok bool) {
	j := s.jobs.Current()
	if j == nil {
		return 0, false
	}
	return j.Height, true
}

// encodeLines prepares the job's mining.notify lines once, for every
// session: the broadcast form and the clean_jobs=false form used when the
// job is re-sent after a difficulty change.
func (j *Job) encodeLines() error {
	var err error
	if j.lineClean, err = stratum.EncodeNotification("mining.notify", j.Notify(true)); err != nil {
		return fmt.Errorf("pool: encode job %s: %w", j.ID, err)
	}
	if j.lineNoClean, err = stratum.EncodeNotification("mining.notify", j.Notify(false)); err != nil {
		return fmt.Errorf("pool: encode job %s: %w", j.ID, err)
	}
	return nil
}

// soloOutputs returns the SOLO coinbase builder for a template, or nil
// when the pool shares rewards. The finder gets the coinbase value less
// the fee Config.SoloSplit takes, then the witness commitment follows as
// in PoolOutputs.
func (s *Server) soloOutputs(t *node.Template) func([]byte) []TxOut {
	if !s.cfg.Solo {
		return nil
	}
	value, fee := t.CoinbaseValue, int64(0)
	if s.cfg.SoloSplit != nil {
		finder, f, err := s.cfg.SoloSplit(value)
		if err != nil || finder+f != value {
			// Only a value no valid template carries gets here; the
			// finder is not the one to pay for it.
			s.log.Error("SOLO fee not computable; paying the finder the whole coinbase", "value", value, "err", err)
		} else {
			fee = f
		}
	}
	return func(finder []byte) []TxOut {
		outs := []TxOut{{Value: value - fee, Script: finder}}
		if fee > 0 {
			outs = append(outs, TxOut{Value: fee, Script: s.soloFee})
		}
		if len(t.WitnessCommitment) > 0 {
			outs = append(outs, TxOut{Value: 0, Script: t.WitnessCommitment})
		}
		return outs
	}
}
