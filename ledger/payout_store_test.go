package ledger

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

func checkJournal(t *testing.T, l *Ledger) {
	t.Helper()
	bad, err := l.CheckJournal(testCtx(t))
	if err != nil || len(bad) > 0 {
		t.Fatalf("accounts differ from the journal for %v (err %v)", bad, err)
	}
}

func wantBalance(t *testing.T, l *Ledger, addr string, imm, mat, paid int64) {
	t.Helper()
	b, err := l.Balance(testCtx(t), addr)
	if err != nil {
		t.Fatalf("Balance(%s): %v", addr, err)
	}
	if b != (Balance{Address: addr, Immature: imm, Mature: mat, Paid: paid}) {
		t.Fatalf("Balance(%s) = %+v, want immature %d mature %d paid %d", addr, b, imm, mat, paid)
	}
}

func writeShares(t *testing.T, l *Ledger, shares []record.Share) {
	t.Helper()
	b := NewBatcher(l, BatcherOptions{})
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	if _, err := b.writeBatch(testCtx(t), batch{ID: newBatchID(time.Now()), Shares: shares}); err != nil {
		t.Fatalf("writeBatch: %v", err)
	}
}

func recordBlock(t *testing.T, l *Ledger, height int64, found time.Time, reward int64) payout.Block {
	t.Helper()
	ctx := testCtx(t)
	hash := strings.Repeat("0", 8) + strings.Repeat(string("0123456789abcdef"[height%16]), 56)
	if err := l.RecordBlock(ctx, record.Block{Time: found, Height: height, Hash: hash, Reward: reward,
		Address: "finder", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	bs, err := l.UnsettledBlocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Hash == hash {
			return b
		}
	}
	t.Fatalf("block %s not unsettled", hash)
	return payout.Block{}
}

// TestPPLNSWindowDocExample walks the shares of docs/payouts.md example 4
// through PostgreSQL.
func TestPPLNSWindowDocExample(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	// Oldest first: C 700, B 400, A 600, C 500, B 300, A 400.
	var shares []record.Share
	for i, s := range []struct {
		a string
		d float64
	}{{"C", 700}, {"B", 400}, {"A", 600}, {"C", 500}, {"B", 300}, {"A", 400}} {
		shares = append(shares, record.Share{Time: base.Add(time.Duration(i) * time.Second), Address: s.a, JobID: "j", Difficulty: s.d, Height: 1})
	}
	// A share after the block must not count.
	shares = append(shares, record.Share{Time: base.Add(time.Minute), Address: "late", JobID: "j", Difficulty: 1e9, Height: 2})
	writeShares(t, l, shares)
	prev := recordBlock(t, l, 1, base.Add(1500*time.Millisecond), 1)
	blk := recordBlock(t, l, 2, base.Add(10*time.Second), 1)
	ws, err := l.ShareWeights(ctx, payout.Window{UntilBlock: blk.ID, Limit: 2000})
	if err != nil {
		t.Fatal(err)
	}
	want := []payout.Weight{{Address: "A", Difficulty: 1000}, {Address: "B", Difficulty: 500}, {Address: "C", Difficulty: 500}}
	if len(ws) != 3 || ws[0] != want[0] || ws[1] != want[1] || ws[2] != want[2] {
		t.Fatalf("PPLNS weights = %v, want %v", ws, want)
	}
	// The block's own solving share, stamped after found_at, belongs to
	// its round; the round starts after the previous block.
	writeShares(t, l, []record.Share{{Time: base.Add(20 * time.Second), Address: "Z", JobID: "j", Difficulty: 5,
		Height: 2, IsBlock: true, BlockHash: blk.Hash}})
	if id, ok, err := l.PreviousBlock(ctx, blk); err != nil || !ok || id != prev.ID {
		t.Fatalf("PreviousBlock = %d, %v, %v; want %d", id, ok, err, prev.ID)
	}
	ws, err = l.ShareWeights(ctx, payout.Window{AfterBlock: prev.ID, UntilBlock: blk.ID})
	if err != nil || len(ws) != 4 || ws[0].Difficulty != 1000 || ws[1].Difficulty != 300 || ws[2].Difficulty != 500 ||
		ws[3] != (payout.Weight{Address: "Z", Difficulty: 5}) {
		t.Fatalf("round weights = %v, %v", ws, err)
	}
	if _, ok, err := l.PreviousBlock(ctx, prev); ok || err != nil {
		t.Fatalf("PreviousBlock of the first block: %v, %v", ok, err)
	}
}

func TestBlockLifeCycleAndPayments(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	found := time.Now().Add(-time.Hour)

	// Unknown address: zero balance, no error.
	wantBalance(t, l, "nobody", 0, 0, 0)

	b1 := recordBlock(t, l, 10, found, 312_500_000)
	b2 := recordBlock(t, l, 11, found.Add(time.Minute), 100_000)
	c1, err := payout.BlockCredits(b1.Reward, 100, "fee", []payout.Weight{{Address: "A", Difficulty: 1000}, {Address: "B", Difficulty: 500}, {Address: "C", Difficulty: 500}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CreditBlock(ctx, b1.ID, payout.Terms{Scheme: payout.PPLNS, FeeBPS: 100}, c1); err != nil {
		t.Fatal(err)
	}
	// A second credit of the same block (another pool node) is a no-op.
	if err := l.CreditBlock(ctx, b1.ID, payout.Terms{Scheme: payout.PPLNS, FeeBPS: 100}, c1); err != nil {
		t.Fatal(err)
	}
	// Credits that do not sum to the reward are refused.
	if err := l.CreditBlock(ctx, b2.ID, payout.Terms{Scheme: payout.PPLNS}, []payout.Credit{{Address: "A", Kind: payout.KindShare, Amount: 1}}); err == nil {
		t.Fatal("credits not summing to the reward were accepted")
	}
	c2, _ := payout.Split(b2.Reward, []payout.Weight{{Address: "A", Difficulty: 1}, {Address: "D", Difficulty: 1}})
	if err := l.CreditBlock(ctx, b2.ID, payout.Terms{Scheme: payout.PROP}, c2); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "A", 154_687_500+50_000, 0, 0)
	wantBalance(t, l, "fee", 3_125_000, 0, 0)
	checkJournal(t, l)

	// b1 matures, b2 is orphaned.
	if err := l.MatureBlock(ctx, b1.ID, 100); err != nil {
		t.Fatal(err)
	}
	if err := l.OrphanBlock(ctx, b2.ID); err != nil {
		t.Fatal(err)
	}
	// Repeats change nothing.
	if err := l.MatureBlock(ctx, b1.ID, 101); err != nil {
		t.Fatal(err)
	}
	if err := l.OrphanBlock(ctx, b2.ID); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "A", 0, 154_687_500, 0)
	wantBalance(t, l, "D", 0, 0, 0)
	wantBalance(t, l, "B", 0, 77_343_750, 0)
	checkJournal(t, l)
	if bs, _ := l.UnsettledBlocks(ctx); len(bs) != 0 {
		t.Fatalf("unsettled after settling: %+v", bs)
	}
	rb, _ := l.RecentBlocks(ctx, 10, 0)
	if len(rb) != 2 || rb[0].Status != "orphaned" || rb[1].Status != "confirmed" {
		t.Fatalf("blocks = %+v", rb)
	}

	// Plan: threshold 10,000,000 takes A, B, C, not the fee (3,125,000).
	pb, err := l.PlanBatch(ctx, "0190a0f0-0000-7000-8000-000000000001", 10_000_000, 100)
	if err != nil || pb == nil || len(pb.Items) != 3 {
		t.Fatalf("PlanBatch = %+v, %v", pb, err)
	}
	if _, err := l.PlanBatch(ctx, "0190a0f0-0000-7000-8000-000000000002", 1, 100); !errors.Is(err, ErrBatchOpen) {
		t.Fatalf("second PlanBatch while one is planned: %v, want ErrBatchOpen", err)
	}
	wantBalance(t, l, "A", 0, 0, 154_687_500)
	checkJournal(t, l)
	// Fail: everything back.
	if _, err := l.MarkAttempt(ctx, pb.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.FailBatch(ctx, pb.ID, "insufficient funds"); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, l, "A", 0, 154_687_500, 0)
	checkJournal(t, l)

	// Plan again, send, confirm.
	pb, err = l.PlanBatch(ctx, "0190a0f0-0000-7000-8000-000000000003", 10_000_000, 2)
	if err != nil || pb == nil || len(pb.Items) != 2 || pb.Items[0] != (payout.Item{Address: "A", Amount: 154_687_500}) {
		t.Fatalf("PlanBatch(max 2) = %+v, %v", pb, err)
	}
	open, err := l.OpenBatches(ctx)
	if err != nil || len(open) != 1 || open[0].State != payout.StatePlanned || len(open[0].Items) != 2 || !open[0].LastAttempt.IsZero() {
		t.Fatalf("OpenBatches = %+v, %v", open, err)
	}
	txid := strings.Repeat("ab", 32)
	if err := l.MarkSent(ctx, pb.ID, txid); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkSent(ctx, pb.ID, txid); err != nil {
		t.Fatalf("MarkSent again with the same txid: %v", err)
	}
	if err := l.MarkSent(ctx, pb.ID, strings.Repeat("cd", 32)); err == nil {
		t.Fatal("MarkSent with another txid accepted")
	}
	if err := l.FailBatch(ctx, pb.ID, "late"); err == nil {
		t.Fatal("FailBatch of a sent batch accepted")
	}
	if err := l.MarkConfirmed(ctx, pb.ID, 261); err != nil {
		t.Fatal(err)
	}

	ps, err := l.Payments(ctx, 10, 0)
	if err != nil || len(ps) != 2 {
		t.Fatalf("Payments = %+v, %v", ps, err)
	}
	if p := ps[0]; p.State != "confirmed" || p.TxID != txid || p.Total != 154_687_500+77_343_750 || p.Fee != 261 ||
		p.Items != 2 || p.SentAt == nil || p.ConfirmedAt == nil || p.BatchID != "0190a0f0-0000-7000-8000-000000000003" {
		t.Errorf("newest payment = %+v", p)
	}
	if p := ps[1]; p.State != "failed" || p.Reason != "insufficient funds" || p.TxID != "" || p.SentAt != nil {
		t.Errorf("failed payment = %+v", p)
	}
	items, err := l.PaymentsTo(ctx, "A", 10)
	if err != nil || len(items) != 2 || items[0].State != "confirmed" || items[0].TxID != txid ||
		items[0].Amount != 154_687_500 || items[1].State != "failed" {
		t.Fatalf("PaymentsTo(A) = %+v, %v", items, err)
	}
	if items, err := l.PaymentsTo(ctx, "nobody", 10); err != nil || len(items) != 0 {
		t.Fatalf("PaymentsTo(nobody) = %+v, %v", items, err)
	}
	wantBalance(t, l, "C", 0, 77_343_750, 0) // left for the next batch
	checkJournal(t, l)

	// The journal is append-only.
	if _, err := l.Pool().Exec(ctx, `UPDATE journal SET mature = mature + 1`); err == nil {
		t.Fatal("journal UPDATE allowed")
	}
	if _, err := l.Pool().Exec(ctx, `DELETE FROM journal`); err == nil {
		t.Fatal("journal DELETE allowed")
	}
	for _, q := range []string{`TRUNCATE journal`, `TRUNCATE payments, payment_items CASCADE`, `TRUNCATE blocks CASCADE`} {
		if _, err := l.Pool().Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v; want refused as append-only", q, err)
		}
	}
	var n int
	if err := l.Pool().QueryRow(ctx, `SELECT count(*) FROM journal`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("journal rows after the refused TRUNCATEs: %d, %v", n, err)
	}
	checkJournal(t, l)
}

// TestPaymentTxIDUnique: one transaction pays one batch; the ledger
// refuses to record a txid for a second batch, and says which txids
// other batches hold.
func TestPaymentTxIDUnique(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	txid := strings.Repeat("ef", 32)
	var ids []int64
	for i, addr := range []string{"A", "B"} {
		b := recordBlock(t, l, int64(20+i), time.Now().Add(-time.Hour), 1_000_000)
		if err := l.CreditBlock(ctx, b.ID, payout.Terms{Scheme: payout.PROP},
			[]payout.Credit{{Address: addr, Kind: payout.KindShare, Amount: 1_000_000}}); err != nil {
			t.Fatal(err)
		}
		if err := l.MatureBlock(ctx, b.ID, 100); err != nil {
			t.Fatal(err)
		}
		pb, err := l.PlanBatch(ctx, fmt.Sprintf("0190a0f0-0000-7000-8000-00000000001%d", i), 1, 10)
		if err != nil || pb == nil {
			t.Fatalf("PlanBatch: %+v, %v", pb, err)
		}
		ids = append(ids, pb.ID)
		if i == 0 {
			if err := l.MarkSent(ctx, pb.ID, txid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.MarkSent(ctx, ids[1], txid); err == nil {
		t.Fatal("a second batch recorded with the same txid")
	}
	other := strings.Repeat("01", 32)
	taken, err := l.TxIDsTaken(ctx, ids[1], []string{txid, other})
	if err != nil || len(taken) != 1 || !taken[txid] {
		t.Fatalf("TxIDsTaken for batch 2 = %v, %v; want only %s", taken, err, txid)
	}
	if taken, err := l.TxIDsTaken(ctx, ids[0], []string{txid}); err != nil || len(taken) != 0 {
		t.Fatalf("TxIDsTaken for the batch that holds it = %v, %v", taken, err)
	}
}

// TestBlockTerms: the terms sink records scheme and fee before the
// block; the first terms of a hash stay; CreditBlock refuses another
// scheme and records the terms it credited under.
func TestBlockTerms(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	if _, err := l.TermsBlockSink(payout.Terms{Scheme: "fpps"}); err == nil {
		t.Fatal("terms sink with an unknown scheme")
	}
	if _, err := l.TermsBlockSink(payout.Terms{Scheme: payout.PPS, FeeBPS: 10_001}); err == nil {
		t.Fatal("terms sink with a fee above 100 %")
	}
	pps, _ := l.TermsBlockSink(payout.Terms{Scheme: payout.PPS, FeeBPS: 100})
	prop, _ := l.TermsBlockSink(payout.Terms{Scheme: payout.PROP, FeeBPS: 0})
	hash := strings.Repeat("AB", 32)
	blk := record.Block{Time: time.Now(), Height: 7, Hash: hash, Reward: 1000, Address: "F", Accepted: true, Verdict: "accepted"}
	if err := pps.RecordBlock(ctx, blk); err != nil {
		t.Fatal(err)
	}
	if err := prop.RecordBlock(ctx, blk); err != nil { // a resubmission by another node
		t.Fatal(err)
	}
	bs, err := l.UnsettledBlocks(ctx)
	if err != nil || len(bs) != 1 || bs[0].Terms == nil || *bs[0].Terms != (payout.Terms{Scheme: payout.PPS, FeeBPS: 100}) {
		t.Fatalf("unsettled: %+v, %v", bs, err)
	}
	credit := []payout.Credit{{Address: "F", Kind: payout.KindShare, Amount: 1000}}
	if err := l.CreditBlock(ctx, bs[0].ID, payout.Terms{Scheme: payout.PROP}, credit); !errors.Is(err, payout.ErrSchemeMismatch) {
		t.Fatalf("credit under PROP of a PPS block: %v", err)
	}
	wantBalance(t, l, "F", 0, 0, 0)
	if err := l.CreditBlock(ctx, bs[0].ID, payout.Terms{Scheme: payout.PPS, FeeBPS: 100}, nil); err != nil {
		t.Fatal(err)
	}
	var scheme string
	var fee int
	if err := l.Pool().QueryRow(ctx, `SELECT scheme, fee_bps FROM blocks WHERE id = $1`, bs[0].ID).Scan(&scheme, &fee); err != nil ||
		scheme != "pps" || fee != 100 {
		t.Fatalf("block credited under %q %d (%v)", scheme, fee, err)
	}
	// A block recorded without terms (before 0004) has none.
	legacy := recordBlock(t, l, 8, time.Now(), 1000)
	if legacy.Terms != nil {
		t.Fatalf("block recorded without terms: %+v", legacy.Terms)
	}
	checkJournal(t, l)
}

// TestPPSCreditedOncePerBatch checks that PPS credits are committed with
// their share batch, and that replaying the batch credits nothing again.
func TestPPSCreditedOncePerBatch(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	b := NewBatcher(l, BatcherOptions{OnBatch: PPSCredits(payout.PPSValuer(100, 150))})
	now := time.Now()
	shares := []record.Share{ // docs/payouts.md example 6, plus an unknown network difficulty
		{Time: now, Address: "A", JobID: "j", Difficulty: 3, NetworkDifficulty: 7, Height: 600},
		{Time: now, Address: "A", JobID: "j", Difficulty: 3.5, NetworkDifficulty: 7, Height: 600},
		{Time: now, Address: "B", JobID: "j", Difficulty: 3, Height: 600},
	}
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	bt := batch{ID: newBatchID(now), Shares: shares}
	if ok, err := b.writeBatch(ctx, bt); err != nil || !ok {
		t.Fatalf("writeBatch = %v, %v", ok, err)
	}
	if ok, err := b.writeBatch(ctx, bt); err != nil || ok {
		t.Fatalf("replayed writeBatch = %v, %v; want skipped", ok, err)
	}
	wantBalance(t, l, "A", 0, 287_276_785, 0)
	wantBalance(t, l, "B", 0, 0, 0)
	checkJournal(t, l)
	var nd float64
	if err := l.Pool().QueryRow(ctx, `SELECT max(network_difficulty) FROM shares`).Scan(&nd); err != nil || nd != 7 {
		t.Fatalf("stored network difficulty = %v, %v", nd, err)
	}
}
