package ledger

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/record"
)

func TestRecordBlockUpsertsByHash(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	hash := strings.Repeat("0", 16) + strings.Repeat("ab", 24)
	found := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	if b, ok, err := l.NewestChainBlock(ctx); err != nil || ok {
		t.Fatalf("NewestChainBlock of an empty ledger = %+v, %v, %v", b, ok, err)
	}

	rejected := record.Block{Time: found, Height: 150, Hash: strings.ToUpper(hash), Reward: 312_500_000,
		Address: "bcrt1qfinder", Worker: "rig1", Accepted: false, Verdict: "rpc timeout"}
	if err := l.RecordBlock(ctx, rejected); err != nil {
		t.Fatalf("RecordBlock: %v", err)
	}
	accepted := rejected
	accepted.Time, accepted.Accepted, accepted.Verdict = found.Add(time.Second), true, "accepted"
	if err := l.RecordBlock(ctx, accepted); err != nil {
		t.Fatalf("RecordBlock again: %v", err)
	}
	// A later resubmission answered "duplicate" must not undo the accept.
	dup := accepted
	dup.Accepted, dup.Verdict = false, "duplicate"
	if err := l.RecordBlock(ctx, dup); err != nil {
		t.Fatalf("RecordBlock duplicate: %v", err)
	}
	other := record.Block{Time: found.Add(time.Minute), Height: 151, Hash: strings.Repeat("cd", 32), Reward: 1,
		Address: "bcrt1qother", Accepted: false, Verdict: "bad-txnmrklroot"}
	if err := l.RecordBlock(ctx, other); err != nil {
		t.Fatalf("RecordBlock other: %v", err)
	}

	got, err := l.RecentBlocks(ctx, 10, 0)
	if err != nil {
		t.Fatalf("RecentBlocks: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("RecentBlocks returned %d rows, want 2: %+v", len(got), got)
	}
	if got[0].Hash != other.Hash || got[0].Status != "rejected" || got[0].Accepted {
		t.Errorf("newest block = %+v, want the rejected %s", got[0], other.Hash)
	}
	b := got[1]
	if b.Hash != hash || !b.Accepted || b.Verdict != "accepted" || b.Status != "pending" ||
		b.Reward != 312_500_000 || b.Height != 150 || b.Address != "bcrt1qfinder" || b.Worker != "rig1" || !b.FoundAt.Equal(found) {
		t.Errorf("upserted block = %+v", b)
	}
	// The refused block at 151 is not in any chain: the accepted one is
	// the newest the node must still have.
	if nb, ok, err := l.NewestChainBlock(ctx); err != nil || !ok || nb != b {
		t.Errorf("NewestChainBlock = %+v, %v, %v; want %+v", nb, ok, err, b)
	}
	if page, err := l.RecentBlocks(ctx, 1, 1); err != nil || len(page) != 1 || page[0].Hash != hash {
		t.Errorf("RecentBlocks(1, 1) = %+v, %v", page, err)
	}

	for _, bad := range []record.Block{
		{Hash: "zz" + hash[2:], Address: "a"},
		{Hash: hash[:10], Address: "a"},
		{Hash: hash, Address: "a", Reward: -1},
	} {
		if err := l.RecordBlock(ctx, bad); err == nil {
			t.Errorf("RecordBlock(%+v): no error", bad)
		}
	}
}

// TestRecordUnknownBlock: a block with no clear answer from the node is
// 'unknown' and unsettled; a later acceptance makes it pending, a later
// refusal leaves it for the chain to settle, an unclear answer after a
// refusal makes it unknown again; resolving it settles it once.
func TestRecordUnknownBlock(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	found := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	status := func(hash string) BlockRow {
		t.Helper()
		got, err := l.RecentBlocks(ctx, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range got {
			if b.Hash == hash {
				return b
			}
		}
		t.Fatalf("block %s not recorded", hash)
		return BlockRow{}
	}
	put := func(b record.Block) {
		t.Helper()
		b.Time, b.Reward, b.Address = found, 1000, "bcrt1qfinder"
		if err := l.RecordBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	a, r, u := strings.Repeat("a1", 32), strings.Repeat("b2", 32), strings.Repeat("c3", 32)
	put(record.Block{Height: 1, Hash: a, Unknown: true, Verdict: "unknown: submitblock got no answer: timeout"})
	put(record.Block{Height: 2, Hash: r, Verdict: "high-hash"})
	put(record.Block{Height: 3, Hash: u, Unknown: true, Verdict: "inconclusive"})
	if b := status(a); b.Status != "unknown" || b.Accepted {
		t.Fatalf("unanswered block: %+v", b)
	}
	bs, err := l.UnsettledBlocks(ctx)
	if err != nil || len(bs) != 2 || !bs[0].Unknown || bs[0].Hash != a || !bs[1].Unknown || bs[1].Hash != u {
		t.Fatalf("unsettled: %+v, %v; want the two unknown blocks", bs, err)
	}

	put(record.Block{Height: 1, Hash: a, Accepted: true, Verdict: "accepted"})
	if b := status(a); b.Status != "pending" || !b.Accepted || b.Verdict != "accepted" {
		t.Errorf("unknown, then accepted: %+v", b)
	}
	put(record.Block{Height: 2, Hash: r, Unknown: true, Verdict: "inconclusive"})
	if b := status(r); b.Status != "unknown" {
		t.Errorf("rejected, then inconclusive: %+v", b)
	}
	put(record.Block{Height: 3, Hash: u, Verdict: "duplicate-invalid"})
	if b := status(u); b.Status != "unknown" {
		t.Errorf("unknown, then refused: %+v; want unknown, for the chain to settle", b)
	}

	ids := map[string]int64{}
	if bs, err = l.UnsettledBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		ids[b.Hash] = b.ID
	}
	if err := l.ResolveUnknownBlock(ctx, ids[u], "pending"); err != nil {
		t.Fatal(err)
	}
	if b := status(u); b.Status != "pending" || !b.Accepted {
		t.Errorf("resolved as found in the chain: %+v", b)
	}
	if err := l.ResolveUnknownBlock(ctx, ids[r], "orphaned"); err != nil {
		t.Fatal(err)
	}
	// Settled once: a second resolution of a block no longer unknown
	// changes nothing.
	if err := l.ResolveUnknownBlock(ctx, ids[r], "rejected"); err != nil {
		t.Fatal(err)
	}
	if b := status(r); b.Status != "orphaned" || b.Accepted {
		t.Errorf("resolved as orphaned: %+v", b)
	}
	if err := l.ResolveUnknownBlock(ctx, ids[a], "confirmed"); err == nil {
		t.Error("ResolveUnknownBlock accepted status confirmed")
	}
}

func TestPoolHashrateEmptyWindowIsZero(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	for _, w := range []time.Duration{time.Nanosecond, time.Minute, 24 * time.Hour} {
		h, err := l.PoolHashrate(ctx, w)
		if err != nil || h != 0 || math.IsNaN(h) || math.IsInf(h, 0) {
			t.Errorf("PoolHashrate(%v) on no shares = %v, %v; want 0", w, h, err)
		}
	}
	if _, err := l.PoolHashrate(ctx, 0); err == nil {
		t.Error("PoolHashrate(0): no error")
	}
	if n, err := l.ShareCount(ctx); err != nil || n != 0 {
		t.Errorf("ShareCount on no shares = %d, %v", n, err)
	}
}

func TestHashrateAndWorkers(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	now := time.Now()
	shares := []record.Share{
		{Time: now.Add(-time.Minute), Address: "bcrt1qa", Worker: "rig1", JobID: "1", Difficulty: 1000, Height: 1},
		{Time: now.Add(-2 * time.Minute), Address: "bcrt1qa", Worker: "rig1", JobID: "2", Difficulty: 500, Height: 1},
		{Time: now.Add(-3 * time.Minute), Address: "bcrt1qa", Worker: "rig2", JobID: "3", Difficulty: 250, Height: 1},
		{Time: now.Add(-time.Hour), Address: "bcrt1qa", Worker: "idle", JobID: "4", Difficulty: 9999, Height: 1},
		{Time: now.Add(-time.Minute), Address: "bcrt1qb", Worker: "", JobID: "5", Difficulty: 4000, Height: 1},
	}
	b := NewBatcher(l, BatcherOptions{})
	for i := range shares {
		sanitizeShare(&shares[i])
	}
	if _, err := b.writeBatch(ctx, batch{ID: newBatchID(now), Shares: shares}); err != nil {
		t.Fatalf("writeBatch: %v", err)
	}

	h, err := l.PoolHashrate(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := (1000.0 + 500 + 250 + 4000) * (1 << 32) / 600; math.Abs(h-want) > want*1e-9 {
		t.Errorf("PoolHashrate(10m) = %v, want %v", h, want)
	}

	ws, err := l.Workers(ctx, "bcrt1qa")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 || ws[0].Name != "idle" || ws[1].Name != "rig1" || ws[2].Name != "rig2" {
		t.Fatalf("Workers(bcrt1qa) = %+v, want idle, rig1, rig2", ws)
	}
	want := map[string]struct {
		rate   float64
		shares int64
	}{"idle": {0, 0}, "rig1": {1500.0 * (1 << 32) / 600, 2}, "rig2": {250.0 * (1 << 32) / 600, 1}}
	for _, w := range ws {
		if e := want[w.Name]; math.Abs(w.Hashrate-e.rate) > e.rate*1e-9 || w.Shares != e.shares || w.Address != "bcrt1qa" {
			t.Errorf("worker %s: %+v, want hashrate %v over %d shares", w.Name, w, e.rate, e.shares)
		}
	}
	if !ws[1].LastSeen.Equal(shares[0].Time) || !ws[1].FirstSeen.Equal(shares[1].Time) {
		t.Errorf("rig1 first/last seen = %v/%v, want %v/%v", ws[1].FirstSeen, ws[1].LastSeen, shares[1].Time, shares[0].Time)
	}
	if ws, err := l.Workers(ctx, "bcrt1qnobody"); err != nil || len(ws) != 0 {
		t.Errorf("Workers(unknown) = %+v, %v", ws, err)
	}
}
