package ledger

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PaymentStateCounts returns how many payment batches are in each state
// (planned, sent, confirmed, failed), for metrics. States without batches
// are absent.
func (l *Ledger) PaymentStateCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := l.pool.Query(ctx, "SELECT state, count(*) FROM payments GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("payment batches by state: %w", err)
	}
	out := make(map[string]int64)
	var state string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		out[state] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("payment batches by state: %w", err)
	}
	return out, nil
}

// ShareWindow is the pool's share activity over one window ending now.
type ShareWindow struct {
	Window   time.Duration
	Shares   int64   // shares stamped in the window
	Hashrate float64 // hashes per second: Σ difficulty × 2^32 / window
	// SharesPerSecond is Shares over the same time as Hashrate.
	SharesPerSecond float64
}

// A pool that began mining less than a window ago (its first share ever is
// younger than the window) has had only the time since that share to do
// the work: dividing by the whole window would show a pool that started
// a minute ago at a tenth of its hashrate. Then the window is the time
// since the first share, and the sum and count leave out one share's
// worth ((n-1)/n), since the clock starts when the first was found.
func (w *ShareWindow) rate(sum float64, now, first time.Time) {
	elapsed, n := w.Window, float64(w.Shares)
	if !first.IsZero() && now.Sub(first) < elapsed {
		elapsed = now.Sub(first)
		if n > 0 {
			sum *= (n - 1) / n
			n--
		}
	}
	if elapsed <= 0 || n <= 0 {
		w.Hashrate, w.SharesPerSecond = 0, 0
		return
	}
	w.Hashrate = sum * hashesPerDifficulty / elapsed.Seconds()
	w.SharesPerSecond = n / elapsed.Seconds()
}

// PoolShareWindows returns the pool's hashrate and share count over each
// window, all ending at the same instant and read in one statement (one
// snapshot, one scan of the longest window), so the figures agree with
// each other: a share counted in a shorter window is counted in every
// longer one. Windows must be positive; an empty window gives 0.
func (l *Ledger) PoolShareWindows(ctx context.Context, windows ...time.Duration) ([]ShareWindow, error) {
	return l.poolShareWindows(ctx, time.Now(), windows)
}

func (l *Ledger) poolShareWindows(ctx context.Context, now time.Time, windows []time.Duration) ([]ShareWindow, error) {
	if len(windows) == 0 {
		return nil, nil
	}
	var longest time.Duration
	since := make([]time.Time, len(windows))
	for i, w := range windows {
		if w <= 0 {
			return nil, fmt.Errorf("pool share windows: window %v must be positive", w)
		}
		longest = max(longest, w)
		// The cutoffs come from this clock, the one that stamped the
		// shares, not from the database server's.
		since[i] = now.Add(-w)
	}
	// One index range scan over the longest window; each window is a
	// FILTER on it. The statement text holds placeholders only.
	var q strings.Builder
	q.WriteString("SELECT ")
	args := make([]any, 0, len(windows)+1)
	args = append(args, now.Add(-longest))
	for i := range windows {
		if i > 0 {
			q.WriteString(", ")
		}
		p := len(args) + 1
		fmt.Fprintf(&q, "count(*) FILTER (WHERE time > $%d), COALESCE(sum(difficulty) FILTER (WHERE time > $%d), 0)", p, p)
		args = append(args, since[i])
	}
	// The first share ever is one step down the time index, or down the
	// rollups' once retention has dropped it (LEAST ignores NULLs).
	q.WriteString(", LEAST((SELECT min(time) FROM shares), (SELECT min(bucket_start) FROM share_rollups)) FROM shares WHERE time > $1")
	counts := make([]int64, len(windows))
	sums := make([]float64, len(windows))
	dest := make([]any, 0, 2*len(windows)+1)
	for i := range windows {
		dest = append(dest, &counts[i], &sums[i])
	}
	var first *time.Time // NULL on an empty ledger
	dest = append(dest, &first)
	if err := l.pool.QueryRow(ctx, q.String(), args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("pool share windows: %w", err)
	}
	var began time.Time
	if first != nil {
		began = *first
	}
	out := make([]ShareWindow, len(windows))
	for i, w := range windows {
		out[i] = ShareWindow{Window: w, Shares: counts[i]}
		out[i].rate(sums[i], now, began)
	}
	return out, nil
}
