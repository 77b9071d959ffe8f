package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/record"
)

// BatcherOptions configures a Batcher. Zero values select the defaults.
type BatcherOptions struct {
	// MaxBatch is the number of shares that triggers a flush (default 1000).
	MaxBatch int
	// FlushInterval bounds how long a share waits in a partial batch
	// (default 200ms).
	FlushInterval time.Duration
	// QueueSize is the capacity of the queue between AddShare and the
	// writer (default 100_000). When it is full AddShare blocks.
	QueueSize int
	// SpoolDir is where batches go while PostgreSQL is unreachable, and
	// where Run looks for batches a previous process left behind. One
	// directory per process. Without it an outage stalls the share path
	// (backpressure) once the queue is full, and shares still queued when
	// Run stops with the database away are lost.
	SpoolDir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnBatch, when set, runs inside each batch's transaction, after the
	// COPY, and fails the batch if it fails: what it writes is committed
	// exactly once with the shares (PPS credits; see PPSCredits).
	OnBatch func(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) error
	// OnFlush, when set, observes every attempt to write a batch to
	// PostgreSQL (fresh or replayed from the spool): its number of shares,
	// how long the attempt took, and its error (nil when it committed).
	// Batches found already committed are not reported. It runs on the
	// writer goroutine, so it must not block (metrics).
	OnFlush func(n int, d time.Duration, err error)
}

const (
	defaultMaxBatch      = 1000
	defaultFlushInterval = 200 * time.Millisecond
	defaultQueueSize     = 100_000

	// attemptTimeout bounds one write of one batch. The writer is a single
	// goroutine: an attempt hanging on a dead connection would otherwise
	// stall every share behind it.
	attemptTimeout = 10 * time.Second
	// shutdownTimeout bounds the final flush after Run's context ends.
	shutdownTimeout = 15 * time.Second
	minBackoff      = 250 * time.Millisecond
	maxBackoff      = 30 * time.Second
)

// Stats is a snapshot of a Batcher's counters, for metrics.
type Stats struct {
	BatchesFlushed   uint64        // batches committed, directly or by replay
	SharesWritten    uint64        // shares committed
	BatchesSpooled   uint64        // batches written to the spool
	BatchesReplayed  uint64        // spooled batches committed by replay
	BatchesSkipped   uint64        // spooled batches found already committed
	BatchesRejected  uint64        // batches the database refused for good, set aside on disk
	FlushErrors      uint64        // failed write attempts
	SharesLost       uint64        // shares neither committed nor spooled (no spool dir, or it failed)
	QueueLength      int           // shares waiting in the queue now
	LastFlushLatency time.Duration // duration of the last successful batch write
}

// Batcher is the ledger's pool.ShareSink. AddShare queues shares; Run
// writes them to PostgreSQL in batches with COPY, spools batches to disk
// while the database is away and replays them, exactly once, when it is
// back.
type Batcher struct {
	ledger *Ledger
	opts   BatcherOptions
	log    *slog.Logger
	queue  chan record.Share

	running  atomic.Bool
	stopped  chan struct{} // closed when Run stops taking shares from the queue
	inflight atomic.Int64  // AddShare calls in progress, so Run's last drain misses none
	spool    *spool        // nil without SpoolDir; set by Run before stopped closes

	// Owned by the Run goroutine.
	workers map[workerKey]cachedWorker
	healthy bool
	retry   backoff.Backoff
	nextTry time.Time
	held    []batch // batches neither committed nor spooled yet
	// spoolDirty says the spool may hold batches, so that an idle tick
	// need not list the spool directory.
	spoolDirty bool

	batchesFlushed, sharesWritten, batchesSpooled, batchesReplayed atomic.Uint64
	batchesSkipped, batchesRejected, flushErrors, sharesLost       atomic.Uint64
	lastFlushNanos                                                 atomic.Int64
}

// NewBatcher returns a Batcher writing to l. Call Run to start it; shares
// added before that wait in the queue.
func NewBatcher(l *Ledger, opts BatcherOptions) *Batcher {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = defaultFlushInterval
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = defaultQueueSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Batcher{
		ledger:  l,
		opts:    opts,
		log:     log.With("component", "ledger.batcher"),
		queue:   make(chan record.Share, opts.QueueSize),
		stopped: make(chan struct{}),
		workers: make(map[workerKey]cachedWorker),
		healthy: true,
		retry:   backoff.Backoff{Min: minBackoff, Max: maxBackoff},
	}
}

// AddShare queues s for writing. It blocks while the queue is full, which
// slows the share path down instead of dropping shares. Once Run has
// stopped, AddShare writes the share to the spool itself (synchronously),
// so a share accepted during shutdown is still replayed by the next
// process.
func (b *Batcher) AddShare(s record.Share) {
	// The increment must come before the check of stopped: Run waits for
	// in-flight calls after closing stopped, so every call either reaches
	// the queue while Run still drains it or sees stopped closed.
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	select {
	case <-b.stopped:
		b.addLate(s)
		return
	default:
	}
	select {
	case b.queue <- s:
	case <-b.stopped:
		b.addLate(s)
	}
}

func (b *Batcher) addLate(s record.Share) {
	sanitizeShare(&s)
	if b.spool == nil {
		b.sharesLost.Add(1)
		b.log.Error("share lost: batcher stopped and no spool dir configured", "address", s.Address, "worker", s.Worker)
		return
	}
	bt := batch{ID: newBatchID(time.Now()), Shares: []record.Share{s}}
	if err := b.spool.append(bt); err != nil {
		b.sharesLost.Add(1)
		b.log.Error("share lost: batcher stopped and spool write failed", "batch", bt.ID, "err", err)
		return
	}
	b.batchesSpooled.Add(1)
}

// Stats returns the current counters.
func (b *Batcher) Stats() Stats {
	return Stats{
		BatchesFlushed:   b.batchesFlushed.Load(),
		SharesWritten:    b.sharesWritten.Load(),
		BatchesSpooled:   b.batchesSpooled.Load(),
		BatchesReplayed:  b.batchesReplayed.Load(),
		BatchesSkipped:   b.batchesSkipped.Load(),
		BatchesRejected:  b.batchesRejected.Load(),
		FlushErrors:      b.flushErrors.Load(),
		SharesLost:       b.sharesLost.Load(),
		QueueLength:      len(b.queue),
		LastFlushLatency: time.Duration(b.lastFlushNanos.Load()),
	}
}

// Run writes queued shares until ctx ends, then drains the queue, writes
// (or spools) what is left and returns. It first replays any spool a
// previous process left behind. It returns an error if it cannot start, or
// if shares could be neither written nor spooled at shutdown.
func (b *Batcher) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("ledger: batcher: Run called more than once")
	}
	if b.opts.SpoolDir != "" {
		sp, err := openSpool(b.opts.SpoolDir)
		if err != nil {
			close(b.stopped)
			return fmt.Errorf("ledger: batcher: %w", err)
		}
		b.spool = sp
		b.spoolDirty = true // whatever a previous process left
	} else {
		b.log.Warn("no spool dir: a database outage will stall the share path once the queue is full")
	}

	b.replay(ctx)

	ticker := time.NewTicker(b.opts.FlushInterval)
	defer ticker.Stop()
	cur := make([]record.Share, 0, b.opts.MaxBatch)
	for {
		if len(b.held) > 0 {
			// A batch that is neither in the database nor on disk: stop
			// reading the queue so producers feel the backpressure
			// instead of this process piling shares up in memory.
			timer := time.NewTimer(max(time.Until(b.nextTry), 10*time.Millisecond))
			select {
			case <-ctx.Done():
				timer.Stop()
				return b.shutdown(ctx, cur)
			case <-timer.C:
				b.retryHeld(ctx, false)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return b.shutdown(ctx, cur)
		case s := <-b.queue:
			sanitizeShare(&s)
			cur = append(cur, s)
			if len(cur) >= b.opts.MaxBatch {
				b.flush(ctx, cur)
				cur = make([]record.Share, 0, b.opts.MaxBatch)
			}
		case <-ticker.C:
			if len(cur) > 0 {
				b.flush(ctx, cur)
				cur = make([]record.Share, 0, b.opts.MaxBatch)
			}
			b.replay(ctx)
		}
	}
}

// shutdown takes every share still queued or being queued, writes or
// spools it, and stops.
func (b *Batcher) shutdown(ctx context.Context, cur []record.Share) error {
	close(b.stopped)
	for {
		for more := true; more; {
			select {
			case s := <-b.queue:
				sanitizeShare(&s)
				cur = append(cur, s)
			default:
				more = false
			}
		}
		// inflight before len: a call that finished before the load has
		// its share in the queue already.
		if b.inflight.Load() == 0 && len(b.queue) == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for len(cur) > 0 {
		n := min(len(cur), b.opts.MaxBatch)
		b.flush(sctx, cur[:n:n])
		cur = cur[n:]
	}
	if len(b.held) > 0 {
		// Last chance for shares with nowhere else to go: try the
		// database even if the backoff says not yet.
		b.retryHeld(sctx, true)
	}
	if b.spool != nil {
		b.spool.rotate()
	}
	var lost int
	for _, bt := range b.held {
		lost += len(bt.Shares)
	}
	b.held = nil
	if lost > 0 {
		b.sharesLost.Add(uint64(lost))
		b.log.Error("shares lost at shutdown: database unavailable and nothing spooled", "shares", lost)
		return fmt.Errorf("ledger: batcher: %d shares could be neither written nor spooled", lost)
	}
	return nil
}

// flush gives a fresh batch its id and writes it, or parks it when the
// database is down.
func (b *Batcher) flush(ctx context.Context, shares []record.Share) {
	bt := batch{ID: newBatchID(time.Now()), Shares: shares}
	if b.dbDue() && b.tryWrite(ctx, bt, false) {
		return
	}
	b.park(bt)
}

// park makes a batch the database did not take durable on disk, or holds
// it in memory when there is no usable spool.
func (b *Batcher) park(bt batch) {
	if b.spool != nil {
		err := b.spool.append(bt)
		if err == nil {
			b.spoolDirty = true
			b.batchesSpooled.Add(1)
			b.log.Debug("batch spooled", "batch", bt.ID, "shares", len(bt.Shares))
			return
		}
		b.log.Error("spool write failed; holding batch in memory", "batch", bt.ID, "err", err)
	}
	b.held = append(b.held, bt)
}

// retryHeld tries to put held batches in the database, or else in the
// spool. force ignores the backoff.
func (b *Batcher) retryHeld(ctx context.Context, force bool) {
	rest := b.held[:0]
	for _, bt := range b.held {
		if (force || b.dbDue()) && b.tryWrite(ctx, bt, false) {
			continue
		}
		if b.spool != nil && b.spool.append(bt) == nil {
			b.spoolDirty = true
			b.batchesSpooled.Add(1)
			continue
		}
		rest = append(rest, bt)
	}
	clear(b.held[len(rest):])
	b.held = rest
}

// dbDue reports whether a write attempt is worth making now: the database
// was fine at the last attempt, or the backoff after a failure is over.
// During an outage this turns most batches straight to the spool instead
// of each paying for a failed connection attempt.
func (b *Batcher) dbDue() bool {
	return b.healthy || !time.Now().Before(b.nextTry)
}

// tryWrite makes one bounded attempt to commit bt. It returns true when the
// batch needs nothing more: committed, already committed before, or
// refused for good and set aside.
func (b *Batcher) tryWrite(ctx context.Context, bt batch, replay bool) bool {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	start := time.Now()
	written, err := b.writeBatch(actx, bt)
	cancel()
	took := time.Since(start)
	if b.opts.OnFlush != nil && (written || err != nil) {
		b.opts.OnFlush(len(bt.Shares), took, err)
	}
	if err == nil {
		b.markUp()
		if !written {
			b.batchesSkipped.Add(1)
			b.log.Info("spooled batch already committed; skipped", "batch", bt.ID)
			return true
		}
		b.lastFlushNanos.Store(int64(took))
		b.batchesFlushed.Add(1)
		b.sharesWritten.Add(uint64(len(bt.Shares)))
		if replay {
			b.batchesReplayed.Add(1)
		}
		return true
	}
	b.flushErrors.Add(1)
	if permanent(err) {
		b.reject(bt, err)
		return true
	}
	if ctx.Err() == nil {
		b.markDown(err)
	}
	return false
}

// reject sets aside a batch the database refuses whatever the retry, so
// that it cannot block every batch behind it.
func (b *Batcher) reject(bt batch, cause error) {
	b.batchesRejected.Add(1)
	if b.spool == nil {
		b.sharesLost.Add(uint64(len(bt.Shares)))
		b.log.Error("batch refused by the database and dropped (no spool dir)", "batch", bt.ID, "shares", len(bt.Shares), "err", cause)
		return
	}
	path, err := b.spool.quarantine(bt)
	if err != nil {
		b.sharesLost.Add(uint64(len(bt.Shares)))
		b.log.Error("batch refused by the database and could not be set aside", "batch", bt.ID, "shares", len(bt.Shares), "err", cause, "quarantine_err", err)
		return
	}
	b.log.Error("batch refused by the database; set aside for inspection", "batch", bt.ID, "shares", len(bt.Shares), "file", path, "err", cause)
}

func (b *Batcher) markUp() {
	if !b.healthy {
		b.log.Info("database reachable again")
	}
	b.healthy, b.nextTry = true, time.Time{}
	b.retry.Reset()
}

func (b *Batcher) markDown(err error) {
	delay := b.retry.Next()
	if b.healthy {
		b.log.Warn("database unavailable; retrying with backoff", "err", err, "spooling", b.spool != nil)
	} else {
		b.log.Debug("database still unavailable", "err", err, "backoff", delay)
	}
	b.healthy = false
	// Jitter keeps the pool nodes from hammering a recovering database in
	// lockstep.
	b.nextTry = time.Now().Add(backoff.Around(delay))
}

// errReplayPaused stops reading a segment when the database goes away.
var errReplayPaused = errors.New("replay paused")

// replay writes the oldest spooled segment to the database, if the
// database is due for an attempt. One segment per call keeps the queue
// moving while a long backlog drains.
func (b *Batcher) replay(ctx context.Context) {
	if b.spool == nil || !b.spoolDirty || !b.dbDue() || ctx.Err() != nil {
		return
	}
	segs, err := b.spool.closedSegments()
	if err != nil {
		b.log.Error("spool replay", "err", err)
		return
	}
	if len(segs) == 0 {
		if !b.spool.hasActive() {
			b.spoolDirty = false
			return
		}
		// Batches spooled by this process during the outage: close the
		// segment so that it can be read and deleted.
		b.spool.rotate()
		if segs, err = b.spool.closedSegments(); err != nil || len(segs) == 0 {
			return
		}
	}
	b.replaySegment(ctx, segs[0])
}

func (b *Batcher) replaySegment(ctx context.Context, path string) {
	var n int
	torn, err := readSegment(path, func(bt batch) error {
		for i := range bt.Shares {
			sanitizeShare(&bt.Shares[i])
		}
		if !b.tryWrite(ctx, bt, true) {
			return errReplayPaused
		}
		n++
		return nil
	})
	switch {
	case errors.Is(err, errReplayPaused):
		b.log.Debug("spool replay paused", "segment", path, "batches_done", n)
		return
	case err != nil:
		// Records after the damage cannot be found; keep the file for an
		// operator instead of deleting shares that may still be in it.
		dst, rerr := markCorrupt(path)
		b.log.Error("spool segment damaged; set aside after replaying what preceded the damage",
			"segment", path, "moved_to", dst, "batches_done", n, "err", err, "rename_err", rerr)
		return
	case torn:
		b.log.Warn("spool segment ends in a torn record (crash during a write); ignored it",
			"segment", path, "batches_done", n)
	}
	// Not fsyncing the directory after the remove is deliberate: if the
	// removal is lost in a crash the segment is replayed again, and every
	// batch in it is skipped by id.
	if err := os.Remove(path); err != nil {
		b.log.Error("remove replayed spool segment", "segment", path, "err", err)
		return
	}
	b.log.Info("spool segment replayed", "segment", path, "batches", n)
}
