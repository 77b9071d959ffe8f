package ledger

import (
	"math"
	"testing"
	"time"

	"github.com/hashforge/hashforge/record"
)

func TestShareCountAndPaymentStates(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Now()
	shares := []record.Share{
		{Time: now.Add(-time.Minute), Address: "bcrt1qa", JobID: "j", Difficulty: 1, Height: 1},
		{Time: now.Add(-2 * time.Minute), Address: "bcrt1qa", JobID: "j", Difficulty: 1, Height: 1},
		{Time: now.Add(-time.Hour), Address: "bcrt1qa", JobID: "j", Difficulty: 1, Height: 1},
	}
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	if _, err := NewBatcher(l, BatcherOptions{}).writeBatch(ctx, batch{ID: newBatchID(now), Shares: shares}); err != nil {
		t.Fatal(err)
	}
	if w, err := l.PoolShareWindows(ctx, 10*time.Minute); err != nil || len(w) != 1 || w[0].Shares != 2 {
		t.Errorf("shares in the last 10 min = %+v, %v; want 2", w, err)
	}

	if c, err := l.PaymentStateCounts(ctx); err != nil || len(c) != 0 {
		t.Errorf("PaymentStateCounts on no payments = %v, %v", c, err)
	}
	if _, err := l.Pool().Exec(ctx, `INSERT INTO payments (batch_id, state, txid, total, items) VALUES
		('018f0000-0000-7000-8000-000000000001', 'confirmed', 'aa', 5, 1),
		('018f0000-0000-7000-8000-000000000002', 'confirmed', 'bb', 5, 1),
		('018f0000-0000-7000-8000-000000000003', 'failed', NULL, 5, 1)`); err != nil {
		t.Fatal(err)
	}
	c, err := l.PaymentStateCounts(ctx)
	if err != nil || len(c) != 2 || c["confirmed"] != 2 || c["failed"] != 1 {
		t.Errorf("PaymentStateCounts = %v, %v; want confirmed 2, failed 1", c, err)
	}
}

func TestPoolShareWindows(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Now()
	var shares []record.Share
	add := func(age time.Duration, diff float64) {
		shares = append(shares, record.Share{Time: now.Add(-age), Address: "bcrt1qa", JobID: "j", Difficulty: diff, Height: 1})
	}
	add(time.Minute, 2)    // in every window
	add(5*time.Minute, 4)  // in every window
	add(30*time.Minute, 8) // 1 h and 24 h
	add(2*time.Hour, 16)   // 24 h only
	add(25*time.Hour, 1e9) // in none
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	// An empty window is zero, not a division by zero.
	empty, err := l.poolShareWindows(ctx, now, []time.Duration{time.Minute})
	if err != nil || len(empty) != 1 || empty[0].Hashrate != 0 || empty[0].Shares != 0 {
		t.Errorf("empty ledger: %+v, %v", empty, err)
	}
	if _, err := NewBatcher(l, BatcherOptions{}).writeBatch(ctx, batch{ID: newBatchID(now), Shares: shares}); err != nil {
		t.Fatal(err)
	}
	windows := []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour}
	got, err := l.poolShareWindows(ctx, now, windows)
	if err != nil {
		t.Fatal(err)
	}
	wantShares := []int64{2, 3, 4}
	wantDiff := []float64{6, 14, 30}
	for i, w := range windows {
		want := wantDiff[i] * (1 << 32) / w.Seconds()
		if got[i].Window != w || got[i].Shares != wantShares[i] || math.Abs(got[i].Hashrate-want) > want*1e-12 {
			t.Errorf("window %v: %+v, want %d shares, hashrate %v", w, got[i], wantShares[i], want)
		}
	}

	if _, err := l.PoolShareWindows(ctx, 0); err == nil {
		t.Error("a zero window was accepted")
	}
	if out, err := l.PoolShareWindows(ctx); err != nil || out != nil {
		t.Errorf("no windows: %v, %v", out, err)
	}
}

// A pool whose first share is younger than a window is judged over the
// time since that share, not the whole window: a pool mining for a minute
// must not show a tenth of its hashrate in the 10-minute figure.
func TestPoolShareWindowsOfANewPool(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Now().Truncate(time.Microsecond) // PostgreSQL's precision
	var shares []record.Share
	for i := range 5 { // one share of difficulty 3 every 15 s for the last minute
		shares = append(shares, record.Share{Time: now.Add(-time.Duration(i) * 15 * time.Second), Address: "bcrt1qa",
			JobID: "j", Difficulty: 3, Height: 1})
	}
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	if _, err := NewBatcher(l, BatcherOptions{}).writeBatch(ctx, batch{ID: newBatchID(now), Shares: shares}); err != nil {
		t.Fatal(err)
	}
	got, err := l.poolShareWindows(ctx, now, []time.Duration{30 * time.Second, 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// 30 s: a full window (the pool is older): shares at 0, 15 and 30 s
	// ago are in it only when strictly younger, so 2 of them.
	if want := 2 * 3 * float64(1<<32) / 30; got[0].Shares != 2 || math.Abs(got[0].Hashrate-want) > want*1e-9 {
		t.Errorf("30 s window: %+v, want hashrate %v", got[0], want)
	}
	// 10 min: the pool began 60 s ago; four intervals of 15 s, each one
	// share of difficulty 3.
	if want := 4 * 3 * float64(1<<32) / 60; got[1].Shares != 5 || math.Abs(got[1].Hashrate-want) > want*1e-6 {
		t.Errorf("10 min window of a pool mining for 60 s: %+v, want hashrate %v", got[1], want)
	}
}
