package ledger

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/migrations"
)

// migrationsBefore is the embedded migrations numbered below version.
func migrationsBefore(t testing.TB, version string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") && e.Name() < version {
			data, err := fs.ReadFile(migrations.FS, e.Name())
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = &fstest.MapFile{Data: data}
		}
	}
	return out
}

// dump reads a query's rows as text lines, for before/after comparisons.
func dump(t *testing.T, l *Ledger, query string) []string {
	t.Helper()
	rows, err := l.Pool().Query(testCtx(t), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		v, err := r.Values()
		return row(v...), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// row is one dumped row: its values separated by spaces.
func row(v ...any) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " ")
}

const (
	mergeLower = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
	// A taproot (bech32m) address seen only in upper case.
	mergeTaproot = "bcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqc8gma6"
	// A simnet base58 address whose lower case starts like bech32:
	// case matters in base58, it must never be lowered.
	mergeBase58 = "Sb1C4q46bEmShZ8qna7MuCq8rQD6dxaXTd"
	// Upper case, bech32 prefix, bad checksum: not an address to respell.
	mergeBadSum = "BCRT1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KYGT081"
)

// TestMigration0007MergesAddressSpellings seeds, through SQL into a real
// PostgreSQL at migration 0006, one bech32 address in both cases (two
// accounts, workers, credits of one block, items of one batch), a bech32m
// address in upper case only, and base58 and invalid strings that must
// not move; applies 0007, then runs it again.
func TestMigration0007MergesAddressSpellings(t *testing.T) {
	l := openRaw(t)
	ctx := testCtx(t)
	if _, err := migrate(ctx, l.Pool(), migrationsBefore(t, "0007")); err != nil {
		t.Fatal(err)
	}
	upper, upperTR := strings.ToUpper(mergeLower), strings.ToUpper(mergeTaproot)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := l.Pool().Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Workers, one in both spellings, and their shares.
	exec(`INSERT INTO workers (id, address, name, first_seen, last_seen) VALUES
		(1, $1, 'rig', '2026-01-02', '2026-01-05'), (2, $2, 'rig', '2026-01-01', '2026-01-03'),
		(3, $2, 'other', '2026-01-01', '2026-01-01'), (4, $3, 'rig', '2026-01-01', '2026-01-01'),
		(5, $4, 'x', '2026-01-01', '2026-01-01'), (6, $5, 'x', '2026-01-01', '2026-01-01')`,
		mergeLower, upper, upperTR, mergeBase58, mergeBadSum)
	exec(`SELECT setval('workers_id_seq', 6)`)
	exec(`INSERT INTO shares (time, worker_id, job_id, difficulty, actual_difficulty, height)
		SELECT now(), w, 'j', w * 10, 1, 1 FROM unnest(ARRAY[1, 1, 2, 2, 2, 3, 4, 5, 6]) AS w`)
	// A credited pending block found by the upper-case spelling.
	exec(`INSERT INTO blocks (id, height, hash, reward, finder_address, accepted, found_at, credited_at)
		VALUES (1, 1, 'aa', 150, $1, true, now(), now())`, upper)
	exec(`INSERT INTO block_credits (block_id, address, kind, amount, weight) VALUES
		(1, $1, 'share', 100, 1.5), (1, $2, 'share', 50, 2.5)`, mergeLower, upper)
	// A confirmed batch paying both spellings, a failed one only one.
	exec(`INSERT INTO payments (id, batch_id, state, txid, total, items) VALUES
		(1, gen_random_uuid(), 'confirmed', 'tx1', 800, 2), (2, gen_random_uuid(), 'failed', NULL, 10, 1)`)
	exec(`INSERT INTO payment_items (payment_id, address, amount) VALUES (1, $1, 500), (1, $2, 300), (2, $2, 10)`,
		mergeLower, upper)
	// The journal, and accounts as its sums.
	exec(`INSERT INTO journal (address, kind, immature, mature, paid, block_id, payment_id) VALUES
		($1, 'block_credit', 100, 0, 0, 1, NULL), ($1, 'pps_credit', 0, 1500, 0, NULL, NULL),
		($1, 'payment', 0, -500, 500, NULL, 1),
		($2, 'block_credit', 50, 0, 0, 1, NULL), ($2, 'pps_credit', 0, 2310, 0, NULL, NULL),
		($2, 'payment', 0, -300, 300, NULL, 1), ($2, 'payment', 0, -10, 10, NULL, 2),
		($2, 'refund', 0, 10, -10, NULL, 2),
		($3, 'pps_credit', 0, 7, 0, NULL, NULL), ($4, 'pps_credit', 0, 11, 0, NULL, NULL),
		($5, 'pps_credit', 0, 13, 0, NULL, NULL)`, mergeLower, upper, upperTR, mergeBase58, mergeBadSum)
	exec(`INSERT INTO accounts (address, immature, mature, paid)
		SELECT address, sum(immature), sum(mature), sum(paid) FROM journal GROUP BY address`)
	if bad, err := l.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("seed: journal check %v, %v", bad, err)
	}
	const totals = `SELECT sum(immature), sum(mature), sum(paid) FROM accounts`
	const shareSums = `SELECT w.address, count(*), sum(s.difficulty) FROM shares s JOIN workers w ON w.id = s.worker_id
		GROUP BY w.address ORDER BY w.address COLLATE "C"`
	beforeTotals := dump(t, l, totals)
	oldJournal := dump(t, l, `SELECT * FROM journal ORDER BY id`)

	if _, err := l.Migrate(ctx); err != nil {
		t.Fatalf("0007: %v", err)
	}
	if got := dump(t, l, totals); !slices.Equal(got, beforeTotals) {
		t.Fatalf("account totals %v after the merge, %v before: satoshis lost or made", got, beforeTotals)
	}
	want := []string{
		row(mergeBadSum, 0, 13, 0),
		row(mergeBase58, 0, 11, 0),
		row(mergeTaproot, 0, 7, 0),
		row(mergeLower, 150, 3010, 800),
	}
	if got := dump(t, l, `SELECT address, immature, mature, paid FROM accounts ORDER BY address COLLATE "C"`); !slices.Equal(got, want) {
		t.Fatalf("accounts after 0007:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if bad, err := l.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("journal check after 0007: %v, %v", bad, err)
	}
	// The journal only grew: two rows per merged account.
	if got := dump(t, l, `SELECT * FROM journal WHERE kind <> 'address_merge' ORDER BY id`); !slices.Equal(got, oldJournal) {
		t.Fatal("0007 changed journal rows it must only append to")
	}
	want = []string{
		row(upperTR, 0, -7, 0, "merged into "+mergeTaproot),
		row(mergeTaproot, 0, 7, 0, "merged from "+upperTR),
		row(upper, -50, -2010, -300, "merged into "+mergeLower),
		row(mergeLower, 50, 2010, 300, "merged from "+upper),
	}
	if got := dump(t, l, `SELECT address, immature, mature, paid, note FROM journal WHERE kind = 'address_merge' ORDER BY id`); !slices.Equal(got, want) {
		t.Fatalf("merge journal rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Workers: the two "rig" became one (the earlier first_seen, the
	// later last_seen), "other" is respelled, the rest untouched.
	want = []string{
		row(1, mergeLower, "rig", "2026-01-01", "2026-01-05"),
		row(3, mergeLower, "other", "2026-01-01", "2026-01-01"),
		row(4, mergeTaproot, "rig", "2026-01-01", "2026-01-01"),
		row(5, mergeBase58, "x", "2026-01-01", "2026-01-01"),
		row(6, mergeBadSum, "x", "2026-01-01", "2026-01-01"),
	}
	if got := dump(t, l, `SELECT id, address, name, first_seen::date::text, last_seen::date::text FROM workers ORDER BY id`); !slices.Equal(got, want) {
		t.Fatalf("workers after 0007:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{
		row(mergeBadSum, 1, 60),
		row(mergeBase58, 1, 50),
		row(mergeTaproot, 1, 40),
		row(mergeLower, 6, 20+60+30),
	}
	if got := dump(t, l, shareSums); !slices.Equal(got, want) {
		t.Fatalf("shares per address after 0007:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := dump(t, l, `SELECT block_id, address, kind, amount, weight FROM block_credits`); !slices.Equal(got,
		[]string{row(1, mergeLower, "share", 150, 4)}) {
		t.Fatalf("block credits after 0007: %v", got)
	}
	if got := dump(t, l, `SELECT finder_address FROM blocks`); !slices.Equal(got, []string{mergeLower}) {
		t.Fatalf("finder after 0007: %v", got)
	}
	want = []string{row(1, mergeLower, 800, 1), row(2, mergeLower, 10, 1)}
	if got := dump(t, l, `SELECT i.payment_id, i.address, i.amount, p.items FROM payment_items i
		JOIN payments p ON p.id = i.payment_id ORDER BY 1`); !slices.Equal(got, want) {
		t.Fatalf("payment items after 0007: %v, want %v", got, want)
	}

	// The merged account takes the whole credit when the block matures.
	if err := l.MatureBlock(ctx, 1, 100); err != nil {
		t.Fatalf("mature the merged block: %v", err)
	}
	if b, err := l.Balance(ctx, mergeLower); err != nil || b.Immature != 0 || b.Mature != 3160 {
		t.Fatalf("after maturing: %+v, %v", b, err)
	}

	// Idempotent: the same SQL again changes nothing.
	snapshot := func() []string {
		var all []string
		for _, q := range []string{`SELECT * FROM accounts ORDER BY address COLLATE "C"`, `SELECT count(*) FROM journal`,
			`SELECT * FROM workers ORDER BY id`, shareSums, `SELECT * FROM block_credits ORDER BY 1, 2, 3`,
			`SELECT * FROM payment_items ORDER BY 1, 2`, `SELECT id, items, state FROM payments ORDER BY id`} {
			all = append(all, dump(t, l, q)...)
		}
		return all
	}
	before := snapshot()
	sql, err := fs.ReadFile(migrations.FS, "0007_address_spelling.sql")
	if err != nil {
		t.Fatal(err)
	}
	exec(string(sql))
	if after := snapshot(); !slices.Equal(after, before) {
		t.Fatalf("0007 run again changed the data:\n%s\nwas\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
}
