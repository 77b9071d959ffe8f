package payout_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/nodechain"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	url := devtest.Postgres(t)
	ctx := testCtx(t, time.Minute)
	l, err := ledger.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

func mustBalance(t *testing.T, l *ledger.Ledger, addr string, imm, mat, paid int64) {
	t.Helper()
	b, err := l.Balance(testCtx(t, time.Minute), addr)
	if err != nil {
		t.Fatal(err)
	}
	if b.Immature != imm || b.Mature != mat || b.Paid != paid {
		t.Fatalf("balance of %s = %+v, want immature %d mature %d paid %d", addr, b, imm, mat, paid)
	}
}

// coinbaseValue is a test block's coinbase value: blocks mined by
// generate on an empty mempool carry the subsidy alone.
// regtestChain is what the block life-cycle tests run on: a real btcd in
// regtest with a client for it, and a ledger.
func regtestChain(t *testing.T) (*devstack.Btcd, *ledger.Ledger, *node.Client, context.Context) {
	t.Helper()
	btcd := devtest.Btcd(t, devstack.BtcdOptions{})
	nc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return btcd, newLedger(t), nc, testCtx(t, 3*time.Minute)
}

// settlePROP makes the PROP processor (1 % fee to F) the block life-cycle
// tests use, and settles the recorded blocks once.
func settlePROP(ctx context.Context, t *testing.T, l *ledger.Ledger, nc *node.Client) *payout.Processor {
	t.Helper()
	p, err := payout.New(payout.Config{Scheme: payout.PROP, FeeBPS: 100, FeeAddress: "F"}, l, nodechain.Chain{Node: nc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// propCredits splits a reward as settlePROP does between A (difficulty 2)
// and B (difficulty 1) after the fee.
func propCredits(reward int64) (a, b, fee int64) {
	fee, _ = payout.PoolFee(reward, 100)
	cs, _ := payout.Split(reward-fee, []payout.Weight{{Address: "A", Difficulty: 2}, {Address: "B", Difficulty: 1}})
	return cs[0].Amount, cs[1].Amount, fee
}

// writeShares puts shares in the ledger through the real batcher, as the
// pool does, and returns once they are written.
func writeShares(ctx context.Context, t *testing.T, l *ledger.Ledger, shares ...record.Share) {
	t.Helper()
	sb := ledger.NewBatcher(l, ledger.BatcherOptions{FlushInterval: 10 * time.Millisecond})
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sb.Run(bctx) }()
	for _, sh := range shares {
		sb.AddShare(sh, nil)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func coinbaseValue(t *testing.T, ctx context.Context, c *node.Client, btcd *devstack.Btcd, hash string) int64 {
	t.Helper()
	info, err := c.GetBlockInfo(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Tx) != 1 {
		t.Fatalf("block %s has %d transactions, want the coinbase alone", hash, len(info.Tx))
	}
	return payout.Subsidy(info.Height, btcd.Params.SubsidyReductionInterval)
}

// TestMaturityAndOrphansOnRegtest runs the block life cycle against a real
// btcd: one block matures after 100 confirmations and releases its
// credits, another is invalidated, loses its place in the main chain to a
// longer branch and has its credits reverted.
func TestMaturityAndOrphansOnRegtest(t *testing.T) {
	btcd, l, nc, ctx := regtestChain(t)

	// Shares before the blocks: A twice B's work.
	start := time.Now().Add(-time.Minute)
	writeShares(ctx, t, l,
		record.Share{Time: start, Address: "A", JobID: "j", Difficulty: 2, Height: 2},
		record.Share{Time: start, Address: "B", JobID: "j", Difficulty: 1, Height: 2},
		record.Share{Time: start.Add(1500 * time.Millisecond), Address: "B", JobID: "j", Difficulty: 1, Height: 3})

	hashes, err := nc.Generate(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	keep, lose := hashes[0], hashes[1]
	for i, h := range hashes {
		info, err := nc.GetBlockInfo(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.RecordBlock(ctx, record.Block{Time: start.Add(time.Duration(i+1) * time.Second), Height: info.Height,
			Hash: h, Reward: coinbaseValue(t, ctx, nc, btcd, h), Address: "A", Accepted: true, Verdict: "accepted"}); err != nil {
			t.Fatal(err)
		}
	}
	reward := coinbaseValue(t, ctx, nc, btcd, keep)

	p := settlePROP(ctx, t, l, nc)
	// PROP: the first block takes the two shares before it, the second
	// the one share between them.
	a, b, fee := propCredits(reward)
	lr := coinbaseValue(t, ctx, nc, btcd, lose)
	lfee, _ := payout.PoolFee(lr, 100)
	mustBalance(t, l, "A", a, 0, 0)
	mustBalance(t, l, "B", b+lr-lfee, 0, 0)
	mustBalance(t, l, "F", fee+lfee, 0, 0)

	// Orphan the second block: invalidate it and mine a longer branch.
	if err := nc.Call(ctx, "invalidateblock", []any{lose}, nil); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	if _, err := nc.Generate(ctx, int(payout.DefaultOrphanDepth)+1); err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "B", b, 0, 0)
	mustBalance(t, l, "F", fee, 0, 0)

	// Mature the first: take it to 99 confirmations, then 100.
	tip, err := nc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keepInfo, err := nc.GetBlockInfo(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Generate(ctx, int(99-(tip-keepInfo.Height+1))); err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "A", a, 0, 0) // 99 confirmations: not yet
	if _, err := nc.Generate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "A", 0, a, 0)
	mustBalance(t, l, "B", 0, b, 0)
	mustBalance(t, l, "F", 0, fee, 0)

	blocks, err := l.RecentBlocks(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, bl := range blocks {
		got[bl.Hash] = bl.Status
	}
	if got[keep] != "confirmed" || got[lose] != "orphaned" {
		t.Fatalf("statuses = %v", got)
	}
	if bad, err := l.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("journal check: %v, %v", bad, err)
	}
	if st := p.Stats(); st.BlocksMatured != 1 || st.BlocksOrphaned != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestUnknownBlocksSettledByChain runs blocks whose submission had no clear
// answer against a real btcd: one the node did take (the answer was lost)
// is found in the main chain by its hash and then credited and matured
// exactly as an accepted block; one the node has only on a side chain
// ("inconclusive": a lost race) ends orphaned; one the node never saw stays
// unknown until the chain is OrphanDepth past it, then ends rejected.
func TestUnknownBlocksSettledByChain(t *testing.T) {
	btcd, l, nc, ctx := regtestChain(t)
	start := time.Now().Add(-time.Minute)
	writeShares(ctx, t, l,
		record.Share{Time: start, Address: "A", JobID: "j", Difficulty: 2, Height: 2},
		record.Share{Time: start, Address: "B", JobID: "j", Difficulty: 1, Height: 2})

	taken, err := nc.Generate(ctx, 1) // the node took it; its answer was lost
	if err != nil {
		t.Fatal(err)
	}
	side, err := nc.Generate(ctx, 1) // soon on a side chain
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Call(ctx, "invalidateblock", []any{side[0]}, nil); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	if _, err := nc.Generate(ctx, int(payout.DefaultOrphanDepth)+1); err != nil {
		t.Fatal(err)
	}
	info, err := nc.GetBlockInfo(ctx, taken[0])
	if err != nil {
		t.Fatal(err)
	}
	h := info.Height
	never := strings.Repeat("0", 8) + strings.Repeat("5a", 28) // a block the node never saw
	reward := coinbaseValue(t, ctx, nc, btcd, taken[0])
	for i, b := range []record.Block{
		{Height: h, Hash: taken[0], Verdict: "unknown: submitblock got no answer: context deadline exceeded (after 5 attempts)"},
		{Height: h + 1, Hash: side[0], Verdict: "inconclusive"},
		{Height: h + 2, Hash: never, Verdict: "unknown: submitblock got no answer: connection refused (after 5 attempts)"},
	} {
		b.Time, b.Reward, b.Address, b.Unknown = start.Add(time.Duration(i+1)*time.Second), reward, "A", true
		if err := l.RecordBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	statuses := func() map[string]ledger.BlockRow {
		blocks, err := l.RecentBlocks(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]ledger.BlockRow{}
		for _, b := range blocks {
			got[b.Hash] = b
		}
		return got
	}
	if st := statuses(); st[taken[0]].Status != "unknown" || st[side[0]].Status != "unknown" || st[never].Status != "unknown" {
		t.Fatalf("recorded as %+v, want every block unknown", st)
	}

	p := settlePROP(ctx, t, l, nc)
	a, b, fee := propCredits(reward)
	mustBalance(t, l, "A", a, 0, 0)
	mustBalance(t, l, "B", b, 0, 0)
	mustBalance(t, l, "F", fee, 0, 0)
	st := statuses()
	if r := st[taken[0]]; r.Status != "pending" || !r.Accepted || !strings.HasPrefix(r.Verdict, "unknown: ") {
		t.Errorf("block found in the chain: %+v, want pending and accepted, with its submission verdict kept", r)
	}
	if r := st[side[0]]; r.Status != "orphaned" || r.Accepted {
		t.Errorf("side-chain block: %+v, want orphaned", r)
	}
	if r := st[never]; r.Status != "unknown" {
		t.Errorf("block the node never saw, chain not yet %d past it: %+v, want still unknown", payout.DefaultOrphanDepth, r)
	}

	// One more block puts the chain OrphanDepth past the last one.
	if _, err := nc.Generate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	if r := statuses()[never]; r.Status != "rejected" || r.Accepted {
		t.Errorf("block the node never saw: %+v, want rejected", r)
	}

	// The found block matures at 100 confirmations like any other.
	tip, err := nc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Generate(ctx, int(100-(tip-h+1))); err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "A", 0, a, 0)
	mustBalance(t, l, "B", 0, b, 0)
	mustBalance(t, l, "F", 0, fee, 0)
	if r := statuses()[taken[0]]; r.Status != "confirmed" {
		t.Errorf("found block after 100 confirmations: %+v", r)
	}
	if bad, err := l.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("journal check: %v, %v", bad, err)
	}
	if s := p.Stats(); s.BlocksFoundInChain != 1 || s.BlocksOrphaned != 2 || s.BlocksCredited != 1 || s.BlocksMatured != 1 {
		t.Fatalf("stats = %+v", s)
	}
}
