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
	"network_difficulty",
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

// writeBatch commits b to the shares table unless a batch with its id was
// committed before. It reports whether it wrote the batch.
//
// The batch id row, the worker rows and the shares go in one transaction:
// either all of it is visible or none, so a retry after any failure,
// including an ambiguous COMMIT, is safe. What the transaction teaches the
// worker cache enters it only after COMMIT: a rolled-back insert must not
// leave a dangling worker id behind.
func (b *Batcher) writeBatch(ctx context.Context, bt batch) (written bool, err error) {
	tx, err := b.ledger.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin share batch %s: %w", bt.ID, err)
	}
	defer func() {
		if !written {
			// Not ctx: it may be what just expired. Bounded, because a
			// dead peer would otherwise hold the writer here.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx)
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

	spans := make(map[workerKey]seenSpan)
	for _, s := range bt.Shares {
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
		return false, fmt.Errorf("resolve workers of batch %s: %w", bt.ID, err)
	}

	rows := make([][]any, len(bt.Shares))
	for i, s := range bt.Shares {
		rows[i] = []any{
			s.Time, ids[workerKey{s.Address, s.Worker}], s.JobID, s.Difficulty, s.ActualDiff,
			s.Height, s.IsBlock, nullIfEmpty(s.BlockHash), nullIfEmpty(s.RemoteAddr), nullIfEmpty(s.ExtraNonce1),
			s.NetworkDifficulty,
		}
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"shares"}, shareColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return false, fmt.Errorf("copy share batch %s: %w", bt.ID, err)
	}
	if n != int64(len(rows)) {
		return false, fmt.Errorf("copy share batch %s: wrote %d of %d rows", bt.ID, n, len(rows))
	}

	if b.opts.OnBatch != nil {
		if err := b.opts.OnBatch(ctx, tx, bt.ID.String(), bt.Shares); err != nil {
			return false, fmt.Errorf("batch hook for %s: %w", bt.ID, err)
		}
	}

	touched, err := b.touchWorkers(ctx, tx, spans)
	if err != nil {
		return false, fmt.Errorf("update last_seen for batch %s: %w", bt.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit share batch %s: %w", bt.ID, err)
	}

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
	return true, nil
}

// resolveWorkers maps every worker of the batch to its id, inserting the
// ones this process has not seen yet. learnt is what the cache should
// hold for them once the transaction commits.
func (b *Batcher) resolveWorkers(ctx context.Context, tx pgx.Tx, spans map[workerKey]seenSpan) (ids map[workerKey]int64, learnt map[workerKey]cachedWorker, err error) {
	ids = make(map[workerKey]int64, len(spans))
	var keys []workerKey
	for k := range spans {
		if w, ok := b.workers[k]; ok {
			ids[k] = w.id
		} else {
			keys = append(keys, k)
		}
	}
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
	for k, sp := range spans {
		if w, ok := b.workers[k]; ok && sp.last.Sub(w.lastSeen) >= lastSeenResolution {
			due = append(due, touch{k, w.id, sp.last})
		}
	}
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

// permanent reports whether err is the database refusing the data itself,
// which no retry will change, as opposed to the database being away.
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
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
