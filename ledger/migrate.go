package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hashforge/hashforge/migrations"
)

// migrationLockKey is the pg_advisory_lock key that serialises migration
// runs of every pool node sharing the database. Its value is arbitrary but
// must never change, or an old and a new binary could migrate concurrently.
const migrationLockKey int64 = 0x68666d6967726174 // "hfmigrat"

var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.sql$`)

type migration struct {
	version  string // file name without ".sql"
	sql      string
	checksum string
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	seen := make(map[string]string)
	for _, name := range names {
		if !migrationName.MatchString(name) {
			return nil, fmt.Errorf("migration %q: name must look like 0001_description.sql", name)
		}
		// Two files with one number would apply in an order that depends
		// on their descriptions; refuse rather than guess.
		if prev, dup := seen[name[:4]]; dup {
			return nil, fmt.Errorf("migrations %q and %q share a number", prev, name)
		}
		seen[name[:4]] = name
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		sum := sha256.Sum256(body)
		out = append(out, migration{
			version:  strings.TrimSuffix(name, ".sql"),
			sql:      string(body),
			checksum: hex.EncodeToString(sum[:]),
		})
	}
	return out, nil
}

// Migrate applies the embedded migrations that the database has not seen
// yet and returns their versions in the order applied (empty when the schema
// was already current).
//
// Every pool node may call it at start-up: a session-level advisory lock
// makes the runs take turns, and a run that follows another finds nothing
// left to do. Each migration runs in its own transaction together with its
// schema_migrations row, so a failure leaves the database at the previous
// version. A migration that was applied and has since been edited is an
// error: the database no longer matches the files.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	return migrate(ctx, pool, migrations.FS)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) (applied []string, err error) {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}

	// Advisory locks belong to a session, so the lock, every migration and
	// the unlock must use the same connection.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		// The lock may have been granted just as the wait was cancelled;
		// closing the session is the only sure way to release it.
		closeHijacked(conn)
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); uerr != nil {
			// Never return a connection that may still hold the lock to
			// the pool: the next migration run would wait forever.
			closeHijacked(conn)
			err = errors.Join(err, fmt.Errorf("migrate: release advisory lock: %w", uerr))
			return
		}
		conn.Release()
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text        PRIMARY KEY,
		checksum   text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}

	done := make(map[string]string)
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	var version, checksum string
	_, err = pgx.ForEachRow(rows, []any{&version, &checksum}, func() error {
		done[version] = checksum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: read schema_migrations: %w", err)
	}

	// Versions in the database that this binary does not know are left
	// alone: during a rolling upgrade an older node meets a newer schema.
	applied = []string{}
	for _, m := range ms {
		if sum, ok := done[m.version]; ok {
			if sum != m.checksum {
				return applied, fmt.Errorf("migrate: %s was edited after it was applied (checksum %s, database has %s)", m.version, m.checksum, sum)
			}
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// Without arguments pgx uses the simple protocol, which runs
			// a multi-statement file in one round trip.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", m.version, m.checksum)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate: apply %s: %w", m.version, err)
		}
		slog.Info("ledger: migration applied", "version", m.version, "took", time.Since(start))
		applied = append(applied, m.version)
	}
	return applied, nil
}

func closeHijacked(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Hijack().Close(ctx)
}
