package ledger

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

func journalHash(c byte) string { return strings.Repeat(string(c), 64) }

// TestBlockJournalRecover: what a killed process left in the journal
// reaches the ledger at the next start: a block with its verdict as
// found (finder, reward, terms), a block journaled before submitblock
// with no verdict as unknown (the chain decides), a torn tail ignored;
// the journal keeps only what was appended after the entries it recorded.
func TestBlockJournalRecover(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	terms := payout.Terms{Scheme: payout.PROP, FeeBPS: 150}
	j, err := OpenBlockJournal(dir, terms, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	a := record.Block{Time: found, Height: 101, Hash: journalHash('a'), Reward: 5000000000, Address: "bcrt1qfinder", Worker: "rig1",
		Header: "00", Coinbase: "01"}
	if err := j.JournalBlock(a, false); err != nil {
		t.Fatal(err)
	}
	a.Accepted, a.Verdict = true, "accepted"
	if err := j.JournalBlock(a, true); err != nil {
		t.Fatal(err)
	}
	b := record.Block{Time: found, Height: 102, Hash: journalHash('b'), Reward: 5000000000, Address: "bcrt1qother", Worker: "rig2"}
	if err := j.JournalBlock(b, false); err != nil { // killed during submitblock
		t.Fatal(err)
	}
	j.Close()
	f, err := os.OpenFile(j.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("HFB1\x40\x00\x00\x00torn"))
	f.Close()

	j2, err := OpenBlockJournal(dir, payout.Terms{Scheme: payout.PPLNS}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	n, err := j2.Recover(ctx, l)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2 blocks", n, err)
	}
	rows, err := l.RecentBlocks(ctx, 10, 0)
	if err != nil || len(rows) != 2 {
		t.Fatalf("blocks: %d rows, %v", len(rows), err)
	}
	byHash := map[string]BlockRow{}
	for _, r := range rows {
		byHash[r.Hash] = r
	}
	ra, rb := byHash[a.Hash], byHash[b.Hash]
	if !ra.Accepted || ra.Status != "pending" || ra.Address != a.Address || ra.Worker != a.Worker || ra.Reward != a.Reward || ra.Height != 101 {
		t.Errorf("block a recorded as %+v", ra)
	}
	if rb.Accepted || rb.Status != "unknown" || rb.Address != b.Address || !strings.Contains(rb.Verdict, "stopped before") {
		t.Errorf("block b recorded as %+v", rb)
	}
	var scheme string
	var fee int
	if err := l.Pool().QueryRow(ctx, "SELECT scheme, fee_bps FROM block_terms WHERE hash = $1", a.Hash).Scan(&scheme, &fee); err != nil ||
		scheme != string(payout.PROP) || fee != 150 {
		t.Errorf("terms of a: %s %d (%v); want the terms it was found under, prop 150", scheme, fee, err)
	}

	// Recorded entries are gone; a later entry stays until the next Recover.
	c := record.Block{Time: found, Height: 103, Hash: journalHash('c'), Accepted: true, Verdict: "accepted"}
	if err := j2.JournalBlock(c, true); err != nil {
		t.Fatal(err)
	}
	entries, _, err := readJournal(j2.Path())
	if err != nil || len(entries) != 1 || entries[0].Block.Hash != c.Hash {
		t.Fatalf("journal after Recover and one more block: %d entries (%v), want just c", len(entries), err)
	}
	if n, err := j2.Recover(ctx, l); err != nil || n != 1 {
		t.Fatalf("second Recover = %d, %v; want 1", n, err)
	}
	if ok, err := l.HasBlock(ctx, c.Hash); err != nil || !ok {
		t.Fatalf("HasBlock(c) = %v, %v", ok, err)
	}
}

func TestChainScan(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	if _, _, ok, err := l.ChainScan(ctx); err != nil || ok {
		t.Fatalf("empty ledger: ok %v, err %v", ok, err)
	}
	if err := l.RecordBlock(ctx, record.Block{Height: 77, Hash: journalHash('d'), Accepted: true}); err != nil {
		t.Fatal(err)
	}
	if h, _, ok, err := l.ChainScan(ctx); err != nil || !ok || h != 77 {
		t.Fatalf("with a block: %d %v %v; want the highest block, 77", h, ok, err)
	}
	if err := l.SetChainScan(ctx, 90, journalHash('E')); err != nil {
		t.Fatal(err)
	}
	if h, hash, ok, err := l.ChainScan(ctx); err != nil || !ok || h != 90 || hash != journalHash('e') {
		t.Fatalf("after SetChainScan: %d %s %v %v", h, hash, ok, err)
	}
}
