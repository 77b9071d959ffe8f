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
	q.WriteString(" FROM shares WHERE time > $1")
	counts := make([]int64, len(windows))
	sums := make([]float64, len(windows))
	dest := make([]any, 0, 2*len(windows))
	for i := range windows {
		dest = append(dest, &counts[i], &sums[i])
	}
	if err := l.pool.QueryRow(ctx, q.String(), args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("pool share windows: %w", err)
	}
	out := make([]ShareWindow, len(windows))
	for i, w := range windows {
		out[i] = ShareWindow{Window: w, Shares: counts[i], Hashrate: sums[i] * hashesPerDifficulty / w.Seconds()}
	}
	return out, nil
}
