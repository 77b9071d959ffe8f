package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// hashesPerDifficulty is the expected number of hashes behind one share of
// difficulty 1: the difficulty-1 target is 0xffff * 2^208, so a random hash
// meets it with probability ~2^-32.
const hashesPerDifficulty = 1 << 32

// WorkerHashrateWindow is the window Workers averages hashrate over.
const WorkerHashrateWindow = 10 * time.Minute

// WorkerRow is one worker of a payout address.
type WorkerRow struct {
	ID        int64
	Address   string
	Name      string // "" for the address's unnamed worker
	FirstSeen time.Time
	LastSeen  time.Time
	Hashrate  float64 // hashes per second over WorkerHashrateWindow
	Shares    int64   // shares in that window
}

// ShareCount returns the number of shares ever committed. It is read from
// the per-batch ledger (spool_batches) rather than by counting the shares
// table, which at pool scale would mean scanning billions of rows.
func (l *Ledger) ShareCount(ctx context.Context) (int64, error) {
	var n int64
	if err := l.pool.QueryRow(ctx, "SELECT COALESCE(sum(share_count), 0)::bigint FROM spool_batches").Scan(&n); err != nil {
		return 0, fmt.Errorf("share count: %w", err)
	}
	return n, nil
}

// PoolHashrate estimates the pool's hashrate in hashes per second from the
// shares of the last window: Σ difficulty × 2^32 / window. An empty window
// gives 0.
func (l *Ledger) PoolHashrate(ctx context.Context, window time.Duration) (float64, error) {
	if window <= 0 {
		return 0, errors.New("pool hashrate: window must be positive")
	}
	// The cutoff comes from this clock, the one that stamped the shares,
	// not from the database server's.
	var sum float64
	err := l.pool.QueryRow(ctx,
		"SELECT COALESCE(sum(difficulty), 0) FROM shares WHERE time > $1",
		time.Now().Add(-window)).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("pool hashrate: %w", err)
	}
	return sum * hashesPerDifficulty / window.Seconds(), nil
}

// Workers lists the workers of a payout address, by name, with their
// hashrate over WorkerHashrateWindow.
func (l *Ledger) Workers(ctx context.Context, address string) ([]WorkerRow, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT w.id, w.address, w.name, w.first_seen, w.last_seen,
		       COALESCE(s.diff, 0), COALESCE(s.n, 0)
		FROM workers w
		LEFT JOIN LATERAL (
			SELECT sum(difficulty) AS diff, count(*) AS n
			FROM shares
			WHERE worker_id = w.id AND time > $2
		) s ON true
		WHERE w.address = $1
		ORDER BY w.name`,
		address, time.Now().Add(-WorkerHashrateWindow))
	if err != nil {
		return nil, fmt.Errorf("workers of %q: %w", address, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WorkerRow, error) {
		var w WorkerRow
		var diff float64
		err := r.Scan(&w.ID, &w.Address, &w.Name, &w.FirstSeen, &w.LastSeen, &diff, &w.Shares)
		w.Hashrate = diff * hashesPerDifficulty / WorkerHashrateWindow.Seconds()
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("workers of %q: %w", address, err)
	}
	return out, nil
}
