package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
)

// announceBlocks tells the other pool nodes of every block this node's
// node accepted, as soon as it did (docs/decisions.md, "Several pool
// nodes"), until ctx ends.
func announceBlocks(ctx context.Context, srv *pool.Server, led *ledger.Ledger, nodeID int16, log *slog.Logger) {
	sub := srv.Subscribe(64)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-sub.C:
			if ev.Kind != pool.EventBlock || ev.Block == nil || !ev.Block.Accepted {
				continue
			}
			n, ok := noticeOf(ev.Block.Height, ev.Block.Hash, ev.Block.Header)
			if !ok {
				continue
			}
			n.NodeID = nodeID
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := led.AnnounceBlock(actx, n); err != nil {
				log.Warn("cannot announce the block to the other pool nodes", "height", n.Height, "hash", n.Hash, "err", err)
			}
			cancel()
		}
	}
}

// noticeOf reads the previous block and the time from a block's header
// (80 bytes, hex).
func noticeOf(height int64, hash, header string) (ledger.BlockNotice, bool) {
	h, err := hex.DecodeString(header)
	if err != nil || len(h) != 80 {
		return ledger.BlockNotice{}, false
	}
	prev, err := chainhash.NewHash(h[4:36])
	if err != nil {
		return ledger.BlockNotice{}, false
	}
	return ledger.BlockNotice{Height: height, Hash: hash, PrevHash: prev.String(),
		Time: int64(binary.LittleEndian.Uint32(h[68:72]))}, true
}

// hearBlocks hands the blocks other pool nodes announce to this node's
// pool, which puts its miners on them at once.
func hearBlocks(ctx context.Context, srv *pool.Server, led *ledger.Ledger, nodeID int16, log *slog.Logger) {
	led.ListenBlocks(ctx, nodeID, log, func(n ledger.BlockNotice) {
		log.Info("another pool node found a block", "node_id", n.NodeID, "height", n.Height, "hash", n.Hash)
		srv.ExternalBlock(pool.AnnouncedBlock{Height: n.Height, Hash: n.Hash, PrevHash: n.PrevHash, Time: n.Time})
	})
}
