package ledger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/record"
)

// BlockRow is a found block as the dashboard and API show it.
type BlockRow struct {
	ID       int64
	Height   int64
	Hash     string // display-order lowercase hex
	Reward   int64  // satoshis
	Address  string // finder's payout address
	Worker   string
	Accepted bool
	Verdict  string
	Status   string // "pending", "rejected", "unknown", then the payout life cycle
	FoundAt  time.Time
}

// RecordBlock stores a block the pool submitted, keyed by its hash.
//
// A block the node accepted is 'pending', one it gave no clear answer for
// (record.Block.Unknown) 'unknown', for the payout process to look up in the
// chain, and one it refused 'rejected'.
//
// Recording the same hash again (a resubmission, a retry after a timeout)
// updates the row without ever downgrading it: once a node accepted the
// block, a later "duplicate" verdict does not make it rejected; an unknown
// block becomes pending when accepted and stays unknown (for the chain to
// settle) on a later refusal; a rejected one becomes unknown on an unclear
// answer; and a block the payout process has moved on keeps its status.
func (l *Ledger) RecordBlock(ctx context.Context, b record.Block) error {
	hash := strings.ToLower(b.Hash)
	if len(hash) != 64 {
		return fmt.Errorf("record block: hash %q is not 64 hex digits", b.Hash)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return fmt.Errorf("record block: hash %q is not 64 hex digits", b.Hash)
	}
	if b.Reward < 0 {
		return fmt.Errorf("record block %s: negative reward %d", hash, b.Reward)
	}
	found := b.Time
	if found.IsZero() {
		found = time.Now()
	}
	status := b.Status()
	_, err := l.pool.Exec(ctx, `
		INSERT INTO blocks (height, hash, reward, finder_address, finder_worker, accepted, verdict, found_at, status, node_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (hash) DO UPDATE SET
			accepted = blocks.accepted OR EXCLUDED.accepted,
			verdict  = CASE WHEN blocks.accepted THEN blocks.verdict ELSE EXCLUDED.verdict END,
			status   = CASE
				WHEN blocks.status IN ('rejected', 'unknown') AND EXCLUDED.accepted THEN 'pending'
				WHEN blocks.status = 'rejected' AND EXCLUDED.status = 'unknown' THEN 'unknown'
				ELSE blocks.status END,
			reward   = CASE WHEN blocks.accepted THEN blocks.reward ELSE EXCLUDED.reward END,
			found_at = LEAST(blocks.found_at, EXCLUDED.found_at)`,
		b.Height, hash, b.Reward, cleanText(b.Address), cleanText(b.Worker), b.Accepted, cleanText(b.Verdict), found, status, l.nodeID)
	if err != nil {
		return fmt.Errorf("record block %s: %w", hash, err)
	}
	return nil
}

// MaxPageSize caps limit in the paged read methods.
const MaxPageSize = 1000

// pageLimit clamps a page size to 1..MaxPageSize, 0 or less meaning 50.
func pageLimit(limit int) int {
	if limit <= 0 {
		return 50
	}
	return min(limit, MaxPageSize)
}

// RecentBlocks returns found blocks, newest first. limit is clamped to
// 1..MaxPageSize (0 or less means 50) and a negative offset counts as 0.
func (l *Ledger) RecentBlocks(ctx context.Context, limit, offset int) ([]BlockRow, error) {
	limit = pageLimit(limit)
	offset = max(offset, 0)
	rows, err := l.pool.Query(ctx, `
		SELECT `+blockColumns+` FROM blocks
		ORDER BY found_at DESC, id DESC
		LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("recent blocks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BlockRow, error) { return scanBlockRow(r) })
	if err != nil {
		return nil, fmt.Errorf("recent blocks: %w", err)
	}
	return out, nil
}

// NewestChainBlock returns the highest block the node accepted that the
// payout process has not found orphaned: the one that must still be in
// the node's chain at its height. ok is false when there is none.
func (l *Ledger) NewestChainBlock(ctx context.Context) (b BlockRow, ok bool, err error) {
	b, err = scanBlockRow(l.pool.QueryRow(ctx, `
		SELECT `+blockColumns+` FROM blocks
		WHERE accepted AND status NOT IN ('orphaned', 'rejected')
		ORDER BY height DESC, id DESC
		LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return BlockRow{}, false, nil
	}
	if err != nil {
		return BlockRow{}, false, fmt.Errorf("newest chain block: %w", err)
	}
	return b, true, nil
}

// blockColumns are the columns scanBlockRow reads, in its order.
const blockColumns = `id, height, hash, reward, finder_address, finder_worker, accepted, verdict, status, found_at`

func scanBlockRow(r pgx.Row) (BlockRow, error) {
	var b BlockRow
	err := r.Scan(&b.ID, &b.Height, &b.Hash, &b.Reward, &b.Address, &b.Worker, &b.Accepted, &b.Verdict, &b.Status, &b.FoundAt)
	return b, err
}

// HasBlock reports whether a block with this hash is recorded.
func (l *Ledger) HasBlock(ctx context.Context, hash string) (bool, error) {
	var ok bool
	err := l.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM blocks WHERE hash = $1)", strings.ToLower(hash)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("has block %s: %w", hash, err)
	}
	return ok, nil
}

// ChainScan returns how far the pool last checked the chain for its own
// blocks (name "blocks"): ok is false before the first check. Without a
// check on record it falls back to the highest recorded block.
func (l *Ledger) ChainScan(ctx context.Context) (height int64, hash string, ok bool, err error) {
	err = l.pool.QueryRow(ctx, "SELECT height, hash FROM chain_scan WHERE name = 'blocks'").Scan(&height, &hash)
	if err == nil {
		return height, hash, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, fmt.Errorf("chain scan: %w", err)
	}
	var h *int64
	if err := l.pool.QueryRow(ctx, "SELECT max(height) FROM blocks").Scan(&h); err != nil {
		return 0, "", false, fmt.Errorf("chain scan: %w", err)
	}
	if h == nil {
		return 0, "", false, nil
	}
	return *h, "", true, nil
}

// SetChainScan records that the chain was checked up to height.
func (l *Ledger) SetChainScan(ctx context.Context, height int64, hash string) error {
	_, err := l.pool.Exec(ctx, `
		INSERT INTO chain_scan (name, height, hash, updated_at) VALUES ('blocks', $1, $2, now())
		ON CONFLICT (name) DO UPDATE SET height = EXCLUDED.height, hash = EXCLUDED.hash, updated_at = now()`,
		height, strings.ToLower(hash))
	if err != nil {
		return fmt.Errorf("set chain scan: %w", err)
	}
	return nil
}
