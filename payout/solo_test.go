package payout_test

import (
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/nodechain"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
)

// TestSoloPaysFinderInCoinbase mines through a SOLO pool with two miners
// on a real node: each block's coinbase pays its finder the value less
// the fee, and the fee address the fee, and no balance is credited.
func TestSoloPaysFinderInCoinbase(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	l := newLedger(t)
	nc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	feeAddr, a, b := newSimnetAddress(t), newSimnetAddress(t), newSimnetAddress(t)
	addr := startPool(t, ctx, btcd, l, newSimnetAddress(t), func(c *pool.Config) {
		c.Solo, c.SoloFeeAddress = true, feeAddr
		c.SoloSplit = func(v int64) (int64, int64, error) { return payout.SoloCoinbase(v, 150) }
	})
	ma := dialMiner(t, ctx, addr, a+".x")
	mb := dialMiner(t, ctx, addr, b+".y")
	ja, jb := ma.job(ctx, ""), mb.job(ctx, "")
	if ja.Coinb2 == jb.Coinb2 || ja.Coinb1 != jb.Coinb1 || ja.JobID != jb.JobID {
		t.Fatalf("SOLO sessions must share the job and coinb1 and differ in coinb2:\n%+v\n%+v", ja, jb)
	}
	ma.mineBlock(ctx, ja)
	jb = mb.job(ctx, ja.PrevHash)
	ma.job(ctx, ja.PrevHash)
	mb.mineBlock(ctx, jb)

	tip, err := nc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fee, _ := payout.PoolFee(payout.Subsidy(tip, btcd.Params.SubsidyReductionInterval), 150)
	for i, want := range []string{a, b} {
		h := tip - 1 + int64(i)
		hash, err := nc.GetBlockHash(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var blk struct {
			RawTx []chainTx `json:"rawtx"`
		}
		if err := nc.GetBlock(ctx, hash, 2, &blk); err != nil || len(blk.RawTx) == 0 {
			t.Fatalf("getblock %s: %v", hash, err)
		}
		got := map[string]int64{}
		for _, o := range blk.RawTx[0].Vout {
			v, err := walletrpc.ParseBTC(string(o.Value))
			if err != nil {
				t.Fatal(err)
			}
			ad := o.ScriptPubKey.Address
			if ad == "" && len(o.ScriptPubKey.Addresses) == 1 {
				ad = o.ScriptPubKey.Addresses[0]
			}
			got[ad] += v
		}
		subsidy := payout.Subsidy(h, btcd.Params.SubsidyReductionInterval)
		if got[want] != subsidy-fee || got[feeAddr] != fee {
			t.Errorf("block %d coinbase pays %v; want %d to the finder %s and %d to the fee address", h, got, subsidy-fee, want, fee)
		}
	}

	// The payout process tracks SOLO blocks but credits nobody.
	var blocks int
	for deadline := time.Now().Add(20 * time.Second); blocks < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rb, err := l.RecentBlocks(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		blocks = len(rb)
	}
	p, err := payout.New(payout.Config{Scheme: payout.SOLO, FeeBPS: 150, FeeAddress: feeAddr}, l, nodechain.Chain{Node: nc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ad := range []string{a, b, feeAddr} {
		mustBalance(t, l, ad, 0, 0, 0)
	}
	if st := p.Stats(); st.BlocksCredited != 2 {
		t.Fatalf("stats %+v: want both blocks processed (with no credits)", st)
	}
}
