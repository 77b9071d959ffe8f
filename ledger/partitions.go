package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/payout"
)

// partitionLockKey serialises partition maintenance and retention of every
// pool node sharing the database (each runs them hourly). Its value is
// arbitrary but must never change.
const partitionLockKey int64 = 0x6866706172747321 // "hfparts!"

// DefaultPartitionsAhead is how many days after today MaintainPartitions
// creates by default: a week of pool downtime or failing maintenance before
// shares start landing in the DEFAULT partition.
const DefaultPartitionsAhead = 7

// MinShareRetention is the shortest retention ApplyRetention accepts: the
// longest chart the API draws from raw shares (7 days) plus the day being
// filled, so no chart of the dashboard ever needs a dropped day.
const MinShareRetention = 8 * 24 * time.Hour

// RollupInterval is the width of a share_rollups bucket.
const RollupInterval = time.Hour

// sharePartition is one partition of shares. A zero From is MINVALUE
// (shares_legacy, the pre-partitioning history); the DEFAULT partition is
// not listed.
type sharePartition struct {
	Name     string
	From, To time.Time
}

var partitionBound = regexp.MustCompile(`^FOR VALUES FROM \((MINVALUE|'[^']+')\) TO \('([^']+)'\)$`)

// boundLayout is how a timestamptz bound prints under TimeZone UTC and
// DateStyle ISO (set by inTx below).
const boundLayout = "2006-01-02 15:04:05-07"

// parsePartitionBound reads pg_get_expr's text of a shares partition
// bound. A zero from is MINVALUE.
func parsePartitionBound(bound string) (from, to time.Time, isDefault bool, err error) {
	if bound == "DEFAULT" {
		return time.Time{}, time.Time{}, true, nil
	}
	m := partitionBound.FindStringSubmatch(bound)
	if m == nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("unexpected bound %q", bound)
	}
	if m[1] != "MINVALUE" {
		if from, err = time.Parse(boundLayout, m[1][1:len(m[1])-1]); err != nil {
			return time.Time{}, time.Time{}, false, fmt.Errorf("bound %q: %w", bound, err)
		}
	}
	if to, err = time.Parse(boundLayout, m[2]); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("bound %q: %w", bound, err)
	}
	if to.IsZero() || (!from.IsZero() && !from.Before(to)) {
		return time.Time{}, time.Time{}, false, fmt.Errorf("bound %q: empty range", bound)
	}
	return from, to, false, nil
}

// listPartitions returns the range partitions of shares, oldest first.
func listPartitions(ctx context.Context, tx pgx.Tx) ([]sharePartition, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'shares'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("list share partitions: %w", err)
	}
	var out []sharePartition
	var name, bound string
	if _, err := pgx.ForEachRow(rows, []any{&name, &bound}, func() error {
		from, to, isDefault, err := parsePartitionBound(bound)
		if err != nil {
			return fmt.Errorf("partition %s: %w", name, err)
		}
		if !isDefault {
			out = append(out, sharePartition{Name: name, From: from, To: to})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list share partitions: %w", err)
	}
	slices.SortFunc(out, func(a, b sharePartition) int { return a.To.Compare(b.To) })
	return out, nil
}

// underPartitionLock runs f in a transaction that holds the partition lock,
// with the session's time zone set to UTC so that bounds, day and hour
// truncation are UTC whatever the database's default.
func (l *Ledger) underPartitionLock(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		return f(tx)
	})
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// MaintainPartitions makes sure shares has a partition for today (UTC, by
// now) and each of the ahead days after it, and empties the DEFAULT
// partition into partitions of the days its rows belong to. It returns
// the partitions it created. Any number of pool nodes may run it at once:
// they take turns on an advisory lock, and each creates only what is
// missing when its turn comes.
//
// A new partition is created as a plain table and then attached: ATTACH
// takes a lock on shares that does not conflict with the batcher's COPY,
// where CREATE TABLE ... PARTITION OF would stall every write until it
// commits. A day can only get a partition once DEFAULT holds none of its
// rows, so those rows move into the new table before the attach, in the
// same transaction.
func (l *Ledger) MaintainPartitions(ctx context.Context, now time.Time, ahead int) (created []string, err error) {
	if ahead < 0 {
		return nil, fmt.Errorf("maintain share partitions: ahead %d must not be negative", ahead)
	}
	err = l.underPartitionLock(ctx, func(tx pgx.Tx) error {
		created = created[:0]
		parts, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		var days []time.Time
		today := utcDay(now)
		for i := 0; i <= ahead; i++ {
			days = append(days, today.AddDate(0, 0, i))
		}
		// DEFAULT is empty unless maintenance fell behind, so this reads
		// next to nothing.
		rows, err := tx.Query(ctx, "SELECT DISTINCT date_trunc('day', time) FROM shares_default")
		if err != nil {
			return fmt.Errorf("days in the default partition: %w", err)
		}
		stray, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return fmt.Errorf("days in the default partition: %w", err)
		}
		for _, d := range stray {
			days = append(days, d.UTC())
		}
		slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
		days = slices.CompactFunc(days, func(a, b time.Time) bool { return a.Equal(b) })
		for _, day := range days {
			end := day.AddDate(0, 0, 1)
			if slices.ContainsFunc(parts, func(p sharePartition) bool {
				return p.From.Before(end) && day.Before(p.To)
			}) {
				continue
			}
			name := "shares_p" + day.Format("20060102")
			from, to := day.Format(time.RFC3339), end.Format(time.RFC3339)
			ident := pgx.Identifier{name}.Sanitize()
			if _, err := tx.Exec(ctx, "CREATE TABLE "+ident+" (LIKE shares INCLUDING DEFAULTS)"); err != nil {
				return fmt.Errorf("create partition %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `
				WITH moved AS (DELETE FROM shares_default WHERE time >= $1 AND time < $2 RETURNING *)
				INSERT INTO `+ident+` SELECT * FROM moved`, day, end); err != nil {
				return fmt.Errorf("move day %s out of the default partition: %w", day.Format(time.DateOnly), err)
			}
			// Bounds are literals: DDL takes no parameters. They are
			// formatted here from time values, never from input.
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE shares ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
				ident, from, to)); err != nil {
				return fmt.Errorf("attach partition %s: %w", name, err)
			}
			created = append(created, name)
			parts = append(parts, sharePartition{Name: name, From: day, To: end})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("maintain share partitions: %w", err)
	}
	return created, nil
}

// RetentionPolicy says how long raw shares are kept and what the payouts
// still need of them.
type RetentionPolicy struct {
	// Keep is how long a share is kept at least (0: forever). A partition
	// goes once all of it is older than Keep, so up to a day more is kept.
	Keep time.Duration
	// Scheme and PPLNSWindow are the payout terms this pool runs, the
	// ones a block found from now on will be credited under.
	Scheme      payout.Scheme
	PPLNSWindow float64
}

// retentionMargin is kept beyond the oldest share a payout is known to
// need: a block a pool node found but has not recorded yet (it is in that
// node's block journal, recorded at its next start) walks back from a
// little before now.
const retentionMargin = 24 * time.Hour

// ApplyRetention rolls up and drops the partitions of shares that are
// older than p.Keep and that no payout can still need, oldest first, and
// returns their names. Each partition is rolled up into share_rollups
// (per worker and hour) and dropped in one transaction, which also moves
// share_retention.rolled_until past it, so a day is counted in the
// rollups exactly once and readers see it in one place or the other.
//
// The shares a payout may still need are those inside the window of every
// block not yet credited (pending or unknown, under its recorded scheme)
// and of the next block the pool finds (under p's terms); see
// oldestNeededShare. Run MaintainPartitions first: a partition is created
// for each day that has rows in DEFAULT, and only then can it be rolled up.
func (l *Ledger) ApplyRetention(ctx context.Context, now time.Time, p RetentionPolicy) (dropped []string, err error) {
	dropped, _, err = l.applyRetention(ctx, now, p)
	return dropped, err
}

// applyRetention is ApplyRetention; held, when not empty, says which
// partition past the retention a payout still needs, and why.
func (l *Ledger) applyRetention(ctx context.Context, now time.Time, p RetentionPolicy) (dropped []string, held string, err error) {
	if p.Keep == 0 {
		return nil, "", nil
	}
	if p.Keep < MinShareRetention {
		return nil, "", fmt.Errorf("share retention %v is shorter than the %v the charts need", p.Keep, MinShareRetention)
	}
	horizon := utcDay(now.Add(-p.Keep))
	for {
		var name string
		err := l.underPartitionLock(ctx, func(tx pgx.Tx) error {
			parts, err := listPartitions(ctx, tx)
			if err != nil {
				return err
			}
			if len(parts) == 0 || parts[0].To.After(horizon) {
				return nil
			}
			// Read after the lock, in this transaction: a block recorded
			// a moment ago counts.
			needed, why, err := oldestNeededShare(ctx, tx, now, p)
			if err != nil {
				return err
			}
			old := parts[0]
			if old.To.After(needed.Add(-retentionMargin)) {
				held = old.Name + ": " + why
				return nil
			}
			ident := pgx.Identifier{old.Name}.Sanitize()
			if _, err := tx.Exec(ctx, `
				INSERT INTO share_rollups AS r (worker_id, bucket_start, shares, difficulty_sum, best_difficulty, blocks)
				SELECT worker_id, date_trunc('hour', time), count(*), sum(difficulty),
				       max(actual_difficulty), count(*) FILTER (WHERE is_block)
				FROM `+ident+`
				GROUP BY 1, 2
				ON CONFLICT (worker_id, bucket_start) DO UPDATE SET
					shares = r.shares + EXCLUDED.shares,
					difficulty_sum = r.difficulty_sum + EXCLUDED.difficulty_sum,
					best_difficulty = GREATEST(r.best_difficulty, EXCLUDED.best_difficulty),
					blocks = r.blocks + EXCLUDED.blocks`); err != nil {
				return fmt.Errorf("roll up %s: %w", old.Name, err)
			}
			// DROP needs shares exclusively for a moment: it waits for the
			// batcher's open COPY, and every new COPY queues behind it.
			// A long reader (a payout's share walk) would stall writes
			// for as long; give up instead and retry at the next run.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
				return fmt.Errorf("drop %s: %w", old.Name, err)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO share_retention AS r (rolled_until) VALUES ($1)
				ON CONFLICT (only_row) DO UPDATE SET rolled_until = GREATEST(r.rolled_until, EXCLUDED.rolled_until)`,
				old.To); err != nil {
				return fmt.Errorf("move the retention horizon: %w", err)
			}
			name = old.Name
			return nil
		})
		if err != nil {
			return dropped, "", fmt.Errorf("share retention: %w", err)
		}
		if name == "" {
			return dropped, held, nil
		}
		dropped = append(dropped, name)
	}
}

// maxRetarget is how much the network difficulty can rise at one
// retarget (consensus: 4x). The next block's PPLNS window is N times the
// difficulty it will be found at, which may be after a retarget.
const maxRetarget = 4

// oldestNeededShare returns the time from which on shares must be kept
// for the payouts: the oldest share inside the window of any block not
// yet credited, or of the next block found at now. The zero time means
// "all of them" (a window reaches back past the oldest share kept, or
// cannot be computed).
//
// PPLNS walks back from the block's end until N = PPLNSWindow x network
// difficulty is reached (the solving share's network difficulty for a
// recorded block, maxRetarget x the newest share's for the next); PROP
// reaches back to the end of the previous accepted block; PPS and SOLO
// need no shares after acceptance.
func oldestNeededShare(ctx context.Context, tx pgx.Tx, now time.Time, p RetentionPolicy) (time.Time, string, error) {
	type end struct {
		what    string
		scheme  payout.Scheme
		at      time.Time
		netDiff float64
		found   time.Time
		id      int64
	}
	rows, err := tx.Query(ctx, `
		SELECT 'uncredited block ' || b.hash, b.id, COALESCE(t.scheme, ''), b.found_at,
		       GREATEST(b.found_at, s.time), COALESCE(s.network_difficulty, 0)
		FROM blocks b
		LEFT JOIN block_terms t ON t.hash = b.hash
		LEFT JOIN LATERAL (
			SELECT max(time) AS time, max(network_difficulty) AS network_difficulty
			FROM shares WHERE is_block AND block_hash = b.hash
		) s ON true
		WHERE b.status IN ('pending', 'unknown') AND b.credited_at IS NULL`)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("uncredited blocks: %w", err)
	}
	var ends []end
	var e end
	var scheme string
	if _, err := pgx.ForEachRow(rows, []any{&e.what, &e.id, &scheme, &e.found, &e.at, &e.netDiff}, func() error {
		e.scheme = payout.Scheme(scheme)
		if e.scheme == "" {
			e.scheme = p.Scheme
		}
		ends = append(ends, e)
		return nil
	}); err != nil {
		return time.Time{}, "", fmt.Errorf("uncredited blocks: %w", err)
	}
	next := end{what: "the next block", scheme: p.Scheme, at: now, found: now}
	if p.Scheme == payout.PPLNS {
		err := tx.QueryRow(ctx, "SELECT network_difficulty FROM shares ORDER BY time DESC LIMIT 1").Scan(&next.netDiff)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return time.Time{}, "", fmt.Errorf("newest network difficulty: %w", err)
		}
		next.netDiff *= maxRetarget
	}
	ends = append(ends, next)

	oldest := now
	var whyOldest string
	for _, e := range ends {
		why := fmt.Sprintf("%s (%s)", e.what, e.scheme)
		var from time.Time
		switch e.scheme {
		case payout.PPS, payout.SOLO:
			continue
		case payout.PPLNS:
			limit := p.PPLNSWindow * e.netDiff
			if !(limit > 0) {
				return time.Time{}, why + ": network difficulty unknown", nil
			}
			// The running sum stops the scan at the share that fills
			// the window: it reads what the payout itself will read.
			err := tx.QueryRow(ctx, `
				SELECT time FROM (
					SELECT time, sum(difficulty) OVER (ORDER BY time DESC ROWS UNBOUNDED PRECEDING) AS acc
					FROM shares WHERE time <= $1 AND difficulty > 0
				) w WHERE acc >= $2 LIMIT 1`, e.at, limit).Scan(&from)
			if errors.Is(err, pgx.ErrNoRows) {
				return time.Time{}, why + ": its window reaches past the oldest share", nil
			}
			if err != nil {
				return time.Time{}, "", fmt.Errorf("PPLNS window: %w", err)
			}
		case payout.PROP:
			// payout.Store.PreviousBlock: the round starts at the end of
			// the accepted block found before this one.
			args := []any{e.found, e.id}
			err := tx.QueryRow(ctx, `
				SELECT GREATEST(b.found_at,
				       (SELECT max(s.time) FROM shares s WHERE s.is_block AND s.block_hash = b.hash))
				FROM blocks b
				WHERE b.accepted AND b.id <> $2 AND (b.found_at, b.id) < ($1, $2)
				ORDER BY b.found_at DESC, b.id DESC LIMIT 1`, args...).Scan(&from)
			if errors.Is(err, pgx.ErrNoRows) {
				return time.Time{}, why + ": no block before it, the round is every share", nil
			}
			if err != nil {
				return time.Time{}, "", fmt.Errorf("PROP round start: %w", err)
			}
		default:
			return time.Time{}, "", fmt.Errorf("payout scheme %q unknown", e.scheme)
		}
		if from.Before(oldest) {
			oldest = from
			why = fmt.Sprintf("%s: its window starts at %s", why, from.UTC().Format(time.RFC3339))
			whyOldest = why
		}
	}
	return oldest, whyOldest, nil
}

// PartitionMaintenance configures RunPartitionMaintenance.
type PartitionMaintenance struct {
	Ahead     int             // days of partitions kept ahead of today
	Retention RetentionPolicy // Keep 0: shares are kept forever
	Interval  time.Duration   // between runs (default an hour)
	Logger    *slog.Logger
	// Ran, when set, is called after each run (tests wait on it).
	Ran func(created, dropped []string, err error)
}

// RunPartitionMaintenance runs MaintainPartitions and then ApplyRetention
// at once and on every interval until ctx ends. A failed run is logged and
// retried at the next: shares keep being stored meanwhile (in DEFAULT, or
// in partitions that should have gone), so nothing is lost by waiting.
func (l *Ledger) RunPartitionMaintenance(ctx context.Context, m PartitionMaintenance) {
	if m.Interval <= 0 {
		m.Interval = time.Hour
	}
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		created, err := l.MaintainPartitions(ctx, now, m.Ahead)
		var dropped []string
		var held string
		if err == nil {
			dropped, held, err = l.applyRetention(ctx, now, m.Retention)
		}
		if held != "" && err == nil {
			// Not an error: storage grows past the retention until the
			// payout is done with the shares (docs/scaling.md).
			log.Info("share partitions past retention kept: a payout still needs them", "oldest", held)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("share partition maintenance failed; retrying at the next run", "err", err, "next", m.Interval)
		case len(created) > 0 || len(dropped) > 0:
			log.Info("share partitions maintained", "created", created, "rolled_up_and_dropped", dropped)
		}
		if m.Ran != nil {
			m.Ran(created, dropped, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
