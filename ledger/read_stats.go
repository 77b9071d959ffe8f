package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ShareCountSince returns the number of shares stamped after since. Meant
// for short windows (the dashboard's shares per second over 10 minutes):
// it counts index entries of shares_time_idx.
func (l *Ledger) ShareCountSince(ctx context.Context, since time.Time) (int64, error) {
	var n int64
	if err := l.pool.QueryRow(ctx, "SELECT count(*) FROM shares WHERE time > $1", since).Scan(&n); err != nil {
		return 0, fmt.Errorf("shares since %s: %w", since.Format(time.RFC3339), err)
	}
	return n, nil
}

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
