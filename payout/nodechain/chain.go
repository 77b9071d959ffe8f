// Package nodechain answers payout's chain questions (payout.Chain) from a
// bitcoind-compatible node over JSON-RPC (pool/node). It is apart from
// payout so that payout, and the ledger that stores its state, need none
// of the node client's dependencies.
package nodechain

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
)

// Chain answers BlockState from a bitcoind-compatible node.
type Chain struct{ Node *node.Client }

var _ payout.Chain = Chain{}

// BlockState decides main-chain membership by asking for the main chain's
// block at the block's height and comparing hashes. That works the same
// on Bitcoin Core and btcd, whereas getblock's confirmations for a side
// chain block differ between them (-1 or a positive count).
func (c Chain) BlockState(ctx context.Context, hash string, height int64) (payout.BlockState, error) {
	tip, err := c.Node.GetBlockCount(ctx)
	if err != nil {
		return payout.BlockState{}, fmt.Errorf("getblockcount: %w", err)
	}
	st := payout.BlockState{TipHeight: tip}
	inMain := false
	if height <= tip { // else a reorg to a shorter chain; not (yet) in it
		main, err := c.Node.GetBlockHash(ctx, height)
		if err != nil {
			return payout.BlockState{}, fmt.Errorf("getblockhash %d: %w", height, err)
		}
		inMain = strings.EqualFold(main, hash)
	}
	if !inMain {
		// Whether the node knows it on a side chain. getblockheader
		// without verbosity answers for any block in the node's index
		// (btcd's verbose forms fail for side-chain blocks).
		var header string
		err := c.Node.Call(ctx, "getblockheader", []any{hash, false}, &header)
		switch {
		case err == nil:
			st.Known = true
		case !node.IsRPCError(err, node.CodeBlockNotFound):
			return payout.BlockState{}, fmt.Errorf("getblockheader %s: %w", hash, err)
		}
		return st, nil
	}
	st.InMainChain, st.Known = true, true
	st.Confirmations = tip - height + 1
	info, err := c.Node.GetBlockInfo(ctx, hash)
	if err != nil {
		return payout.BlockState{}, fmt.Errorf("getblock %s: %w", hash, err)
	}
	t, err := pow.CompactToTarget(uint32(info.Bits))
	if err != nil {
		return payout.BlockState{}, fmt.Errorf("getblock %s: %w", hash, err)
	}
	st.NetworkDifficulty = pow.TargetToDifficulty(t)
	return st, nil
}
