package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Ledger is a handle on the pool database. It is safe for concurrent use.
type Ledger struct {
	pool *pgxpool.Pool
	// nodeID is the pool node whose blocks this ledger records (see
	// SetNodeID).
	nodeID int16
}

// Open connects to the database at databaseURL (a postgres:// URL or a
// key=value DSN) and checks that it answers.
func Open(ctx context.Context, databaseURL string) (*Ledger, error) {
	p, err := newPoolNoPing(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("ledger: ping database: %w", err)
	}
	return &Ledger{pool: p}, nil
}

// newPoolNoPing creates the connection pool without connecting: pgxpool
// dials lazily.
func newPoolNoPing(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("ledger: parse database url: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		// Makes the pool's sessions recognisable in pg_stat_activity.
		cfg.ConnConfig.RuntimeParams["application_name"] = "hashforge"
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: create connection pool: %w", err)
	}
	return p, nil
}

// Close closes every connection. Stop the Batcher (cancel its Run) first.
func (l *Ledger) Close() { l.pool.Close() }

// Pool exposes the connection pool to other packages that keep their own
// tables in this database (payouts).
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }

// Migrate applies pending migrations; see the package-level Migrate.
func (l *Ledger) Migrate(ctx context.Context) ([]string, error) {
	return Migrate(ctx, l.pool)
}
