package ledger

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

// testCtx bounds a test's database work, so a hang fails instead of eating
// the whole go test timeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newTestLedger opens a migrated ledger on a fresh database.
func newTestLedger(t testing.TB) (*Ledger, string) {
	t.Helper()
	url := devtest.Postgres(t)
	ctx := testCtx(t)
	l, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(l.Close)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return l, url
}
