package ledger

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/record"
)

// PPSValuer values a batch of shares in satoshis per address (see
// payout.PPSCredits); the ledger stays ignorant of the formula.
type PPSValuer func(shares []record.Share) (map[string]int64, error)

// PPSCredits returns a BatcherOptions.OnBatch hook that credits each
// committed share batch under PPS: one pps_credit journal row per address,
// straight to mature, in the batch's own transaction. The batch id is on
// each row and unique per address, so a replayed batch (already committed)
// can never be credited twice, and a batch that fails is not credited.
func PPSCredits(value PPSValuer) func(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) error {
	return func(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) error {
		credits, err := value(shares)
		if err != nil {
			return fmt.Errorf("value shares: %w", err)
		}
		addrs := make([]string, 0, len(credits))
		for a, v := range credits {
			if v < 0 {
				return fmt.Errorf("negative PPS credit %d for %s", v, a)
			}
			if v > 0 {
				addrs = append(addrs, a)
			}
		}
		slices.Sort(addrs)
		rows := make([]journalRow, len(addrs))
		for i, a := range addrs {
			rows[i] = journalRow{address: a, kind: "pps_credit", mature: credits[a], shareBatch: &batchID}
		}
		return applyJournal(ctx, tx, rows)
	}
}
