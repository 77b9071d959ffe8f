package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HashratePoint is the average hashrate over the bucket that ends at End.
// Stamping a bucket at its end makes a point mean "the average over the
// bucket up to this moment", the same as a live sliding-window figure
// plotted at the moment it was taken.
type HashratePoint struct {
	End      time.Time
	Hashrate float64 // hashes per second
}

// WorkerSeries is the hashrate history of one worker of an address.
type WorkerSeries struct {
	Name   string
	Points []HashratePoint
}

// MaxSeriesPoints bounds the buckets one series request may ask for, so a
// careless caller cannot make the database group, and the API encode,
// millions of points.
const MaxSeriesPoints = 2000

// PoolHashrateSeries returns the pool's hashrate over the last window in
// buckets of the given width, oldest first. Only complete buckets are
// returned (a partial one would read as a sudden drop), buckets are aligned
// to multiples of bucket since the Unix epoch, and buckets without shares
// are present with a zero hashrate, so every series of the same window and
// bucket has the same timestamps.
func (l *Ledger) PoolHashrateSeries(ctx context.Context, window, bucket time.Duration) ([]HashratePoint, error) {
	return l.poolHashrateSeries(ctx, time.Now(), window, bucket)
}

// WorkerHashrateSeries returns, for every worker of address that has
// shares in the window, its hashrate series as PoolHashrateSeries shapes
// it, ordered by worker name. Workers without shares in the window are
// left out (Workers lists them all).
func (l *Ledger) WorkerHashrateSeries(ctx context.Context, address string, window, bucket time.Duration) ([]WorkerSeries, error) {
	return l.workerHashrateSeries(ctx, time.Now(), address, window, bucket)
}

// SeriesAxis returns the bucket ends (Unix seconds) every hashrate series
// of that window and bucket has at now: the time axis of a chart, with or
// without shares in it.
func SeriesAxis(now time.Time, window, bucket time.Duration) ([]int64, error) {
	first, n, err := seriesRange(now, window, bucket)
	if err != nil {
		return nil, err
	}
	secs := int64(bucket / time.Second)
	ends := make([]int64, n)
	for i := range ends {
		ends[i] = (first + int64(i) + 1) * secs
	}
	return ends, nil
}

// seriesRange returns the index of the first complete bucket in the window
// and the number of complete buckets.
func seriesRange(now time.Time, window, bucket time.Duration) (first int64, n int, err error) {
	if bucket < time.Second || bucket%time.Second != 0 {
		return 0, 0, fmt.Errorf("bucket %v: must be a positive whole number of seconds", bucket)
	}
	if window < bucket || window%bucket != 0 {
		return 0, 0, fmt.Errorf("window %v: must be a positive multiple of the bucket %v", window, bucket)
	}
	n64 := int64(window / bucket)
	if n64 > MaxSeriesPoints {
		return 0, 0, fmt.Errorf("window %v in buckets of %v is %d points, more than %d", window, bucket, n64, MaxSeriesPoints)
	}
	// The bucket holding now is still filling: the series ends before it.
	current := now.Unix() / int64(bucket/time.Second)
	return current - n64, int(n64), nil
}

func (l *Ledger) poolHashrateSeries(ctx context.Context, now time.Time, window, bucket time.Duration) ([]HashratePoint, error) {
	first, n, err := seriesRange(now, window, bucket)
	if err != nil {
		return nil, fmt.Errorf("pool hashrate series: %w", err)
	}
	secs := int64(bucket / time.Second)
	// The bounds are computed here and passed as timestamps, so the
	// planner sees a plain range on shares_time_idx (and prunes the
	// partitions outside it). Days retention dropped come from the
	// rollups, split at the horizon in this one statement.
	rows, err := l.pool.Query(ctx, `
		WITH h AS (`+horizonSQL+`)
		SELECT false, floor(extract(epoch FROM time) / $3)::bigint AS b, sum(difficulty)
		FROM shares
		WHERE time >= GREATEST($1::timestamptz, (SELECT t FROM h)) AND time < $2
		GROUP BY b
		UNION ALL
		SELECT true, extract(epoch FROM bucket_start)::bigint, sum(difficulty_sum)
		FROM share_rollups
		WHERE bucket_start > $1::timestamptz - interval '1 hour' AND bucket_start < LEAST($2::timestamptz, (SELECT t FROM h))
		GROUP BY bucket_start`,
		time.Unix(first*secs, 0), time.Unix((first+int64(n))*secs, 0), secs)
	if err != nil {
		return nil, fmt.Errorf("pool hashrate series: %w", err)
	}
	sums := make(map[int64]float64, n)
	var rolled bool
	var b int64
	var sum float64
	if _, err := pgx.ForEachRow(rows, []any{&rolled, &b, &sum}, func() error {
		addSum(sums, rolled, b, sum, first, n, secs)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("pool hashrate series: %w", err)
	}
	return densePoints(first, n, secs, sums), nil
}

func (l *Ledger) workerHashrateSeries(ctx context.Context, now time.Time, address string, window, bucket time.Duration) ([]WorkerSeries, error) {
	first, n, err := seriesRange(now, window, bucket)
	if err != nil {
		return nil, fmt.Errorf("worker hashrate series of %q: %w", address, err)
	}
	if address == "" {
		return nil, errors.New("worker hashrate series: empty address")
	}
	secs := int64(bucket / time.Second)
	// One index range scan on shares_worker_time_idx per worker of the
	// address (the workers_address_name_key index finds them), and one
	// on the rollups' primary key for days retention dropped.
	rows, err := l.pool.Query(ctx, `
		WITH h AS (`+horizonSQL+`)
		SELECT w.name, false, floor(extract(epoch FROM s.time) / $4)::bigint AS b, sum(s.difficulty)
		FROM workers w
		JOIN shares s ON s.worker_id = w.id
		     AND s.time >= GREATEST($2::timestamptz, (SELECT t FROM h)) AND s.time < $3
		WHERE w.address = $1
		GROUP BY w.name, b
		UNION ALL
		SELECT w.name, true, extract(epoch FROM r.bucket_start)::bigint, r.difficulty_sum
		FROM workers w
		JOIN share_rollups r ON r.worker_id = w.id
		     AND r.bucket_start > $2::timestamptz - interval '1 hour'
		     AND r.bucket_start < LEAST($3::timestamptz, (SELECT t FROM h))
		WHERE w.address = $1
		ORDER BY 1`,
		address, time.Unix(first*secs, 0), time.Unix((first+int64(n))*secs, 0), secs)
	if err != nil {
		return nil, fmt.Errorf("worker hashrate series of %q: %w", address, err)
	}
	var (
		out    []WorkerSeries
		sums   map[int64]float64
		name   string
		cur    string
		rolled bool
		b      int64
		sum    float64
	)
	flush := func() {
		if sums != nil {
			out = append(out, WorkerSeries{Name: cur, Points: densePoints(first, n, secs, sums)})
		}
	}
	if _, err := pgx.ForEachRow(rows, []any{&name, &rolled, &b, &sum}, func() error {
		if sums == nil || name != cur {
			flush()
			cur, sums = name, make(map[int64]float64)
		}
		addSum(sums, rolled, b, sum, first, n, secs)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("worker hashrate series of %q: %w", address, err)
	}
	flush()
	return out, nil
}

// horizonSQL selects, as t, the time before which shares are only in
// share_rollups (-infinity while retention has dropped nothing).
const horizonSQL = `SELECT COALESCE((SELECT rolled_until FROM share_retention), '-infinity') AS t`

// addSum adds a difficulty sum to the buckets of a series: a raw one to
// its bucket b, a rolled-up hour starting at Unix second b to the buckets
// it overlaps, in proportion. A bucket that is a multiple of the hour (the
// charts that reach back past retention) gets whole hours, exactly; a
// finer one gets the hour's average, the best the rollup still knows.
func addSum(sums map[int64]float64, rolled bool, b int64, sum float64, first int64, n int, secs int64) {
	if !rolled {
		sums[b] += sum
		return
	}
	width := int64(RollupInterval / time.Second)
	start, end := b, b+width
	for idx := max(start/secs, first); idx < first+int64(n) && idx*secs < end; idx++ {
		lo, hi := max(start, idx*secs), min(end, (idx+1)*secs)
		if hi > lo {
			sums[idx] += sum * float64(hi-lo) / float64(width)
		}
	}
}

// densePoints turns per-bucket difficulty sums into n points from bucket
// first on, zero where a bucket had no shares.
func densePoints(first int64, n int, secs int64, sums map[int64]float64) []HashratePoint {
	pts := make([]HashratePoint, n)
	for i := range pts {
		idx := first + int64(i)
		pts[i] = HashratePoint{
			End:      time.Unix((idx+1)*secs, 0),
			Hashrate: sums[idx] * hashesPerDifficulty / float64(secs),
		}
	}
	return pts
}
