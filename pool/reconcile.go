package pool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
)

// ChainReader is what ReconcileBlocks asks the node. *node.Client
// implements it.
type ChainReader interface {
	GetBlockCount(ctx context.Context) (int64, error)
	GetBlockHash(ctx context.Context, height int64) (string, error)
	GetBlockCoinbase(ctx context.Context, hash string) (*node.BlockCoinbase, error)
}

// ChainScanStore is the ledger's side of ReconcileBlocks. *ledger.Ledger
// implements it.
type ChainScanStore interface {
	ChainScan(ctx context.Context) (height int64, hash string, ok bool, err error)
	SetChainScan(ctx context.Context, height int64, hash string) error
	HasBlock(ctx context.Context, hash string) (bool, error)
}

// ReconcileConfig says how to recognise the pool's own blocks in the chain.
type ReconcileConfig struct {
	// Tag is the pool's coinbase tag (Config.CoinbaseTag). When set, a
	// block whose coinbase scriptSig carries it is the pool's, whoever its
	// outputs pay (SOLO coinbases pay the finder).
	Tag string
	// PoolScript is the output script of the pool address: without a tag,
	// a coinbase paying it is the pool's.
	PoolScript []byte
	// PoolAddress is recorded as the finder of a block no journal knew.
	PoolAddress string
	// MaxDepth bounds how many blocks back a scan goes (default 1000).
	MaxDepth int64
	Logger   *slog.Logger
}

// reorgOverlap is how many blocks before the last checked height are
// checked again: a reorganisation may have put one of ours there since.
const reorgOverlap = 6

// ReconcileBlocks checks the node's chain, from where the last check ended
// (or the highest recorded block) to the tip, for blocks the pool found
// that the ledger does not have: found and accepted, then lost by a crash
// between the node's "accepted" and the record. Each is recorded through
// rec as accepted, found by the pool (its finder is unknown: the block
// journal, replayed before this runs, knew every block it could), and
// logged for the operator. It returns how many it recorded.
func ReconcileBlocks(ctx context.Context, chain ChainReader, store ChainScanStore, rec BlockSink, cfg ReconcileConfig) (int, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 1000
	}
	tag := []byte(cfg.Tag)
	if len(tag) > 16 {
		// The tag is cut to keep the scriptSig within 100 bytes; its
		// start is always there.
		tag = tag[:16]
	}
	if len(tag) == 0 && len(cfg.PoolScript) == 0 {
		return 0, fmt.Errorf("reconcile blocks: neither a coinbase tag nor a pool script to recognise the pool's blocks by")
	}
	tip, err := chain.GetBlockCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile blocks: %w", err)
	}
	last, _, ok, err := store.ChainScan(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile blocks: %w", err)
	}
	from := tip - cfg.MaxDepth + 1
	if ok && last-reorgOverlap+1 > from {
		from = last - reorgOverlap + 1
	}
	if ok && last-reorgOverlap+1 < from {
		log.Warn("chain check starts later than where the last one ended: blocks in between are not checked",
			"last_checked", last, "from", from, "max_depth", cfg.MaxDepth)
	}
	from = max(from, 1)
	var found, skipped int
	var tipHash string
	for h := from; h <= tip; h++ {
		hash, err := chain.GetBlockHash(ctx, h)
		if node.IsRPCError(err, node.CodeInvalidParameter) && h < tip {
			// A pruned or partial chain (a fixture) has no block
			// there: nothing of ours to find.
			skipped++
			continue
		}
		if err != nil {
			return found, fmt.Errorf("reconcile blocks: height %d: %w", h, err)
		}
		tipHash = hash
		cb, err := chain.GetBlockCoinbase(ctx, hash)
		if err != nil {
			return found, fmt.Errorf("reconcile blocks: height %d: %w", h, err)
		}
		if !isPoolCoinbase(cb, tag, cfg.PoolScript) {
			continue
		}
		known, err := store.HasBlock(ctx, hash)
		if err != nil {
			return found, fmt.Errorf("reconcile blocks: %w", err)
		}
		if known {
			continue
		}
		b := record.Block{
			Time:     time.Unix(cb.Time, 0),
			Height:   h,
			Hash:     hash,
			Reward:   cb.Value,
			Address:  cfg.PoolAddress,
			Accepted: true,
			Verdict:  "accepted (found in the chain at start; no record of who found it)",
		}
		if err := rec.RecordBlock(ctx, b); err != nil {
			return found, fmt.Errorf("reconcile blocks: record %s: %w", hash, err)
		}
		found++
		log.Warn("BLOCK FOUND IN THE CHAIN THAT THE LEDGER DID NOT HAVE: recorded as found by the pool (the process stopped before recording it and no journal knew its finder)",
			"height", h, "hash", hash, "reward_sat", cb.Value)
	}
	if tip >= from {
		if err := store.SetChainScan(ctx, tip, tipHash); err != nil {
			return found, fmt.Errorf("reconcile blocks: %w", err)
		}
	}
	log.Info("chain checked for the pool's blocks", "from", from, "to", tip, "recorded", found, "heights_the_node_lacks", skipped)
	return found, nil
}

func isPoolCoinbase(cb *node.BlockCoinbase, tag, poolScript []byte) bool {
	if len(tag) > 0 {
		return bytes.Contains(cb.ScriptSig, tag)
	}
	for _, o := range cb.Outputs {
		if bytes.Equal(o.PkScript, poolScript) {
			return true
		}
	}
	return false
}

// ReconcileConfig returns what ReconcileBlocks needs to recognise this
// pool's blocks: its coinbase tag, its payout script and address.
func (s *Server) ReconcileConfig() ReconcileConfig {
	return ReconcileConfig{Tag: s.cfg.CoinbaseTag, PoolScript: s.payout, PoolAddress: s.cfg.PoolAddress, Logger: s.log}
}
