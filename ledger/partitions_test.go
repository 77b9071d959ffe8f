package ledger

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

// daysOfShares makes, for each day from first for days days, one share an
// hour for each of three workers of two addresses. Difficulties are small
// integers, so every sum is exact in float64 whatever the order of
// addition.
func daysOfShares(first time.Time, days int, netDiff float64) []record.Share {
	var out []record.Share
	for h := range days * 24 {
		for w := range 3 {
			out = append(out, record.Share{
				Time:              first.Add(time.Duration(h)*time.Hour + time.Duration(w+1)*time.Minute),
				Address:           fmt.Sprintf("bcrt1qpart%d", w%2),
				Worker:            fmt.Sprintf("rig%d", w),
				JobID:             fmt.Sprintf("j%d", h),
				Difficulty:        float64(1 + (h+w)%5),
				ActualDiff:        float64(10 + h%7),
				Height:            100,
				NetworkDifficulty: netDiff,
			})
		}
	}
	return out
}

type workerSums struct {
	n   int64
	sum float64
	max float64
}

func sharesByWorker(t testing.TB, l *Ledger) map[int64]workerSums {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t),
		"SELECT worker_id, count(*), sum(difficulty), max(actual_difficulty) FROM shares GROUP BY worker_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]workerSums{}
	for rows.Next() {
		var id int64
		var s workerSums
		if err := rows.Scan(&id, &s.n, &s.sum, &s.max); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func partitionNames(t testing.TB, l *Ledger) []string {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t), `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'shares'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func explain(t testing.TB, l *Ledger, q string, args ...any) string {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t), "EXPLAIN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMigration0008PartitionsExistingShares(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	if _, err := migrate(ctx, l.Pool(), migrationsBefore(t, "0008")); err != nil {
		t.Fatal(err)
	}
	// Today's code writes the node id column a later migration adds.
	if _, err := l.Pool().Exec(ctx, `ALTER TABLE shares ADD COLUMN node_id smallint`); err != nil {
		t.Fatal(err)
	}
	// Five days of history up to yesterday, and a block share in it.
	today := utcDay(time.Now())
	shares := daysOfShares(today.AddDate(0, 0, -5), 5, 1)
	shares[10].IsBlock, shares[10].BlockHash = true, strings.Repeat("ab", 32)
	writeShares(t, l, shares)
	before := sharesByWorker(t, l)
	var total int64
	for _, s := range before {
		total += s.n
	}
	if total != int64(len(shares)) || len(before) != 3 {
		t.Fatalf("before the migration: %d shares of %d workers, want %d of 3", total, len(before), len(shares))
	}
	// Back to the schema 0008 found (the column comes with 0009).
	if _, err := l.Pool().Exec(ctx, `ALTER TABLE shares DROP COLUMN node_id`); err != nil {
		t.Fatal(err)
	}

	applied, err := l.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Contains(applied, "0008_shares_partitioned") {
		t.Fatalf("applied %v, want 0008", applied)
	}
	if after := sharesByWorker(t, l); !mapsEqual(after, before) {
		t.Fatalf("per worker after 0008: %v, before %v", after, before)
	}
	var kind string
	if err := l.Pool().QueryRow(ctx, "SELECT relkind::text FROM pg_class WHERE oid = 'shares'::regclass").Scan(&kind); err != nil || kind != "p" {
		t.Fatalf("shares relkind %q (%v), want p (partitioned)", kind, err)
	}
	if got := partitionNames(t, l); !slices.Equal(got, []string{"shares_default", "shares_legacy"}) {
		t.Fatalf("partitions %v, want the legacy and default ones", got)
	}
	// The old table's indexes were adopted by the parent's, not rebuilt.
	for parent, child := range map[string]string{
		"shares_time_idx":        "shares_legacy_time_idx",
		"shares_worker_time_idx": "shares_legacy_worker_time_idx",
		"shares_block_hash_idx":  "shares_legacy_block_hash_idx",
	} {
		var attached bool
		err := l.Pool().QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = $1::regclass AND inhrelid = $2::regclass)`,
			parent, child).Scan(&attached)
		if err != nil || !attached {
			t.Errorf("index %s is not attached to %s (%v)", child, parent, err)
		}
	}
	var blockTime time.Time
	if err := l.Pool().QueryRow(ctx, "SELECT time FROM shares WHERE is_block AND block_hash = $1",
		shares[10].BlockHash).Scan(&blockTime); err != nil || !blockTime.Equal(shares[10].Time) {
		t.Errorf("block share: %v %v", blockTime, err)
	}

	// shares_legacy reaches to the end of the (UTC) day the migration
	// ran; the clock below is that day's, read from the database, so a
	// run across midnight expects the same.
	var parts []sharePartition
	if err := l.underPartitionLock(ctx, func(tx pgx.Tx) (err error) {
		parts, err = listPartitions(ctx, tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || !parts[0].From.IsZero() || !parts[0].To.Equal(utcDay(parts[0].To)) || !parts[0].To.After(shares[len(shares)-1].Time) {
		t.Fatalf("partitions %+v: want shares_legacy from MINVALUE to a UTC midnight after the newest share", parts)
	}
	tomorrow := parts[0].To

	// New days get their own partitions, and a range query on one of
	// them reads only it.
	created, err := l.MaintainPartitions(ctx, tomorrow.Add(-time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	// The migration's day is inside shares_legacy, so only the days
	// after it are new.
	want := []string{"shares_p" + tomorrow.Format("20060102"), "shares_p" + tomorrow.AddDate(0, 0, 1).Format("20060102")}
	if !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	plan := explain(t, l, "SELECT count(*) FROM shares WHERE time >= $1 AND time < $2", tomorrow.Add(time.Hour), tomorrow.Add(2*time.Hour))
	if !strings.Contains(plan, want[0]) || strings.Contains(plan, "shares_legacy") || strings.Contains(plan, want[1]) || strings.Contains(plan, "shares_default") {
		t.Errorf("a range inside %s is not pruned to it:\n%s", want[0], plan)
	}
	plan = explain(t, l, "SELECT sum(difficulty) FROM shares WHERE worker_id = 1 AND time >= $1 AND time < $2", today.AddDate(0, 0, -3), today.AddDate(0, 0, -2))
	if !strings.Contains(plan, "shares_legacy") || strings.Contains(plan, "shares_p") || !strings.Contains(plan, "shares_legacy_worker_time_idx") {
		t.Errorf("a per-worker range in the history reads more than shares_legacy's index:\n%s", plan)
	}

	// The batcher writes into the new layout.
	next := []record.Share{{Time: tomorrow.Add(time.Minute), Address: "bcrt1qpart0", Worker: "rig0", JobID: "n", Difficulty: 2, Height: 101}}
	writeShares(t, l, next)
	var where string
	if err := l.Pool().QueryRow(ctx, "SELECT tableoid::regclass::text FROM shares WHERE job_id = 'n'").Scan(&where); err != nil || where != want[0] {
		t.Errorf("a share of tomorrow is in %q (%v), want %s", where, err, want[0])
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestMigration0008OnEmptyDatabase(t *testing.T) {
	l, _ := newTestLedger(t)
	if got := partitionNames(t, l); !slices.Equal(got, []string{"shares_default"}) {
		t.Fatalf("partitions of a fresh install %v, want only the default one", got)
	}
	ctx := testCtx(t)
	now := time.Now()
	created, err := l.MaintainPartitions(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shares_p" + utcDay(now).Format("20060102")}; !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
}

func TestMaintainPartitionsIsIdempotentAndConcurrent(t *testing.T) {
	l, url := newTestLedger(t)
	ctx := testCtx(t)
	// A second pool node: its own connection pool on the same database.
	other, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)

	now := time.Date(2026, 6, 30, 23, 59, 0, 0, time.UTC)
	const ahead = 3
	var (
		mu      sync.Mutex
		created []string
		wg      sync.WaitGroup
	)
	for i := range 8 {
		node := l
		if i%2 == 1 {
			node = other
		}
		wg.Go(func() {
			c, err := node.MaintainPartitions(ctx, now, ahead)
			if err != nil {
				t.Errorf("MaintainPartitions: %v", err)
			}
			mu.Lock()
			created = append(created, c...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(created)
	want := []string{"shares_p20260630", "shares_p20260701", "shares_p20260702", "shares_p20260703"}
	if !slices.Equal(created, want) {
		t.Fatalf("8 concurrent runs created %v, want each of %v once", created, want)
	}
	if again, err := l.MaintainPartitions(ctx, now, ahead); err != nil || len(again) != 0 {
		t.Fatalf("a run after them created %v (%v), want nothing", again, err)
	}
	if got := partitionNames(t, l); !slices.Equal(got, append([]string{"shares_default"}, want...)) {
		t.Fatalf("partitions %v", got)
	}
	// Bounds are UTC midnights.
	writeShares(t, l, []record.Share{
		{Time: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Address: "a", JobID: "edge-lo", Difficulty: 1},
		{Time: time.Date(2026, 7, 1, 23, 59, 59, 999999000, time.UTC), Address: "a", JobID: "edge-hi", Difficulty: 1},
		{Time: time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC), Address: "a", JobID: "edge-next", Difficulty: 1},
	})
	for job, want := range map[string]string{"edge-lo": "shares_p20260701", "edge-hi": "shares_p20260701", "edge-next": "shares_p20260702"} {
		var where string
		if err := l.Pool().QueryRow(ctx, "SELECT tableoid::regclass::text FROM shares WHERE job_id = $1", job).Scan(&where); err != nil || where != want {
			t.Errorf("%s is in %q (%v), want %s", job, where, err, want)
		}
	}
}

func TestShareWithoutPartitionLandsInDefaultAndMovesOut(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if _, err := l.MaintainPartitions(ctx, now, 1); err != nil {
		t.Fatal(err)
	}
	// Maintenance is late: shares ten days out and one long gone. The
	// COPY takes them anyway.
	late := []record.Share{
		{Time: now.AddDate(0, 0, 10), Address: "a", Worker: "w", JobID: "late-1", Difficulty: 3},
		{Time: now.AddDate(0, 0, 10).Add(time.Hour), Address: "a", Worker: "w", JobID: "late-2", Difficulty: 4},
		{Time: now.AddDate(0, 0, -40), Address: "a", Worker: "w", JobID: "old", Difficulty: 5},
		{Time: now, Address: "a", Worker: "w", JobID: "today", Difficulty: 6},
	}
	writeShares(t, l, late)
	where := func(job string) string {
		t.Helper()
		var p string
		if err := l.Pool().QueryRow(ctx, "SELECT tableoid::regclass::text FROM shares WHERE job_id = $1", job).Scan(&p); err != nil {
			t.Fatalf("%s: %v", job, err)
		}
		return p
	}
	for _, j := range []string{"late-1", "late-2", "old"} {
		if p := where(j); p != "shares_default" {
			t.Fatalf("%s in %s, want shares_default", j, p)
		}
	}
	before := sharesByWorker(t, l)

	created, err := l.MaintainPartitions(ctx, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shares_p20260422", "shares_p20260611"}; !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v (the days found in DEFAULT)", created, want)
	}
	for job, want := range map[string]string{"late-1": "shares_p20260611", "late-2": "shares_p20260611", "old": "shares_p20260422", "today": "shares_p20260601"} {
		if p := where(job); p != want {
			t.Errorf("%s in %s, want %s", job, p, want)
		}
	}
	var n int
	if err := l.Pool().QueryRow(ctx, "SELECT count(*) FROM shares_default").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows left in shares_default (%v)", n, err)
	}
	if after := sharesByWorker(t, l); !mapsEqual(after, before) {
		t.Errorf("per worker after the move %v, before %v", after, before)
	}
}

type rollupRow struct {
	worker int64
	hour   time.Time
	n      int64
	sum    float64
	best   float64
	blocks int
}

func hourlyFromShares(t testing.TB, l *Ledger, before time.Time) []rollupRow {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t), `
		SELECT worker_id, date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS h, count(*), sum(difficulty),
		       max(actual_difficulty), count(*) FILTER (WHERE is_block)::int
		FROM shares WHERE time < $1 GROUP BY 1, 2 ORDER BY 1, 2`, before)
	if err != nil {
		t.Fatal(err)
	}
	return scanRollups(t, rows)
}

func rollups(t testing.TB, l *Ledger) []rollupRow {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t), `
		SELECT worker_id, bucket_start, shares, difficulty_sum, best_difficulty, blocks
		FROM share_rollups ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	return scanRollups(t, rows)
}

func scanRollups(t testing.TB, rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) []rollupRow {
	t.Helper()
	defer rows.Close()
	var out []rollupRow
	for rows.Next() {
		var r rollupRow
		if err := rows.Scan(&r.worker, &r.hour, &r.n, &r.sum, &r.best, &r.blocks); err != nil {
			t.Fatal(err)
		}
		r.hour = r.hour.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRetentionRollsUpOldDaysAndChartsStayTheSame(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	first := utcDay(now).AddDate(0, 0, -12)
	shares := daysOfShares(first, 13, 1)
	shares[30].IsBlock, shares[30].BlockHash = true, strings.Repeat("cd", 32)
	// Shares land in DEFAULT (no partition for the past yet) and
	// maintenance gives each day its own partition.
	writeShares(t, l, shares)
	if _, err := l.MaintainPartitions(ctx, now, 1); err != nil {
		t.Fatal(err)
	}

	// 12 days of hourly points per worker, reaching into the days that
	// retention drops, and a finer pool chart over a dropped day.
	const window = 12 * 24 * time.Hour
	wantWorkers := map[string][]WorkerSeries{}
	for _, a := range []string{"bcrt1qpart0", "bcrt1qpart1"} {
		ws, err := l.workerHashrateSeries(ctx, now, a, window, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		wantWorkers[a] = ws
	}
	wantPool, err := l.poolHashrateSeries(ctx, now, window, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	horizon := utcDay(now.Add(-MinShareRetention))
	wantRollups := hourlyFromShares(t, l, horizon)
	before := sharesByWorker(t, l)

	p := RetentionPolicy{Keep: MinShareRetention, Scheme: payout.PPS}
	dropped, err := l.ApplyRetention(ctx, now, p)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for d := first; d.Before(horizon); d = d.AddDate(0, 0, 1) {
		want = append(want, "shares_p"+d.Format("20060102"))
	}
	if !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want the days before %v: %v", dropped, horizon, want)
	}
	if got := rollups(t, l); !slices.Equal(got, wantRollups) {
		t.Fatalf("rollups differ from the raw shares they replace:\n got %v\nwant %v", got, wantRollups)
	}
	var kept int
	if err := l.Pool().QueryRow(ctx, "SELECT count(*) FROM shares WHERE time < $1", horizon).Scan(&kept); err != nil || kept != 0 {
		t.Fatalf("%d shares older than the horizon left (%v)", kept, err)
	}
	// Rollups plus what is left add up to what there was.
	var n int64
	var sum float64
	if err := l.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM shares) + (SELECT sum(shares) FROM share_rollups),
		(SELECT sum(difficulty) FROM shares) + (SELECT sum(difficulty_sum) FROM share_rollups)`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	var wantN int64
	var wantSum float64
	for _, s := range before {
		wantN += s.n
		wantSum += s.sum
	}
	if n != wantN || sum != wantSum {
		t.Fatalf("shares + rollups = %d shares, %v difficulty; want %d, %v", n, sum, wantN, wantSum)
	}

	for a, want := range wantWorkers {
		got, err := l.workerHashrateSeries(ctx, now, a, window, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(x, y WorkerSeries) bool { return x.Name == y.Name && slices.Equal(x.Points, y.Points) }) {
			t.Errorf("%s: worker series after retention\n%v\nwant\n%v", a, got, want)
		}
	}
	gotPool, err := l.poolHashrateSeries(ctx, now, window, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gotPool, wantPool) {
		t.Errorf("pool series after retention\n%v\nwant\n%v", gotPool, wantPool)
	}
	// A 30-minute bucket over a dropped day has the hour's average.
	fine, err := l.poolHashrateSeries(ctx, now, window, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if fine[0].Hashrate != wantPool[0].Hashrate || fine[1].Hashrate != wantPool[0].Hashrate {
		t.Errorf("30-minute points over a rolled-up hour: %v, %v; want the hour's %v each", fine[0], fine[1], wantPool[0])
	}

	// Again: nothing more is old enough, and nothing is counted twice.
	if again, err := l.ApplyRetention(ctx, now, p); err != nil || len(again) != 0 {
		t.Fatalf("second retention run dropped %v (%v)", again, err)
	}
	if got := rollups(t, l); !slices.Equal(got, wantRollups) {
		t.Fatal("a second retention run changed the rollups")
	}
	// The first share ever is still known (the pool's "since" figures):
	// rates are over the whole window.
	sw, err := l.poolShareWindows(ctx, now, []time.Duration{time.Hour})
	if err != nil || sw[0].Shares == 0 || sw[0].SharesPerSecond != float64(sw[0].Shares)/3600 {
		t.Errorf("share windows after retention: %+v %v", sw, err)
	}

	if _, err := l.ApplyRetention(ctx, now, RetentionPolicy{Keep: 24 * time.Hour, Scheme: payout.PPS}); err == nil {
		t.Error("a retention shorter than the charts' reach was accepted")
	}
}

func TestRetentionKeepsWhatPayoutsNeed(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return utcDay(now).AddDate(0, 0, d) }
	// 13 days, 3 shares an hour of difficulty 1..5 (about 216 a day).
	shares := daysOfShares(day(-12), 13, 1)
	// A block found on day -9 at 12:00 whose network difficulty makes
	// its PPLNS window (2 x 150 = 300 difficulty) reach back into day -10.
	hash := strings.Repeat("ef", 32)
	blockAt := day(-9).Add(12 * time.Hour)
	shares = append(shares, record.Share{Time: blockAt, Address: "bcrt1qpart0", Worker: "rig0", JobID: "b", Difficulty: 1,
		ActualDiff: 200, Height: 100, NetworkDifficulty: 150, IsBlock: true, BlockHash: hash})
	writeShares(t, l, shares)
	if _, err := l.MaintainPartitions(ctx, now, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordBlock(ctx, record.Block{Time: blockAt, Height: 100, Hash: hash, Reward: 5000, Address: "bcrt1qpart0",
		Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	// The window's oldest share, as the payout reads it.
	var needed time.Time
	if err := l.Pool().QueryRow(ctx, `
		SELECT time FROM (SELECT time, sum(difficulty) OVER (ORDER BY time DESC) AS acc FROM shares WHERE time <= $1) w
		WHERE acc >= 300 ORDER BY time DESC LIMIT 1`, blockAt).Scan(&needed); err != nil {
		t.Fatal(err)
	}
	if !needed.Before(day(-9)) {
		t.Fatalf("test setup: the window starts at %v, not in day -10", needed)
	}

	pplns := RetentionPolicy{Keep: MinShareRetention, Scheme: payout.PPLNS, PPLNSWindow: 2}
	dropped, held, err := l.applyRetention(ctx, now, pplns)
	if err != nil {
		t.Fatal(err)
	}
	// What the log tells the operator.
	if !strings.Contains(held, "uncredited block "+hash+" (pplns)") {
		t.Errorf("retention held back by %q, want the uncredited block named", held)
	}
	// Only days that end a full margin before the window's start go.
	var want []string
	for d := day(-12); !d.AddDate(0, 0, 1).After(needed.Add(-retentionMargin)); d = d.AddDate(0, 0, 1) {
		want = append(want, "shares_p"+d.Format("20060102"))
	}
	if len(want) == 0 || len(want) >= 4 || !slices.Equal(dropped, want) {
		t.Fatalf("with block uncredited dropped %v, want %v (some, not all 4 days past the retention)", dropped, want)
	}
	var oldest time.Time
	if err := l.Pool().QueryRow(ctx, "SELECT min(time) FROM shares").Scan(&oldest); err != nil || oldest.After(needed) {
		t.Fatalf("oldest share kept %v, the uncredited block's window starts at %v (%v)", oldest, needed, err)
	}
	// The block's credit reads the same window as before.
	var id int64
	if err := l.Pool().QueryRow(ctx, "SELECT id FROM blocks WHERE hash = $1", hash).Scan(&id); err != nil {
		t.Fatal(err)
	}
	weights, err := l.ShareWeights(ctx, payout.Window{UntilBlock: id, Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, w := range weights {
		total += w.Difficulty
	}
	if total != 300 {
		t.Fatalf("the block's PPLNS window weighs %v after retention, want 300", total)
	}

	// Credited, the block needs nothing more: every day past the
	// retention goes.
	if err := l.CreditBlock(ctx, id, payout.Terms{Scheme: payout.PPLNS}, []payout.Credit{{Address: "bcrt1qpart0", Kind: payout.KindShare, Amount: 5000, Weight: 300}}); err != nil {
		t.Fatal(err)
	}
	dropped, err = l.ApplyRetention(ctx, now, pplns)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 || dropped[len(dropped)-1] != "shares_p"+day(-9).Format("20060102") {
		t.Fatalf("after crediting dropped %v, want up to day -9", dropped)
	}
}

func TestRetentionUnderPROPKeepsTheRound(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return utcDay(now).AddDate(0, 0, d) }
	writeShares(t, l, daysOfShares(day(-12), 13, 1))
	if _, err := l.MaintainPartitions(ctx, now, 1); err != nil {
		t.Fatal(err)
	}
	prop := RetentionPolicy{Keep: MinShareRetention, Scheme: payout.PROP}
	// No block yet: the current round is every share there is.
	if dropped, held, err := l.applyRetention(ctx, now, prop); err != nil || len(dropped) != 0 || !strings.Contains(held, "the next block (prop)") {
		t.Fatalf("PROP without a block dropped %v, held by %q (%v)", dropped, held, err)
	}
	// A block on day -10 ends that round; the next one starts there.
	if err := l.RecordBlock(ctx, record.Block{Time: day(-10).Add(6 * time.Hour), Height: 1, Hash: strings.Repeat("01", 32),
		Address: "bcrt1qpart0", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pool().Exec(ctx, "UPDATE blocks SET credited_at = now()"); err != nil {
		t.Fatal(err)
	}
	dropped, err := l.ApplyRetention(ctx, now, prop)
	if err != nil {
		t.Fatal(err)
	}
	// Day -12 ends before the round's start less the margin; day -11
	// is within the margin.
	if want := []string{"shares_p" + day(-12).Format("20060102")}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v", dropped, want)
	}
}

func TestRunPartitionMaintenance(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	ran := make(chan []string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.RunPartitionMaintenance(ctx, PartitionMaintenance{Ahead: 2,
			Retention: RetentionPolicy{Keep: 30 * 24 * time.Hour, Scheme: payout.PPLNS, PPLNSWindow: 2},
			Ran: func(created, _ []string, err error) {
				if err != nil {
					t.Errorf("maintenance run: %v", err)
				}
				select {
				case ran <- created:
				default:
				}
			}})
	}()
	created := <-ran
	cancel()
	<-done
	if len(created) != 3 {
		t.Fatalf("first run created %v, want today and 2 days ahead", created)
	}
}

// BenchmarkMigrate0008 times migration 0008 on a database holding
// HASHFORGE_MIGRATE_ROWS shares (default 10,000,000) over 30 days and
// 1,000 workers, filled in the pre-0008 schema, and then retention
// rolling that history up and dropping it. Not run by go test (a
// benchmark); run it with
//
//	CI=true go test -run '^$' -bench BenchmarkMigrate0008 -benchtime 1x -timeout 30m ./ledger/
func BenchmarkMigrate0008(b *testing.B) {
	rows := int64(10_000_000)
	if s := os.Getenv("HASHFORGE_MIGRATE_ROWS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("HASHFORGE_MIGRATE_ROWS: %v", err)
		}
		rows = n
	}
	for range b.N {
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		l, err := Open(ctx, devtest.Postgres(b))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := migrate(ctx, l.Pool(), migrationsBefore(b, "0008")); err != nil {
			b.Fatal(err)
		}
		fill := time.Now()
		if _, err := l.Pool().Exec(ctx, `
			INSERT INTO workers (address, name) SELECT 'bcrt1qbench' || i, 'rig' FROM generate_series(1, 1000) i;
			INSERT INTO shares (time, worker_id, job_id, difficulty, actual_difficulty, height, remote_addr, extranonce1, network_difficulty)
			SELECT now() - interval '30 days' * ((`+strconv.FormatInt(rows, 10)+` - i)::float8 / `+strconv.FormatInt(rows, 10)+`),
			       1 + i % 1000, 'job' || (i % 5000), 1 + i % 7, 10 + i % 100, 900000, '10.0.0.1:3333', 'deadbeef', 1e14
			FROM generate_series(1, `+strconv.FormatInt(rows, 10)+`) i;`); err != nil {
			b.Fatal(err)
		}
		// A live table has been vacuumed (and its hint bits set) long
		// before it is migrated; a fresh one would make the migration's
		// read pay for writing them.
		if _, err := l.Pool().Exec(ctx, "VACUUM ANALYZE shares"); err != nil {
			b.Fatal(err)
		}
		b.Logf("filled %d shares in %v", rows, time.Since(fill).Round(time.Second))
		b.StartTimer()
		start := time.Now()
		if _, err := l.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		var n int64
		if err := l.Pool().QueryRow(ctx, "SELECT count(*) FROM shares").Scan(&n); err != nil || n != rows {
			b.Fatalf("%d shares after the migration (%v), want %d", n, err, rows)
		}
		b.Logf("migration 0008 on %d shares took %v", rows, took.Round(time.Millisecond))
		b.ReportMetric(took.Seconds(), "migrate-s")

		// A month later the whole pre-0008 history is past retention:
		// rolled up and dropped in one transaction.
		start = time.Now()
		dropped, err := l.ApplyRetention(ctx, time.Now().AddDate(0, 0, 32), RetentionPolicy{Keep: 30 * 24 * time.Hour, Scheme: payout.PPS})
		if err != nil || !slices.Equal(dropped, []string{"shares_legacy"}) {
			b.Fatalf("retention dropped %v (%v), want shares_legacy", dropped, err)
		}
		took = time.Since(start)
		var rolled int64
		if err := l.Pool().QueryRow(ctx, "SELECT sum(shares)::bigint FROM share_rollups").Scan(&rolled); err != nil || rolled != rows {
			b.Fatalf("rollups hold %d shares (%v), want %d", rolled, err, rows)
		}
		b.Logf("rolling up and dropping shares_legacy (%d shares) took %v", rows, took.Round(time.Millisecond))
		b.ReportMetric(took.Seconds(), "rollup-drop-s")
		l.Close()
		cancel()
	}
}

func TestParsePartitionBound(t *testing.T) {
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in       string
		from, to time.Time
		def, bad bool
	}{
		{in: "FOR VALUES FROM ('2026-07-01 00:00:00+00') TO ('2026-07-02 00:00:00+00')", from: day, to: day.AddDate(0, 0, 1)},
		{in: "FOR VALUES FROM (MINVALUE) TO ('2026-07-01 00:00:00+00')", to: day},
		{in: "DEFAULT", def: true},
		{in: "FOR VALUES FROM ('2026-07-02 00:00:00+00') TO ('2026-07-01 00:00:00+00')", bad: true},
		{in: "FOR VALUES FROM ('2026-07-01') TO ('2026-07-02')", bad: true},
		{in: "FOR VALUES IN (1)", bad: true},
	} {
		from, to, def, err := parsePartitionBound(c.in)
		if (err != nil) != c.bad || def != c.def || !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("%q: %v %v %v %v", c.in, from, to, def, err)
		}
	}
}

// The bound text comes from the database catalog; whatever it holds must
// give an error or a non-empty range, never a panic.
func FuzzParsePartitionBound(f *testing.F) {
	f.Add("FOR VALUES FROM ('2026-07-01 00:00:00+00') TO ('2026-07-02 00:00:00+00')")
	f.Add("FOR VALUES FROM (MINVALUE) TO ('2026-07-01 00:00:00+00')")
	f.Add("DEFAULT")
	f.Add("FOR VALUES FROM ('') TO ('')")
	f.Fuzz(func(t *testing.T, s string) {
		from, to, def, err := parsePartitionBound(s)
		if err != nil || def {
			return
		}
		if to.IsZero() || (!from.IsZero() && !from.Before(to)) {
			t.Fatalf("%q: accepted range [%v, %v)", s, from, to)
		}
		// Printed back as PostgreSQL prints it, the bound reads the same.
		again := "FOR VALUES FROM (MINVALUE) TO ('" + to.Format(boundLayout) + "')"
		if !from.IsZero() {
			again = "FOR VALUES FROM ('" + from.Format(boundLayout) + "') TO ('" + to.Format(boundLayout) + "')"
		}
		f2, t2, _, err := parsePartitionBound(again)
		if err != nil || !f2.Equal(from) || !t2.Equal(to) {
			t.Fatalf("%q: reprinted %q reads %v %v %v", s, again, f2, t2, err)
		}
	})
}
