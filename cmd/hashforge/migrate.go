package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashforge/hashforge/ledger"
)

func cmdMigrate(args []string) error {
	fs := newFlagSet("migrate", "--database-url URL")
	dbURL := fs.String("database-url", "", "PostgreSQL URL (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withLedger(*dbURL, func(ctx context.Context, led *ledger.Ledger) error {
		applied, err := led.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Println("database is up to date")
		}
		for _, m := range applied {
			fmt.Println("applied", m)
		}
		return nil
	})
}

// withLedger runs a one-shot command against the database at dbURL until
// it is done or SIGINT/SIGTERM arrives.
func withLedger(dbURL string, fn func(ctx context.Context, led *ledger.Ledger) error) error {
	if dbURL == "" {
		return errors.New("--database-url is required")
	}
	ctx, stop := signalContext()
	defer stop()
	led, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer led.Close()
	return fn(ctx, led)
}
