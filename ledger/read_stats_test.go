package ledger

import (
	"testing"
	"time"

	"github.com/hashforge/hashforge/pool"
)

func TestShareCountSinceAndPaymentStates(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Now()
	shares := []pool.Share{
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
	if n, err := l.ShareCountSince(ctx, now.Add(-10*time.Minute)); err != nil || n != 2 {
		t.Errorf("ShareCountSince(10 min) = %d, %v; want 2", n, err)
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
