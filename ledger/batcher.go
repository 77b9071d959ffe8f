package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/record"
)

// ErrNotKept is what AddShare's done hears when neither the spool nor
// PostgreSQL could keep the share: the miner must not be told "accepted".
var ErrNotKept = errors.New("ledger: shares cannot be kept now (spool and database both unavailable)")

// BatcherOptions configures a Batcher. Zero values select the defaults.
type BatcherOptions struct {
	// NodeID is the pool node (serve --node-id) the shares are recorded
	// as accepted by.
	NodeID int16
	// MaxBatch is the most shares one database transaction applies
	// (default 5000). The writer takes whatever the log holds up to it:
	// batches are sized by what is waiting.
	MaxBatch int
	// FlushInterval is how often the writer applies the spool when less
	// than MaxBatch shares wait (default 100ms): a full batch is applied
	// at once.
	FlushInterval time.Duration
	// QueueSize bounds the shares waiting for the next group commit
	// (default 100_000). When it is full AddShare blocks.
	QueueSize int
	// SpoolDir is the write-ahead log: every accepted share is appended
	// and fsynced there (a group commit for all that arrive together)
	// before it is acknowledged, and applied to PostgreSQL from there in
	// order, exactly once, across any crash. One directory per process.
	// Without it a share is acknowledged only once PostgreSQL committed
	// it, and refused while the database is away.
	SpoolDir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnBatch, when set, runs inside each transaction that stores shares,
	// after the COPY, and fails it if it fails: what it writes is
	// committed exactly once with the shares (PPS credits; see
	// PPSCredits). batchID is a fresh UUID per transaction.
	OnBatch func(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) error
	// OnFlush, when set, observes every attempt to store shares in
	// PostgreSQL: their number, how long the attempt took, and its error
	// (nil when it committed). It runs on the writing goroutine, so it
	// must not block (metrics).
	OnFlush func(n int, d time.Duration, err error)
}

const (
	defaultMaxBatch      = 5000
	defaultFlushInterval = 100 * time.Millisecond
	defaultQueueSize     = 100_000

	// attemptTimeout bounds one write of one batch. The writer is a single
	// goroutine: an attempt hanging on a dead connection would otherwise
	// stall every share behind it.
	attemptTimeout = 10 * time.Second
	// directTimeout bounds a group commit that goes straight to the
	// database (no usable spool): miners are waiting for the answer.
	directTimeout = 5 * time.Second
	// shutdownTimeout bounds how long Run, stopping, keeps applying the
	// log; what is left stays in the spool for the next start.
	shutdownTimeout = 15 * time.Second
	minBackoff      = 250 * time.Millisecond
	maxBackoff      = 30 * time.Second
	// spoolRetry is how soon a failed spool (disk full, unwritable) is
	// tried again.
	spoolRetryMin = 500 * time.Millisecond
	spoolRetryMax = 10 * time.Second
)

// Stats is a snapshot of a Batcher's counters, for metrics.
type Stats struct {
	BatchesFlushed   uint64        // transactions that stored shares
	SharesWritten    uint64        // shares committed to PostgreSQL
	BatchesSpooled   uint64        // group commits to the spool (records appended)
	SharesSpooled    uint64        // shares kept in the spool before their acknowledgement
	BatchesReplayed  uint64        // version-1 spooled batches committed at start
	BatchesSkipped   uint64        // version-1 spooled batches found already committed
	BatchesRejected  uint64        // batches the database refused for good, set aside on disk
	FlushErrors      uint64        // failed write attempts
	SharesLost       uint64        // acknowledged shares neither stored nor set aside (should stay 0)
	SharesRefused    uint64        // shares not acknowledged because nothing could keep them
	QueueLength      int           // shares waiting for the next group commit
	LogBacklogBytes  int64         // spool bytes not yet applied to PostgreSQL
	LastFlushLatency time.Duration // duration of the last successful database write
	LastSyncLatency  time.Duration // duration of the last spool append+fsync
	DatabaseUp       bool          // the last database attempt succeeded
	SpoolUp          bool          // the last spool append succeeded (false without a spool)
	// Refusing is why shares are refused now; empty while they are kept.
	Refusing string
}

// pendingShare is a share waiting for its group commit, and whom to tell.
type pendingShare struct {
	s    record.Share
	done func(error)
}

// Batcher is the ledger's pool.ShareSink. AddShare hands a share to the
// group commit, which makes it durable (the spool's fsync, or a database
// commit) and then acknowledges it; Run's writer applies the spool to
// PostgreSQL in order with COPY, exactly once.
type Batcher struct {
	ledger *Ledger
	opts   BatcherOptions
	log    *slog.Logger

	running atomic.Bool
	spool   *spool // nil without SpoolDir; set by Run before its goroutines start
	// spoolStat is spool for Stats, which may run before Run set it.
	spoolStat atomic.Pointer[spool]

	mu     sync.Mutex
	space  *sync.Cond // signalled when the intake is taken
	intake []pendingShare
	late   bool // Run's group commit has stopped: AddShare keeps its own share
	wake   chan struct{}
	// commitMu makes group commits one at a time (Run's and late ones):
	// records are appended in acknowledgement order.
	commitMu sync.Mutex

	hmu        sync.Mutex // the health state below
	dbUp       bool
	dbRetry    backoff.Backoff
	dbNext     time.Time
	spoolUp    bool
	spoolRetry backoff.Backoff
	spoolNext  time.Time
	refusing   string

	wmu     sync.Mutex // the worker cache
	workers map[workerKey]cachedWorker

	// The writer's cursor: the log position after the last record in the
	// database. Owned by the writer; cursorMu guards the copy stats read.
	cursor      walPos
	cursorKnown bool
	// isolateUntil: records before it are applied one per transaction
	// (after a data error in a multi-record transaction).
	isolateUntil walPos
	cursorMu     sync.Mutex
	statCursor   walPos

	batchesFlushed, sharesWritten, batchesSpooled, sharesSpooled, batchesReplayed atomic.Uint64
	batchesSkipped, batchesRejected, flushErrors, sharesLost, sharesRefused       atomic.Uint64
	lastFlushNanos, lastSyncNanos                                                 atomic.Int64
}

// NewBatcher returns a Batcher writing to l. Call Run to start it; shares
// added before that wait for it.
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
	b := &Batcher{
		ledger:     l,
		opts:       opts,
		log:        log.With("component", "ledger.batcher"),
		wake:       make(chan struct{}, 1),
		workers:    make(map[workerKey]cachedWorker),
		dbUp:       true,
		spoolUp:    opts.SpoolDir != "",
		dbRetry:    backoff.Backoff{Min: minBackoff, Max: maxBackoff},
		spoolRetry: backoff.Backoff{Min: spoolRetryMin, Max: spoolRetryMax},
	}
	b.space = sync.NewCond(&b.mu)
	return b
}

// AddShare hands s over to be kept. done (may be nil) is called exactly
// once, from another goroutine or before AddShare returns: with nil once
// the share is durable (fsynced in the spool, or committed), with
// ErrNotKept when nothing could keep it. A miner is told "accepted" only
// after done(nil). AddShare blocks while QueueSize shares already wait for
// their group commit.
func (b *Batcher) AddShare(s record.Share, done func(error)) {
	b.mu.Lock()
	for len(b.intake) >= b.opts.QueueSize && !b.late {
		b.space.Wait()
	}
	if b.late {
		b.mu.Unlock()
		b.keepLate(pendingShare{s, done})
		return
	}
	b.intake = append(b.intake, pendingShare{s, done})
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// keepLate keeps a share that arrived after Run's group commit stopped:
// the caller does the group commit (of one) itself.
func (b *Batcher) keepLate(p pendingShare) {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	b.keepGroup([]pendingShare{p})
}

// Stats returns the current counters.
func (b *Batcher) Stats() Stats {
	b.mu.Lock()
	queued := len(b.intake)
	b.mu.Unlock()
	b.hmu.Lock()
	sp := b.spoolStat.Load()
	dbUp, spoolUp, refusing := b.dbUp, b.spoolUp && sp != nil, b.refusing
	b.hmu.Unlock()
	var backlog int64
	if sp != nil {
		b.cursorMu.Lock()
		c := b.statCursor
		b.cursorMu.Unlock()
		backlog = sp.bytesAfter(c)
	}
	return Stats{
		BatchesFlushed:   b.batchesFlushed.Load(),
		SharesWritten:    b.sharesWritten.Load(),
		BatchesSpooled:   b.batchesSpooled.Load(),
		SharesSpooled:    b.sharesSpooled.Load(),
		BatchesReplayed:  b.batchesReplayed.Load(),
		BatchesSkipped:   b.batchesSkipped.Load(),
		BatchesRejected:  b.batchesRejected.Load(),
		FlushErrors:      b.flushErrors.Load(),
		SharesLost:       b.sharesLost.Load(),
		SharesRefused:    b.sharesRefused.Load(),
		QueueLength:      queued,
		LogBacklogBytes:  backlog,
		LastFlushLatency: time.Duration(b.lastFlushNanos.Load()),
		LastSyncLatency:  time.Duration(b.lastSyncNanos.Load()),
		DatabaseUp:       dbUp,
		SpoolUp:          spoolUp,
		Refusing:         refusing,
	}
}

// Run keeps and writes shares until ctx ends. It replays what an earlier
// process left in the spool first. When ctx ends it stops the group commit
// (later shares are kept by their own AddShare call), applies what it can
// of the log within a bound, and returns; the rest waits in the spool for
// the next start.
func (b *Batcher) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("ledger: batcher: Run called more than once")
	}
	if b.opts.SpoolDir != "" {
		sp, err := openSpool(b.opts.SpoolDir)
		if err != nil {
			b.stopIntake()
			return fmt.Errorf("ledger: batcher: %w", err)
		}
		b.spool = sp
		b.spoolStat.Store(sp)
	} else {
		b.log.Warn("no spool dir: shares are acknowledged only once PostgreSQL committed them, and refused while it is away")
	}

	gcStop, gcDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(gcDone)
		b.groupCommits(gcStop)
	}()
	var wDone chan struct{}
	if b.spool != nil {
		wDone = make(chan struct{})
		go func() {
			defer close(wDone)
			b.writer(ctx)
		}()
	}

	<-ctx.Done()
	// From here AddShare keeps its own share; the group commit takes
	// what is already waiting and stops.
	b.stopIntake()
	close(gcStop)
	<-gcDone
	if wDone != nil {
		<-wDone
		b.drainLog(ctx)
		// The next process may take the directory now; a share accepted
		// during this one's last moments still appends (its own segment).
		b.spool.close()
	}
	return nil
}

// stopIntake makes every later AddShare keep its share itself and frees
// those waiting for space.
func (b *Batcher) stopIntake() {
	b.mu.Lock()
	b.late = true
	b.space.Broadcast()
	b.mu.Unlock()
}

// groupCommits keeps shares in groups: everything that arrived while the
// previous group was being made durable is the next group, so one fsync
// (or one commit) serves all the shares that arrive together.
func (b *Batcher) groupCommits(stop <-chan struct{}) {
	for {
		select {
		case <-b.wake:
			b.commitIntake()
		case <-stop:
			b.commitIntake()
			return
		}
	}
}

func (b *Batcher) commitIntake() {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	for {
		b.mu.Lock()
		group := b.intake
		b.intake = nil
		b.space.Broadcast()
		b.mu.Unlock()
		if len(group) == 0 {
			return
		}
		b.keepGroup(group)
	}
}

// keepGroup makes a group durable and then tells every share's waiter.
func (b *Batcher) keepGroup(group []pendingShare) {
	shares := make([]record.Share, len(group))
	for i := range group {
		sanitizeShare(&group[i].s)
		shares[i] = group[i].s
	}
	err := b.keep(shares)
	for _, p := range group {
		if p.done != nil {
			p.done(err)
		}
	}
}

// keep makes shares durable: appended to the spool and fsynced, or, with
// no usable spool, committed to PostgreSQL. Else it refuses them.
func (b *Batcher) keep(shares []record.Share) error {
	if b.spool != nil && b.spoolDue() {
		start := time.Now()
		_, err := b.spool.appendShares(shares)
		if err == nil {
			b.lastSyncNanos.Store(int64(time.Since(start)))
			b.batchesSpooled.Add(1)
			b.sharesSpooled.Add(uint64(len(shares)))
			b.spoolOK()
			return nil
		}
		b.spoolFailed(err)
	}
	if b.dbDue() {
		ctx, cancel := context.WithTimeout(context.Background(), directTimeout)
		err := b.store(ctx, shares, nil)
		cancel()
		if err == nil {
			b.keptAgain()
			return nil
		}
	}
	b.sharesRefused.Add(uint64(len(shares)))
	b.refuse()
	return ErrNotKept
}

// store commits shares to PostgreSQL in one transaction; with adv it also
// moves the spool cursor from adv.from to adv.to in it. It keeps the health
// state and the counters.
func (b *Batcher) store(ctx context.Context, shares []record.Share, adv *advance) error {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	start := time.Now()
	err := b.writeShares(actx, shares, adv)
	cancel()
	took := time.Since(start)
	if b.opts.OnFlush != nil && len(shares) > 0 {
		b.opts.OnFlush(len(shares), took, err)
	}
	if err != nil {
		b.flushErrors.Add(1)
		if !permanent(err) && !errors.Is(err, errCursorMoved) && ctx.Err() == nil {
			b.markDown(err)
		}
		return err
	}
	b.markUp()
	if len(shares) > 0 {
		b.lastFlushNanos.Store(int64(took))
		b.batchesFlushed.Add(1)
		b.sharesWritten.Add(uint64(len(shares)))
	}
	return nil
}

// writer applies the log to PostgreSQL until ctx ends.
func (b *Batcher) writer(ctx context.Context) {
	rd := &walReader{sp: b.spool}
	defer rd.close()
	b.replayLegacy(ctx)
	tick := time.NewTicker(b.opts.FlushInterval)
	defer tick.Stop()
	buf := make([]record.Share, 0, b.opts.MaxBatch)
	for ctx.Err() == nil {
		// Apply while full batches are waiting; a partial one waits for
		// the next tick, so that a steady trickle becomes a few large
		// transactions a second rather than one per group commit.
		if b.applyOnce(ctx, rd, &buf) && len(buf) >= b.opts.MaxBatch {
			continue
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// drainLog applies what it can of the log after Run's context ended,
// within shutdownTimeout, so that a clean stop leaves little to replay.
func (b *Batcher) drainLog(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	rd := &walReader{sp: b.spool}
	defer rd.close()
	buf := make([]record.Share, 0, b.opts.MaxBatch)
	for sctx.Err() == nil && b.applyOnce(sctx, rd, &buf) {
	}
	if left := b.spool.bytesAfter(b.cursor); left > 0 {
		b.log.Info("stopping with shares in the spool not yet in the database; the next start applies them", "bytes", left)
	}
}

// applyOnce applies the next run of records after the cursor. It reports
// whether it made progress (so the caller tries again at once).
func (b *Batcher) applyOnce(ctx context.Context, rd *walReader, buf *[]record.Share) bool {
	if !b.dbDue() {
		return false
	}
	if !b.cursorKnown {
		c, err := b.ledger.spoolCursor(ctx, b.spool.id)
		if err != nil {
			if ctx.Err() == nil {
				b.markDown(err)
			}
			return false
		}
		b.markUp()
		b.setCursor(c)
		b.cursorKnown = true
		b.spool.removeBefore(c)
	}
	limit := b.opts.MaxBatch
	if b.cursor.less(b.isolateUntil) {
		// Records once refused together are retried one by one, so
		// that only the one the database refuses is set aside.
		limit = 1
	}
	shares, next, err := rd.read(b.cursor, limit, (*buf)[:0])
	*buf = shares // the caller looks at how many were read
	if err != nil && len(shares) == 0 {
		if errors.Is(err, errSegmentDamaged) {
			b.skipDamaged(ctx, rd, next, err)
			return true
		}
		b.log.Error("read spool", "err", err)
		return false
	}
	if len(shares) == 0 {
		if next != b.cursor {
			b.setCursor(next) // past the end of a finished segment
			b.spool.removeBefore(next)
		}
		return false
	}
	err = b.store(ctx, shares, &advance{spool: b.spool.id, from: b.cursor, to: next})
	switch {
	case err == nil:
	case errors.Is(err, errCursorMoved):
		// Someone else applied this spool (a restored database, or
		// an operator): read the cursor again and go on from there.
		b.log.Warn("spool cursor in the database moved under this process; reloading it", "err", err)
		b.cursorKnown = false
		return false
	case permanent(err) && limit > 1 && len(shares) > 1:
		b.isolateUntil = next
		return true
	case permanent(err):
		b.setAsideRecords(ctx, shares, next, err)
	default:
		return false
	}
	segChanged := next.seg != b.cursor.seg
	b.setCursor(next)
	if segChanged {
		b.spool.removeBefore(next)
	}
	return true
}

func (b *Batcher) setCursor(c walPos) {
	b.cursor = c
	b.cursorMu.Lock()
	b.statCursor = c
	b.cursorMu.Unlock()
}

// setAsideRecords keeps shares the database refuses whatever the retry (a
// data error, not an outage) out of the way of every share behind them:
// on disk for an operator, and the cursor moved past them.
func (b *Batcher) setAsideRecords(ctx context.Context, shares []record.Share, next walPos, cause error) {
	b.batchesRejected.Add(1)
	bt := batch{ID: newBatchID(time.Now()), Shares: shares}
	path, qerr := b.spool.quarantine(bt)
	if qerr != nil {
		b.sharesLost.Add(uint64(len(shares)))
		b.log.Error("shares refused by the database and could not be set aside", "shares", len(shares), "err", cause, "quarantine_err", qerr)
	} else {
		b.log.Error("shares refused by the database; set aside for inspection", "shares", len(shares), "file", path, "err", cause)
	}
	for ctx.Err() == nil {
		if err := b.store(ctx, nil, &advance{spool: b.spool.id, from: b.cursor, to: next}); err == nil || errors.Is(err, errCursorMoved) {
			return
		}
		backoff.Sleep(ctx, time.Second)
	}
}

// skipDamaged sets a segment with damage in the middle aside (records
// after the damage cannot be found) and moves the cursor to the next one.
func (b *Batcher) skipDamaged(ctx context.Context, rd *walReader, at walPos, cause error) {
	rd.close()
	dst, err := b.spool.setAside(at.seg)
	b.log.Error("spool segment damaged; set aside after applying what preceded the damage",
		"segment", at.seg, "moved_to", dst, "err", cause, "rename_err", err)
	next := walPos{at.seg + 1, 0}
	if seg, ok := b.spool.nextSegment(at.seg); ok {
		next = walPos{seg, 0}
	}
	if err := b.store(ctx, nil, &advance{spool: b.spool.id, from: b.cursor, to: next}); err == nil {
		b.setCursor(next)
	}
}

func (b *Batcher) spoolDue() bool {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	return b.spoolUp || !time.Now().Before(b.spoolNext)
}

func (b *Batcher) spoolOK() {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if !b.spoolUp {
		b.log.Info("spool writable again")
	}
	b.spoolUp, b.spoolNext = true, time.Time{}
	b.spoolRetry.Reset()
	b.keptAgainLocked()
}

func (b *Batcher) spoolFailed(err error) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if b.spoolUp {
		b.log.Error("spool write failed; keeping shares by committing them to the database directly", "dir", b.spool.dir, "err", err)
	}
	b.spoolUp = false
	b.spoolNext = time.Now().Add(b.spoolRetry.Next())
}

// dbDue reports whether a database attempt is worth making now: the
// database was fine at the last attempt, or the backoff after a failure
// is over.
func (b *Batcher) dbDue() bool {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	return b.dbUp || !time.Now().Before(b.dbNext)
}

func (b *Batcher) markUp() {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	if !b.dbUp {
		b.log.Info("database reachable again")
	}
	b.dbUp, b.dbNext = true, time.Time{}
	b.dbRetry.Reset()
}

func (b *Batcher) markDown(err error) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	delay := b.dbRetry.Next()
	if b.dbUp {
		b.log.Warn("database unavailable; retrying with backoff", "err", err, "spooling", b.spool != nil)
	} else {
		b.log.Debug("database still unavailable", "err", err, "backoff", delay)
	}
	b.dbUp = false
	// Jitter keeps the pool nodes from hammering a recovering database in
	// lockstep.
	b.dbNext = time.Now().Add(backoff.Around(delay))
}

func (b *Batcher) refuse() {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	reason := "database unavailable and no spool dir"
	if b.spool != nil {
		reason = "spool unwritable and database unavailable"
	}
	if b.refusing == "" {
		b.log.Error("NOT ACKNOWLEDGING SHARES: nothing can keep them; miners are told to try again (their failover moves them to a backup pool)",
			"reason", reason)
	}
	b.refusing = reason
}

func (b *Batcher) keptAgain() {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	b.keptAgainLocked()
}

func (b *Batcher) keptAgainLocked() {
	if b.refusing != "" {
		b.log.Info("shares are kept again; acknowledging them", "was", b.refusing)
		b.refusing = ""
	}
}

// replayLegacy applies the version-1 segments an older hashforge left
// (one JSON batch per record, each with its id in spool_batches), then
// deletes them.
func (b *Batcher) replayLegacy(ctx context.Context) {
	for _, path := range b.spool.legacySegments() {
		for ctx.Err() == nil && !b.replaySegment(ctx, path) {
			backoff.Sleep(ctx, backoff.Around(b.dbRetry.Min))
		}
	}
}

// errReplayPaused stops reading a segment when the database goes away.
var errReplayPaused = errors.New("replay paused")

// replaySegment applies one version-1 segment and reports whether it is
// done with it (applied and removed, or set aside).
func (b *Batcher) replaySegment(ctx context.Context, path string) bool {
	var n int
	torn, err := readSegment(path, func(bt batch) error {
		for i := range bt.Shares {
			sanitizeShare(&bt.Shares[i])
		}
		for !b.dbDue() {
			if !backoff.Sleep(ctx, 100*time.Millisecond) {
				return errReplayPaused
			}
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		written, err := b.writeBatch(actx, bt)
		cancel()
		switch {
		case err == nil && written:
			b.markUp()
			b.batchesReplayed.Add(1)
			b.batchesFlushed.Add(1)
			b.sharesWritten.Add(uint64(len(bt.Shares)))
		case err == nil:
			b.markUp()
			b.batchesSkipped.Add(1)
		case permanent(err):
			b.batchesRejected.Add(1)
			if _, qerr := b.spool.quarantine(bt); qerr != nil {
				b.sharesLost.Add(uint64(len(bt.Shares)))
			}
			b.log.Error("spooled batch refused by the database; set aside", "batch", bt.ID, "err", err)
		default:
			b.flushErrors.Add(1)
			if ctx.Err() == nil {
				b.markDown(err)
			}
			return errReplayPaused
		}
		n++
		return nil
	})
	switch {
	case errors.Is(err, errReplayPaused):
		return ctx.Err() != nil
	case err != nil:
		// Records after the damage cannot be found; keep the file for an
		// operator instead of deleting shares that may still be in it.
		dst, rerr := markCorrupt(path)
		b.log.Error("spool segment damaged; set aside after replaying what preceded the damage",
			"segment", path, "moved_to", dst, "batches_done", n, "err", err, "rename_err", rerr)
		b.spool.forgetLegacy(path)
		return true
	case torn:
		b.log.Warn("spool segment ends in a torn record (crash during a write); ignored it",
			"segment", path, "batches_done", n)
	}
	// Not fsyncing the directory after the remove is deliberate: if the
	// removal is lost in a crash the segment is replayed again, and every
	// batch in it is skipped by id.
	if err := os.Remove(path); err != nil {
		b.log.Error("remove replayed spool segment", "segment", path, "err", err)
	}
	b.spool.forgetLegacy(path)
	b.log.Info("spool segment replayed", "segment", path, "batches", n)
	return true
}
