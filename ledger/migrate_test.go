package ledger

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/migrations"
	"github.com/hashforge/hashforge/record"
)

func allVersions(t *testing.T) []string {
	t.Helper()
	ms, err := loadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	var v []string
	for _, m := range ms {
		v = append(v, m.version)
	}
	return v
}

func openRaw(t *testing.T) *Ledger {
	t.Helper()
	l, err := Open(testCtx(t), devtest.Postgres(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestMigrateIsIdempotent(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	want := allVersions(t)

	got, err := l.Migrate(ctx)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("first Migrate applied %v, want %v", got, want)
	}
	got, err = l.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("second Migrate applied %v, want nothing", got)
	}
	for _, table := range []string{"workers", "shares", "blocks", "spool_batches"} {
		var ok bool
		if err := l.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after Migrate (err %v)", table, err)
		}
	}
}

func TestMigrateConcurrentRunsApplyEachMigrationOnce(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	want := allVersions(t)

	const runners = 4
	results := make([][]string, runners)
	errs := make([]error, runners)
	var wg sync.WaitGroup
	for i := range runners {
		wg.Go(func() { results[i], errs[i] = Migrate(ctx, l.Pool()) })
	}
	wg.Wait()

	var all []string
	for i := range runners {
		if errs[i] != nil {
			t.Fatalf("runner %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Fatalf("runners applied %v together, want each of %v exactly once", all, want)
	}
	var n int
	if err := l.Pool().QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != len(want) {
		t.Fatalf("schema_migrations has %d rows (err %v), want %d", n, err, len(want))
	}
	// The lock must have been released: another run gets through.
	if _, err := Migrate(ctx, l.Pool()); err != nil {
		t.Fatalf("Migrate after concurrent runs: %v", err)
	}
}

func TestMigrateRefusesEditedMigration(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	fsys := fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (x int);")}}
	if _, err := migrate(ctx, l.Pool(), fsys); err != nil {
		t.Fatalf("first run: %v", err)
	}
	fsys["0001_a.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE a (x bigint);")}
	_, err := migrate(ctx, l.Pool(), fsys)
	if err == nil || !strings.Contains(err.Error(), "edited") {
		t.Fatalf("edited migration: err = %v, want an 'edited' error", err)
	}
}

func TestMigrateFailureRollsBackThatMigration(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x int);")},
		"0002_b.sql": {Data: []byte("CREATE TABLE b (x int); SELECT no_such_function();")},
	}
	applied, err := migrate(ctx, l.Pool(), fsys)
	if err == nil {
		t.Fatal("broken migration: no error")
	}
	if !slices.Equal(applied, []string{"0001_a"}) {
		t.Fatalf("applied %v, want [0001_a]", applied)
	}
	var b bool
	if err := l.Pool().QueryRow(ctx, "SELECT to_regclass('b') IS NOT NULL").Scan(&b); err != nil || b {
		t.Fatalf("table b exists after its migration failed (err %v)", err)
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for _, name := range []string{"1_init.sql", "0001-init.sql", "0001_Init.sql"} {
		if _, err := loadMigrations(fstest.MapFS{name: {Data: []byte("SELECT 1")}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := loadMigrations(fstest.MapFS{
		"0001_a.sql": {Data: []byte("SELECT 1")},
		"0001_b.sql": {Data: []byte("SELECT 1")},
	}); err == nil {
		t.Error("two migrations numbered 0001: accepted")
	}
}

// TestMigration0005ReexaminesUnclearBlocks: blocks an older pool recorded
// as rejected without a refusal from the node (no answer, inconclusive,
// duplicate) become unknown, for the chain to settle; real refusals stay.
func TestMigration0005ReexaminesUnclearBlocks(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	before := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < "0005" {
			data, err := fs.ReadFile(migrations.FS, e.Name())
			if err != nil {
				t.Fatal(err)
			}
			before[e.Name()] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := migrate(ctx, l.Pool(), before); err != nil {
		t.Fatal(err)
	}
	// Today's code writes the node id column a later migration adds.
	if _, err := l.Pool().Exec(ctx, `ALTER TABLE blocks ADD COLUMN node_id smallint`); err != nil {
		t.Fatal(err)
	}
	verdicts := map[string]string{
		"submitblock failed: submitblock: context deadline exceeded (after 5 attempts)": "unknown",
		"inconclusive":                            "unknown",
		"duplicate-inconclusive":                  "unknown",
		"duplicate":                               "unknown",
		"rejected: already have block 0000abcd":   "unknown",
		"high-hash":                               "rejected",
		"duplicate-invalid":                       "rejected",
		"rejected: bad-txnmrklroot (merkle root)": "rejected",
	}
	hashes := map[string]string{}
	n := 0
	for v := range verdicts {
		n++
		hashes[v] = fmt.Sprintf("%064x", n)
		if err := l.RecordBlock(ctx, record.Block{Height: int64(n), Hash: hashes[v], Address: "a", Verdict: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RecordBlock(ctx, record.Block{Height: 99, Hash: fmt.Sprintf("%064x", 99), Address: "a", Accepted: true,
		Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for v, want := range verdicts {
		var status string
		if err := l.Pool().QueryRow(ctx, `SELECT status FROM blocks WHERE hash = $1`, hashes[v]).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status != want {
			t.Errorf("%q: status %s after 0005, want %s", v, status, want)
		}
	}
	var status string
	if err := l.Pool().QueryRow(ctx, `SELECT status FROM blocks WHERE height = 99`).Scan(&status); err != nil || status != "pending" {
		t.Errorf("accepted block: %s %v", status, err)
	}
}
