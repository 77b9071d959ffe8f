package pool

import (
	"context"
	"fmt"
	"testing"

	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/pool/node"
)

type fakeChain struct{ blocks []*node.BlockCoinbase } // index = height

func (c *fakeChain) GetBlockCount(context.Context) (int64, error) {
	return int64(len(c.blocks) - 1), nil
}
func (c *fakeChain) GetBlockHash(_ context.Context, h int64) (string, error) {
	return c.blocks[h].Hash, nil
}
func (c *fakeChain) GetBlockCoinbase(_ context.Context, hash string) (*node.BlockCoinbase, error) {
	for _, b := range c.blocks {
		if b.Hash == hash {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no block %s", hash)
}

type fakeScan struct {
	height int64
	ok     bool
	known  map[string]bool
	asked  []string
}

func (s *fakeScan) ChainScan(context.Context) (int64, string, bool, error) {
	return s.height, "", s.ok, nil
}
func (s *fakeScan) SetChainScan(_ context.Context, h int64, _ string) error {
	s.height, s.ok = h, true
	return nil
}
func (s *fakeScan) HasBlock(_ context.Context, hash string) (bool, error) {
	s.asked = append(s.asked, hash)
	return s.known[hash], nil
}

func TestReconcileBlocks(t *testing.T) {
	chain := &fakeChain{}
	for h := range 40 {
		sig := []byte{0x01, byte(h), 'o', 't', 'h', 'e', 'r'}
		if h%10 == 3 {
			sig = append([]byte{0x01, byte(h)}, "/hashforge-dev/ en1"...)
		}
		chain.blocks = append(chain.blocks, &node.BlockCoinbase{
			Hash: fmt.Sprintf("%064x", h), Time: int64(1_700_000_000 + h), ScriptSig: sig,
			Outputs: []*wire.TxOut{{Value: 50, PkScript: []byte{0x51}}}, Value: 50,
		})
	}
	scan := &fakeScan{known: map[string]bool{chain.blocks[13].Hash: true}}
	rec := &fakeBlocks{}
	cfg := ReconcileConfig{Tag: "/hashforge-dev/", PoolAddress: regtestAddr, MaxDepth: 30, Logger: quietLogger()}

	// First check: the last 30 blocks (10..39); ours are 13 (known), 23, 33.
	n, err := ReconcileBlocks(context.Background(), chain, scan, rec, cfg)
	if err != nil || n != 2 {
		t.Fatalf("first check: %d recorded, %v; want 2", n, err)
	}
	got := rec.wait(t, 2)
	if got[0].Height != 23 || got[1].Height != 33 || !got[0].Accepted || got[0].Address != regtestAddr || got[0].Reward != 50 {
		t.Fatalf("recorded %+v", got)
	}
	if scan.height != 39 {
		t.Fatalf("chain scan at %d, want 39", scan.height)
	}

	// The next start checks from a few blocks before the last check only.
	for h := 40; h < 45; h++ {
		chain.blocks = append(chain.blocks, &node.BlockCoinbase{Hash: fmt.Sprintf("%064x", h), ScriptSig: []byte("/hashforge-dev/")})
	}
	scan.known[got[0].Hash], scan.known[got[1].Hash] = true, true
	scan.asked = nil
	if n, err := ReconcileBlocks(context.Background(), chain, scan, rec, cfg); err != nil || n != 5 {
		t.Fatalf("second check: %d recorded, %v; want the 5 new ones", n, err)
	}
	if len(scan.asked) != 5 {
		t.Fatalf("second check asked about %d blocks of ours, want 5 (from height %d)", len(scan.asked), 39-reorgOverlap+1)
	}

	// Without a tag, the pool's output script decides.
	chain2 := &fakeChain{blocks: []*node.BlockCoinbase{
		{Hash: "g", Outputs: []*wire.TxOut{{PkScript: []byte{0x52}}}},
		{Hash: "a", Outputs: []*wire.TxOut{{PkScript: []byte{0x00, 0x14}}}, Value: 7},
		{Hash: "b", Outputs: []*wire.TxOut{{PkScript: []byte{0x53}}}},
	}}
	rec2 := &fakeBlocks{}
	if n, err := ReconcileBlocks(context.Background(), chain2, &fakeScan{}, rec2, ReconcileConfig{PoolScript: []byte{0x00, 0x14}, Logger: quietLogger()}); err != nil || n != 1 {
		t.Fatalf("by script: %d, %v", n, err)
	}
	if b := rec2.wait(t, 1)[0]; b.Hash != "a" || b.Reward != 7 {
		t.Fatalf("by script recorded %+v", b)
	}
}
