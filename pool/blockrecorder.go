package pool

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/record"
)

// blockRecorder hands found blocks to the ledger in the background,
// retrying until the ledger takes each or the server stops. Found blocks
// not yet in the ledger are kept in memory meanwhile.
//
// mu is a leaf in the lock order (see Server.mu): it is never held while
// another lock is taken, nor while the ledger or an event subscriber is
// called.
type blockRecorder struct {
	sink      BlockSink
	journaled bool               // a block journal keeps every block too
	log       *slog.Logger       // the server's, for FOUND BLOCK NOT RECORDED
	published func(record.Block) // the block event, after the first attempt

	// Retry schedule; package defaults, shortened by tests.
	backoff, backMax time.Duration
	grace            time.Duration

	mu         sync.Mutex
	unrecorded map[string]record.Block // by hash
	stopped    bool

	wg   sync.WaitGroup
	ctx  context.Context // ends when stop is called
	stop context.CancelFunc
}

// Recording a found block in the ledger happens off the share path and is
// retried until it succeeds or the server stops.
const (
	recordAttemptTimeout = 30 * time.Second
	recordBackoffMin     = 250 * time.Millisecond
	recordBackoffMax     = 30 * time.Second
	// recordGrace is how long Run, when stopping, still waits for blocks
	// not yet recorded before giving up on them (and logging each).
	recordGrace = 5 * time.Second
	// lastRecordTimeout bounds the single attempt made for a block found
	// after the server stopped.
	lastRecordTimeout = 5 * time.Second
)

func newBlockRecorder(sink BlockSink, log *slog.Logger, published func(record.Block)) *blockRecorder {
	r := &blockRecorder{
		sink:       sink,
		log:        log,
		published:  published,
		backoff:    recordBackoffMin,
		backMax:    recordBackoffMax,
		grace:      recordGrace,
		unrecorded: make(map[string]record.Block),
	}
	r.ctx, r.stop = context.WithCancel(context.Background())
	return r
}

// pending counts found blocks the ledger has not taken yet.
func (r *blockRecorder) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.unrecorded)
}

// record hands a found block to the ledger without blocking the share
// path: the block is kept in memory and recorded by a background goroutine
// that retries with backoff until the ledger takes it or the server stops.
// After Run has returned there is no background any more: one bounded
// attempt is made here.
func (r *blockRecorder) record(b record.Block, log *slog.Logger) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), lastRecordTimeout)
		err := r.sink.RecordBlock(ctx, b)
		cancel()
		if err != nil {
			r.logUnrecorded(b, err)
		}
		r.published(b)
		return
	}
	r.unrecorded[b.Hash] = b
	r.wg.Add(1)
	r.mu.Unlock()
	go r.loop(b, log)
}

func (r *blockRecorder) loop(b record.Block, log *slog.Logger) {
	defer r.wg.Done()
	retry := backoff.Backoff{Min: r.backoff, Max: r.backMax}
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, recordAttemptTimeout)
		err := r.sink.RecordBlock(ctx, b)
		cancel()
		if attempt == 1 {
			// After the first attempt: an observer reacting to the event
			// finds the block in the ledger when it could be recorded, and
			// the live feed does not wait for a database that is away.
			r.published(b)
		}
		if err == nil {
			r.mu.Lock()
			delete(r.unrecorded, b.Hash)
			r.mu.Unlock()
			if attempt > 1 {
				log.Info("found block recorded in the ledger after retries", "attempts", attempt, "accepted", b.Accepted)
			}
			return
		}
		if r.ctx.Err() != nil {
			return // shutdown reports it
		}
		delay := retry.Next()
		log.Error("cannot record found block in the ledger; kept in memory, retrying",
			"attempt", attempt, "retry_in", delay, "accepted", b.Accepted, "unknown", b.Unknown, "err", err)
		if !backoff.Sleep(r.ctx, delay) {
			return
		}
	}
}

// shutdown ends the background recording: blocks still unrecorded get
// r.grace more to make it, then the retries stop and every block left is
// logged with what an operator needs to enter it by hand.
func (r *blockRecorder) shutdown() {
	for deadline := time.Now().Add(r.grace); ; {
		if r.pending() == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
	r.mu.Lock()
	left := make([]record.Block, 0, len(r.unrecorded))
	for _, b := range r.unrecorded {
		left = append(left, b)
	}
	clear(r.unrecorded)
	r.mu.Unlock()
	for _, b := range left {
		r.logUnrecorded(b, errors.New("server stopped before the ledger took it"))
	}
}

func (r *blockRecorder) logUnrecorded(b record.Block, err error) {
	if r.journaled {
		r.log.Warn("found block not in the ledger yet: it is in the block journal, which the next start records",
			"hash", b.Hash, "height", b.Height, "accepted", b.Accepted, "err", err)
		return
	}
	r.log.Error("FOUND BLOCK NOT RECORDED in the ledger: add it by hand",
		"hash", b.Hash, "height", b.Height, "accepted", b.Accepted, "unknown", b.Unknown, "verdict", b.Verdict,
		"reward_sat", b.Reward, "address", b.Address, "worker", b.Worker, "found_at", b.Time, "err", err)
}
