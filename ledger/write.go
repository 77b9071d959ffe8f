package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hashforge/hashforge/record"
)

var shareColumns = []string{
	"time", "worker_id", "job_id", "difficulty", "actual_difficulty",
	"height", "is_block", "block_hash", "remote_addr", "extranonce1",
	"network_difficulty", "node_id",
}

type workerKey struct{ address, name string }

// maxCachedWorkers bounds the worker id cache; past it the cache starts
// over, which costs one upsert per active worker and nothing else.
const maxCachedWorkers = 1 << 20

// sanitizeShare makes a share storable. The strings come from miners, and
// PostgreSQL rejects invalid UTF-8 and NUL bytes in text: one such share
// would make its whole batch fail forever. Non-finite or negative
// difficulties would poison every sum they enter (and cannot be spooled as
// JSON), so they become 0, a share that weighs nothing.
//
// Strings are also capped at maxTextLen bytes: the (address, name) unique
// index refuses entries over ~2.7 kB, and a permanent refusal of that kind
// would hold up every batch behind it. Real values are far shorter (a
// bech32 address is at most 90 characters), so only garbage is cut.
func sanitizeShare(s *record.Share) {
	for _, p := range []*string{&s.Address, &s.Worker, &s.JobID, &s.BlockHash, &s.RemoteAddr, &s.ExtraNonce1} {
		*p = cleanText(*p)
	}
	s.Difficulty = cleanDifficulty(s.Difficulty)
	s.ActualDiff = cleanDifficulty(s.ActualDiff)
	s.NetworkDifficulty = cleanDifficulty(s.NetworkDifficulty)
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	// PostgreSQL keeps microseconds; truncating here makes the spooled copy
	// of a share identical to the stored one (and drops the monotonic
	// reading, which means nothing outside this process).
	s.Time = s.Time.Truncate(time.Microsecond)
}

const maxTextLen = 256

func cleanText(s string) string {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	}
	if len(s) > maxTextLen {
		cut := maxTextLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func cleanDifficulty(d float64) float64 {
	if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
		return 0
	}
	return d
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// lastSeenResolution is how stale workers.last_seen may get. Moving it on
// every batch would add an UPDATE of every active worker row to every
// batch, about halving COPY throughput; live per-worker state comes from
// the pool itself, the table only needs "seen recently" and history.
const lastSeenResolution = 30 * time.Second

// cachedWorker is what the Batcher remembers of a worker row.
type cachedWorker struct {
	id       int64
	lastSeen time.Time // the last_seen this process last committed
}

// seenSpan is the first and last share time of one worker in a batch.
type seenSpan struct{ first, last time.Time }

// advance is the spool cursor move a transaction makes with its rows.
type advance struct {
	spool    string
	from, to walPos
}

// errCursorMoved is a transaction finding the spool cursor somewhere else
// than the writer thought: it applied nothing.
var errCursorMoved = errors.New("spool cursor moved")

// spoolCursor reads where the spool named id has been applied up to; a
// spool never applied starts at the beginning.
func (l *Ledger) spoolCursor(ctx context.Context, id string) (walPos, error) {
	var seg, pos int64
	err := l.pool.QueryRow(ctx, "SELECT segment, pos FROM spool_cursors WHERE spool_id = $1", id).Scan(&seg, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return walPos{}, nil
	}
	if err != nil {
		return walPos{}, fmt.Errorf("read spool cursor: %w", err)
	}
	return walPos{uint64(seg), pos}, nil
}

// writeShares commits shares in one transaction, and with adv moves the
// spool cursor in the same transaction, so that the rows and "applied up
// to here" are one fact: after a crash at any point the log is replayed
// from exactly after the last committed rows. What the transaction teaches
// the worker cache enters it only after COMMIT.
func (b *Batcher) writeShares(ctx context.Context, shares []record.Share, adv *advance) (err error) {
	tx, err := b.ledger.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin share batch: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, tx)
		}
	}()
	if adv != nil {
		// The row lock serialises this spool's appliers; a cursor other
		// than adv.from means these records are not the next to apply.
		var seg, pos int64
		err := tx.QueryRow(ctx, "SELECT segment, pos FROM spool_cursors WHERE spool_id = $1 FOR UPDATE", adv.spool).Scan(&seg, &pos)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			seg, pos = 0, 0
		case err != nil:
			return fmt.Errorf("lock spool cursor: %w", err)
		}
		if (walPos{uint64(seg), pos}) != adv.from {
			return fmt.Errorf("%w: database has %d:%d, writer at %d:%d", errCursorMoved, seg, pos, adv.from.seg, adv.from.off)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO spool_cursors (spool_id, segment, pos, updated_at) VALUES ($1, $2, $3, now())
			ON CONFLICT (spool_id) DO UPDATE SET segment = EXCLUDED.segment, pos = EXCLUDED.pos, updated_at = now()`,
			adv.spool, int64(adv.to.seg), adv.to.off); err != nil {
			return fmt.Errorf("move spool cursor: %w", err)
		}
	}
	var apply func()
	if len(shares) > 0 {
		// A row per transaction in spool_batches keeps ShareCount a sum
		// over few rows, and names the batch PPS credits point at.
		id := newBatchID(time.Now()).String()
		if _, err := tx.Exec(ctx, "INSERT INTO spool_batches (batch_id, share_count) VALUES ($1, $2)", id, len(shares)); err != nil {
			return fmt.Errorf("record share batch: %w", err)
		}
		if apply, err = b.insertShares(ctx, tx, id, shares); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit share batch: %w", err)
	}
	committed = true
	if apply != nil {
		apply()
	}
	return nil
}

func rollback(ctx context.Context, tx pgx.Tx) {
	// Not ctx: it may be what just expired. Bounded, because a dead peer
	// would otherwise hold the writer here.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// writeBatch commits a version-1 spooled batch unless a batch with its id
// was committed before (spool_batches). It reports whether it wrote it.
func (b *Batcher) writeBatch(ctx context.Context, bt batch) (written bool, err error) {
	tx, err := b.ledger.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin share batch %s: %w", bt.ID, err)
	}
	defer func() {
		if !written {
			rollback(ctx, tx)
		}
	}()
	tag, err := tx.Exec(ctx,
		"INSERT INTO spool_batches (batch_id, share_count) VALUES ($1, $2) ON CONFLICT (batch_id) DO NOTHING",
		bt.ID.String(), len(bt.Shares))
	if err != nil {
		return false, fmt.Errorf("claim share batch %s: %w", bt.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	apply, err := b.insertShares(ctx, tx, bt.ID.String(), bt.Shares)
	if err != nil {
		return false, fmt.Errorf("share batch %s: %w", bt.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit share batch %s: %w", bt.ID, err)
	}
	written = true
	apply()
	return true, nil
}

// insertShares writes shares, their workers and the OnBatch hook's rows in
// tx. apply teaches the worker cache what the transaction did; call it
// only after COMMIT, so that a rolled-back insert leaves no dangling
// worker id behind.
func (b *Batcher) insertShares(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) (apply func(), err error) {
	spans := make(map[workerKey]seenSpan)
	for _, s := range shares {
		k := workerKey{s.Address, s.Worker}
		sp, ok := spans[k]
		if !ok {
			sp = seenSpan{s.Time, s.Time}
		}
		if s.Time.Before(sp.first) {
			sp.first = s.Time
		}
		if s.Time.After(sp.last) {
			sp.last = s.Time
		}
		spans[k] = sp
	}

	ids, learnt, err := b.resolveWorkers(ctx, tx, spans)
	if err != nil {
		return nil, fmt.Errorf("resolve workers: %w", err)
	}

	rows := make([][]any, len(shares))
	for i, s := range shares {
		rows[i] = []any{
			s.Time, ids[workerKey{s.Address, s.Worker}], s.JobID, s.Difficulty, s.ActualDiff,
			s.Height, s.IsBlock, nullIfEmpty(s.BlockHash), nullIfEmpty(s.RemoteAddr), nullIfEmpty(s.ExtraNonce1),
			s.NetworkDifficulty, b.opts.NodeID,
		}
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"shares"}, shareColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return nil, fmt.Errorf("copy shares: %w", err)
	}
	if n != int64(len(rows)) {
		return nil, fmt.Errorf("copy shares: wrote %d of %d rows", n, len(rows))
	}

	if b.opts.OnBatch != nil {
		if err := b.opts.OnBatch(ctx, tx, batchID, shares); err != nil {
			return nil, fmt.Errorf("batch hook: %w", err)
		}
	}

	touched, err := b.touchWorkers(ctx, tx, spans)
	if err != nil {
		return nil, fmt.Errorf("update last_seen: %w", err)
	}
	return func() {
		b.wmu.Lock()
		defer b.wmu.Unlock()
		if len(b.workers)+len(learnt) > maxCachedWorkers {
			clear(b.workers)
		}
		for k, w := range learnt {
			b.workers[k] = w
		}
		for k, t := range touched {
			if w, ok := b.workers[k]; ok {
				w.lastSeen = t
				b.workers[k] = w
			}
		}
	}, nil
}

// resolveWorkers maps every worker of the batch to its id, inserting the
// ones this process has not seen yet. learnt is what the cache should
// hold for them once the transaction commits.
func (b *Batcher) resolveWorkers(ctx context.Context, tx pgx.Tx, spans map[workerKey]seenSpan) (ids map[workerKey]int64, learnt map[workerKey]cachedWorker, err error) {
	ids = make(map[workerKey]int64, len(spans))
	var keys []workerKey
	b.wmu.Lock()
	for k := range spans {
		if w, ok := b.workers[k]; ok {
			ids[k] = w.id
		} else {
			keys = append(keys, k)
		}
	}
	b.wmu.Unlock()
	if len(keys) == 0 {
		return ids, nil, nil
	}

	// Sorted, so that two pool nodes inserting overlapping workers lock the
	// unique index entries in the same order and cannot deadlock.
	slices.SortFunc(keys, func(x, y workerKey) int {
		return cmp.Or(cmp.Compare(x.address, y.address), cmp.Compare(x.name, y.name))
	})
	addrs := make([]string, len(keys))
	names := make([]string, len(keys))
	firsts := make([]time.Time, len(keys))
	lasts := make([]time.Time, len(keys))
	for i, k := range keys {
		addrs[i], names[i], firsts[i], lasts[i] = k.address, k.name, spans[k].first, spans[k].last
	}
	// DO UPDATE rather than DO NOTHING: RETURNING yields only rows the
	// statement touched, and a worker another node (or an earlier run of
	// this one) inserted still needs its id here.
	rows, err := tx.Query(ctx, `
		INSERT INTO workers (address, name, first_seen, last_seen)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
		ON CONFLICT (address, name) DO UPDATE
		SET first_seen = LEAST(workers.first_seen, EXCLUDED.first_seen),
		    last_seen  = GREATEST(workers.last_seen, EXCLUDED.last_seen)
		RETURNING id, address, name`,
		addrs, names, firsts, lasts)
	if err != nil {
		return nil, nil, fmt.Errorf("upsert workers: %w", err)
	}
	learnt = make(map[workerKey]cachedWorker, len(keys))
	var id int64
	var k workerKey
	if _, err := pgx.ForEachRow(rows, []any{&id, &k.address, &k.name}, func() error {
		learnt[k] = cachedWorker{id: id, lastSeen: spans[k].last}
		ids[k] = id
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("upsert workers: %w", err)
	}
	if len(learnt) != len(keys) {
		return nil, nil, fmt.Errorf("upsert workers: got %d ids for %d workers", len(learnt), len(keys))
	}
	return ids, learnt, nil
}

// touchWorkers moves last_seen forward for the cached workers of the batch
// whose stored value is more than lastSeenResolution behind (new workers
// got theirs from the upsert). It returns the times it wrote.
func (b *Batcher) touchWorkers(ctx context.Context, tx pgx.Tx, spans map[workerKey]seenSpan) (map[workerKey]time.Time, error) {
	type touch struct {
		k    workerKey
		id   int64
		last time.Time
	}
	var due []touch
	b.wmu.Lock()
	for k, sp := range spans {
		if w, ok := b.workers[k]; ok && sp.last.Sub(w.lastSeen) >= lastSeenResolution {
			due = append(due, touch{k, w.id, sp.last})
		}
	}
	b.wmu.Unlock()
	if len(due) == 0 {
		return nil, nil
	}
	// Same row lock order on every node.
	slices.SortFunc(due, func(x, y touch) int { return cmp.Compare(x.id, y.id) })
	wids := make([]int64, len(due))
	times := make([]time.Time, len(due))
	touched := make(map[workerKey]time.Time, len(due))
	for i, d := range due {
		wids[i], times[i], touched[d.k] = d.id, d.last, d.last
	}
	_, err := tx.Exec(ctx, `
		UPDATE workers w SET last_seen = v.last_seen
		FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, last_seen)
		WHERE w.id = v.id AND w.last_seen < v.last_seen`,
		wids, times)
	if err != nil {
		return nil, err
	}
	return touched, nil
}

// racedAttach reports a row refused by a partition's constraint: no share
// can belong nowhere (the DEFAULT partition takes any time), so this is a
// COPY that routed a row to DEFAULT while partition maintenance attached
// the partition of its day; tried again, the row goes to that partition.
// The routine names it whatever the server's language.
func racedAttach(e *pgconn.PgError) bool {
	return e.Code == "23514" && (e.Routine == "ExecPartitionCheckEmitError" || strings.Contains(e.Message, "partition constraint"))
}

// permanent reports whether err is the database refusing the data itself,
// which no retry will change, as opposed to the database being away.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	if racedAttach(pgErr) {
		return false
	}
	switch pgErr.SQLState()[:2] {
	// Not class 42 (undefined table, permission denied): those are fixed
	// by running migrations or a GRANT, and the batch must wait for it.
	case "22", // data exception
		"23", // integrity constraint violation
		"54": // program limit exceeded (e.g. an index entry too large)
		return true
	}
	return false
}
