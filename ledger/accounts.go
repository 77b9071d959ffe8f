package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Balance is one payout address's money, in satoshis.
type Balance struct {
	Address string
	// Immature is credited from blocks still waiting for coinbase maturity;
	// it becomes Mature when they mature, or disappears if they are orphaned.
	Immature int64
	// Mature is spendable and waits for the next payment batch.
	Mature int64
	// Paid is everything moved into payment batches: planned, sent,
	// confirmed or dropped (a failed batch moves its items back to
	// Mature).
	Paid int64
}

// Payment is one payment batch: one wallet sendmany.
type Payment struct {
	ID      int64
	BatchID string // UUID; also the sendmany comment
	State   string // "planned", "sent", "confirmed", "failed", "dropped" or "held"
	TxID    string // "" until sent
	Total   int64  // satoshis paid to miners
	Fee     int64  // network fee the pool paid, once known
	Items   int
	Reason  string // why it failed or was dropped
	// CreatedAt is when the batch was planned.
	CreatedAt   time.Time
	SentAt      *time.Time
	ConfirmedAt *time.Time
}

// PaymentItem is one address's part of a payment batch.
type PaymentItem struct {
	BatchID   string
	State     string // the batch's state
	TxID      string
	Address   string
	Amount    int64
	CreatedAt time.Time
}

// Balance returns the balance of address; an address the pool never
// credited has a zero Balance and no error.
func (l *Ledger) Balance(ctx context.Context, address string) (Balance, error) {
	b := Balance{Address: address}
	err := l.pool.QueryRow(ctx,
		`SELECT immature, mature, paid FROM accounts WHERE address = $1`, address).
		Scan(&b.Immature, &b.Mature, &b.Paid)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s: %w", address, err)
	}
	return b, nil
}

// Balances returns every account with money in it, largest total first
// (for `hashforge payout status`). limit is clamped like RecentBlocks'.
func (l *Ledger) Balances(ctx context.Context, limit int) ([]Balance, error) {
	limit = pageLimit(limit)
	rows, err := l.pool.Query(ctx, `
		SELECT address, immature, mature, paid FROM accounts
		ORDER BY immature + mature + paid DESC, address
		LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.Address, &b.Immature, &b.Mature, &b.Paid)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	return out, nil
}

const paymentColumns = `id, batch_id::text, state, COALESCE(txid, ''), total, fee, items, reason, created_at, sent_at, confirmed_at`

func scanPayment(r pgx.CollectableRow) (Payment, error) {
	var p Payment
	err := r.Scan(&p.ID, &p.BatchID, &p.State, &p.TxID, &p.Total, &p.Fee, &p.Items, &p.Reason,
		&p.CreatedAt, &p.SentAt, &p.ConfirmedAt)
	return p, err
}

// Payments returns payment batches, newest first. limit is clamped to
// 1..MaxPageSize (0 or less means 50) and a negative offset counts as 0.
func (l *Ledger) Payments(ctx context.Context, limit, offset int) ([]Payment, error) {
	limit = pageLimit(limit)
	offset = max(offset, 0)
	rows, err := l.pool.Query(ctx, `
		SELECT `+paymentColumns+` FROM payments
		ORDER BY created_at DESC, id DESC
		LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanPayment)
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	return out, nil
}

// PaymentsTo returns the payment items of address, newest first, failed
// batches included (their State says so). limit is clamped like Payments'.
func (l *Ledger) PaymentsTo(ctx context.Context, address string, limit int) ([]PaymentItem, error) {
	limit = pageLimit(limit)
	rows, err := l.pool.Query(ctx, `
		SELECT p.batch_id::text, p.state, COALESCE(p.txid, ''), i.address, i.amount, p.created_at
		FROM payment_items i JOIN payments p ON p.id = i.payment_id
		WHERE i.address = $1
		ORDER BY i.payment_id DESC
		LIMIT $2`, address, limit)
	if err != nil {
		return nil, fmt.Errorf("payments to %s: %w", address, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PaymentItem, error) {
		var it PaymentItem
		err := r.Scan(&it.BatchID, &it.State, &it.TxID, &it.Address, &it.Amount, &it.CreatedAt)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("payments to %s: %w", address, err)
	}
	return out, nil
}
