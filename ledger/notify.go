package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
)

// blockChannel is the PostgreSQL NOTIFY channel pool nodes announce their
// blocks on.
const blockChannel = "hashforge_blocks"

// BlockNotice is a block a pool node found and its node accepted, as
// announced to the other nodes.
type BlockNotice struct {
	NodeID   int16  `json:"node_id"`
	Height   int64  `json:"height"`
	Hash     string `json:"hash"`      // display-order hex
	PrevHash string `json:"prev_hash"` // display-order hex
	Time     int64  `json:"time"`      // the header's timestamp, unix seconds
}

// AnnounceBlock tells every listening pool node of a block, at once (a
// NOTIFY outside any transaction is delivered as soon as it is sent).
func (l *Ledger) AnnounceBlock(ctx context.Context, n BlockNotice) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if _, err := l.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, blockChannel, string(b)); err != nil {
		return fmt.Errorf("ledger: announce block: %w", err)
	}
	return nil
}

// ListenBlocks calls fn with every block another pool node announces
// (notices of node self are skipped), until ctx ends. It holds one
// connection of the pool's, and gets another when that one fails.
func (l *Ledger) ListenBlocks(ctx context.Context, self int16, log *slog.Logger, fn func(BlockNotice)) {
	retry := backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		err := l.listenOnce(ctx, self, log, retry.Reset, fn)
		if ctx.Err() != nil {
			return
		}
		d := retry.Next()
		log.Warn("block announcements: listening failed; retrying", "err", err, "delay", d)
		if !backoff.Sleep(ctx, d) {
			return
		}
	}
}

func (l *Ledger) listenOnce(ctx context.Context, self int16, log *slog.Logger, ok func(), fn func(BlockNotice)) error {
	pooled, err := l.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that has LISTENed must not go back to the pool for
	// others: it leaves the pool and is closed here.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+blockChannel); err != nil {
		return err
	}
	ok()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var b BlockNotice
		if err := json.Unmarshal([]byte(n.Payload), &b); err != nil {
			log.Warn("block announcement not understood", "payload", n.Payload, "err", err)
			continue
		}
		if b.NodeID != self {
			fn(b)
		}
	}
}
