package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

// The ledger is the payout process's store.
var _ payout.Store = (*Ledger)(nil)

// journalRow is one movement of money in one account; see the journal
// table in migration 0002.
type journalRow struct {
	address                string
	kind                   string
	immature, mature, paid int64
	blockID, paymentID     *int64
	shareBatch             *string
	note                   string
}

// applyJournal appends rows to the journal and moves the accounts by the
// same amounts, inside tx. Accounts are updated in address order so that
// concurrent transactions lock them in one order and cannot deadlock. The
// accounts CHECKs (no bucket below zero) make an impossible movement fail
// the whole transaction.
func applyJournal(ctx context.Context, tx pgx.Tx, rows []journalRow) error {
	if len(rows) == 0 {
		return nil
	}
	type delta struct{ immature, mature, paid int64 }
	sums := map[string]*delta{}
	var (
		addrs, kinds, notes []string
		imm, mat, pd        []int64
		blocks, payments    []*int64
		batches             []*string
	)
	for _, r := range rows {
		addrs = append(addrs, r.address)
		kinds = append(kinds, r.kind)
		notes = append(notes, r.note)
		imm, mat, pd = append(imm, r.immature), append(mat, r.mature), append(pd, r.paid)
		blocks, payments, batches = append(blocks, r.blockID), append(payments, r.paymentID), append(batches, r.shareBatch)
		d := sums[r.address]
		if d == nil {
			d = &delta{}
			sums[r.address] = d
		}
		d.immature += r.immature
		d.mature += r.mature
		d.paid += r.paid
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO journal (address, kind, immature, mature, paid, block_id, payment_id, share_batch, note)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
		                     $6::bigint[], $7::bigint[], $8::uuid[], $9::text[])`,
		addrs, kinds, imm, mat, pd, blocks, payments, batches, notes); err != nil {
		return fmt.Errorf("append journal: %w", err)
	}
	keys := make([]string, 0, len(sums))
	for a := range sums {
		keys = append(keys, a)
	}
	slices.Sort(keys)
	var di, dm, dp []int64
	for _, a := range keys {
		d := sums[a]
		di, dm, dp = append(di, d.immature), append(dm, d.mature), append(dp, d.paid)
	}
	// Create missing rows first, then lock every row in address order,
	// then move them. A single INSERT ... ON CONFLICT DO UPDATE cannot
	// be used: the CHECKs judge the would-be inserted row (a negative
	// delta) before the conflict turns it into an update.
	if _, err := tx.Exec(ctx, `
		INSERT INTO accounts (address) SELECT unnest($1::text[])
		ON CONFLICT (address) DO NOTHING`, keys); err != nil {
		return fmt.Errorf("create accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		SELECT 1 FROM accounts WHERE address = ANY($1::text[]) ORDER BY address FOR UPDATE`, keys); err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE accounts AS a SET
			immature   = a.immature + d.immature,
			mature     = a.mature + d.mature,
			paid       = a.paid + d.paid,
			updated_at = now()
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(address, immature, mature, paid)
		WHERE a.address = d.address`,
		keys, di, dm, dp); err != nil {
		return fmt.Errorf("update accounts: %w", err)
	}
	return nil
}

// inTx runs f in a transaction, committing when it returns nil.
func (l *Ledger) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// TermsBlockSink returns the block sink (a pool.BlockSink) a pool node records found
// blocks through: it writes the payout terms the node runs under
// (block_terms, migration 0004) and then the block (RecordBlock). Terms
// first, so that no block is ever recorded without them; the first
// terms written for a hash stay. A failure to write the terms does not
// stop the block from being recorded: a block without terms is credited
// under the configured scheme (as before 0004), a lost block not at all.
func (l *Ledger) TermsBlockSink(terms payout.Terms) (TermsSink, error) {
	if _, err := payout.ParseScheme(string(terms.Scheme)); err != nil {
		return TermsSink{}, err
	}
	if terms.FeeBPS < 0 || terms.FeeBPS > payout.MaxFeeBPS {
		return TermsSink{}, fmt.Errorf("ledger: pool fee %d bps outside 0..%d", terms.FeeBPS, payout.MaxFeeBPS)
	}
	return TermsSink{l: l, terms: terms}, nil
}

// TermsSink records found blocks with the payout terms they were found
// under; see TermsBlockSink.
type TermsSink struct {
	l     *Ledger
	terms payout.Terms
}

// RecordBlock writes the terms, then the block.
func (s TermsSink) RecordBlock(ctx context.Context, b record.Block) error {
	_, terr := s.l.pool.Exec(ctx, `
		INSERT INTO block_terms (hash, scheme, fee_bps) VALUES ($1, $2, $3)
		ON CONFLICT (hash) DO NOTHING`, strings.ToLower(b.Hash), string(s.terms.Scheme), s.terms.FeeBPS)
	if terr != nil {
		terr = fmt.Errorf("record payout terms of block %s: %w", b.Hash, terr)
	}
	return errors.Join(terr, s.l.RecordBlock(ctx, b))
}

// UnsettledBlocks implements payout.Store.
func (l *Ledger) UnsettledBlocks(ctx context.Context) ([]payout.Block, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT b.id, b.height, b.hash, b.reward, b.finder_address, b.found_at, b.credited_at IS NOT NULL,
		       b.status = 'unknown', t.scheme, t.fee_bps
		FROM blocks b LEFT JOIN block_terms t ON t.hash = b.hash
		WHERE (b.status = 'pending' AND b.accepted) OR b.status = 'unknown'
		ORDER BY b.height, b.id`)
	if err != nil {
		return nil, fmt.Errorf("unsettled blocks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payout.Block, error) {
		var b payout.Block
		var scheme *string
		var fee *int
		err := r.Scan(&b.ID, &b.Height, &b.Hash, &b.Reward, &b.Finder, &b.FoundAt, &b.Credited, &b.Unknown, &scheme, &fee)
		if scheme != nil && fee != nil {
			b.Terms = &payout.Terms{Scheme: payout.Scheme(*scheme), FeeBPS: *fee}
		}
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("unsettled blocks: %w", err)
	}
	return out, nil
}

// ResolveUnknownBlock implements payout.Store. A block found in the main
// chain becomes accepted and 'pending', keeping the verdict the node gave
// at submission for the record.
func (l *Ledger) ResolveUnknownBlock(ctx context.Context, blockID int64, status string) error {
	var err error
	switch status {
	case "pending":
		_, err = l.pool.Exec(ctx, `
			UPDATE blocks SET status = 'pending', accepted = true
			WHERE id = $1 AND status = 'unknown'`, blockID)
	case "orphaned", "rejected":
		_, err = l.pool.Exec(ctx, `
			UPDATE blocks SET status = $2, settled_at = now()
			WHERE id = $1 AND status = 'unknown'`, blockID, status)
	default:
		err = fmt.Errorf("status %q is not an outcome", status)
	}
	if err != nil {
		return fmt.Errorf("resolve unknown block %d: %w", blockID, err)
	}
	return nil
}

// PreviousBlock implements payout.Store. Orphaned blocks count as round
// ends too: their shares were used up by finding them.
func (l *Ledger) PreviousBlock(ctx context.Context, b payout.Block) (int64, bool, error) {
	var id int64
	err := l.pool.QueryRow(ctx, `
		SELECT id FROM blocks
		WHERE accepted AND id <> $1 AND (found_at, id) < ($2, $1)
		ORDER BY found_at DESC, id DESC LIMIT 1`, b.ID, b.FoundAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("previous block: %w", err)
	}
	return id, true, nil
}

// blockEnd is the time a block's round ends: its found_at, or its own
// solving share's time when that is later (see payout.Window).
func blockEnd(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id int64) (time.Time, error) {
	var t time.Time
	err := q.QueryRow(ctx, `
		SELECT GREATEST(b.found_at,
		       (SELECT max(s.time) FROM shares s WHERE s.is_block AND s.block_hash = b.hash))
		FROM blocks b WHERE b.id = $1`, id).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("end of block %d: %w", id, err)
	}
	return t, nil
}

// ShareWeights implements payout.Store. Shares are read newest first in a
// fixed total order (time, then worker, session and job as tie-breakers),
// so a window's boundary and every float sum are reproducible; with a
// Limit it reads only as far back as the window reaches.
func (l *Ledger) ShareWeights(ctx context.Context, w payout.Window) ([]payout.Weight, error) {
	until, err := blockEnd(ctx, l.pool, w.UntilBlock)
	if err != nil {
		return nil, err
	}
	var after time.Time
	if w.AfterBlock != 0 {
		if after, err = blockEnd(ctx, l.pool, w.AfterBlock); err != nil {
			return nil, err
		}
	}
	rows, err := l.pool.Query(ctx, `
		SELECT wk.address, s.difficulty
		FROM shares s JOIN workers wk ON wk.id = s.worker_id
		WHERE s.time <= $1 AND ($2::timestamptz IS NULL OR s.time > $2) AND s.difficulty > 0
		ORDER BY s.time DESC, s.worker_id DESC, s.extranonce1 DESC NULLS LAST, s.job_id DESC,
		         s.actual_difficulty DESC`,
		until, nullTime(after))
	if err != nil {
		return nil, fmt.Errorf("share weights: %w", err)
	}
	defer rows.Close()
	sums := map[string]float64{}
	var acc float64
	for rows.Next() {
		var addr string
		var d float64
		if err := rows.Scan(&addr, &d); err != nil {
			return nil, fmt.Errorf("share weights: %w", err)
		}
		if w.Limit > 0 {
			d = min(d, w.Limit-acc)
		}
		sums[addr] += d
		acc += d
		if w.Limit > 0 && acc >= w.Limit {
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("share weights: %w", err)
	}
	out := make([]payout.Weight, 0, len(sums))
	for a, d := range sums {
		out = append(out, payout.Weight{Address: a, Difficulty: d})
	}
	slices.SortFunc(out, func(x, y payout.Weight) int { return cmp.Compare(x.Address, y.Address) })
	return out, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// CreditBlock implements payout.Store.
func (l *Ledger) CreditBlock(ctx context.Context, blockID int64, terms payout.Terms, credits []payout.Credit) error {
	var sum int64
	for _, c := range credits {
		if c.Amount < 0 {
			return fmt.Errorf("credit block %d: negative credit %d to %s", blockID, c.Amount, c.Address)
		}
		sum += c.Amount
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var reward int64
		err := tx.QueryRow(ctx, `
			UPDATE blocks b SET credited_at = now(), scheme = $2, fee_bps = $3
			WHERE b.id = $1 AND b.status = 'pending' AND b.credited_at IS NULL
			  AND NOT EXISTS (SELECT 1 FROM block_terms t WHERE t.hash = b.hash AND t.scheme <> $2)
			RETURNING b.reward`, blockID, string(terms.Scheme), terms.FeeBPS).Scan(&reward)
		if errors.Is(err, pgx.ErrNoRows) {
			// Credited (or settled) by another process already, or
			// found under another scheme.
			var other string
			err := tx.QueryRow(ctx, `
				SELECT t.scheme FROM blocks b JOIN block_terms t ON t.hash = b.hash
				WHERE b.id = $1 AND b.status = 'pending' AND b.credited_at IS NULL`, blockID).Scan(&other)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: found under %s, not %s", payout.ErrSchemeMismatch, other, terms.Scheme)
		}
		if err != nil {
			return err
		}
		if len(credits) > 0 && sum != reward {
			return fmt.Errorf("credits sum to %d sat, block reward is %d", sum, reward)
		}
		var (
			addrs, kinds []string
			amounts      []int64
			weights      []float64
			jr           []journalRow
		)
		for _, c := range credits {
			addrs, kinds = append(addrs, c.Address), append(kinds, c.Kind)
			amounts, weights = append(amounts, c.Amount), append(weights, c.Weight)
			if c.Amount > 0 {
				jr = append(jr, journalRow{address: c.Address, kind: "block_credit", immature: c.Amount,
					blockID: &blockID, note: c.Kind})
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO block_credits (block_id, address, kind, amount, weight)
			SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::float8[])`,
			blockID, addrs, kinds, amounts, weights); err != nil {
			return fmt.Errorf("insert block credits: %w", err)
		}
		return applyJournal(ctx, tx, jr)
	})
	if err != nil {
		return fmt.Errorf("credit block %d: %w", blockID, err)
	}
	return nil
}

// SetConfirmations implements payout.Store.
func (l *Ledger) SetConfirmations(ctx context.Context, blockID, confirmations int64) error {
	if _, err := l.pool.Exec(ctx,
		`UPDATE blocks SET confirmations = $2 WHERE id = $1 AND status = 'pending'`,
		blockID, confirmations); err != nil {
		return fmt.Errorf("set confirmations of block %d: %w", blockID, err)
	}
	return nil
}

// blockCreditSums returns a block's credits per address.
func blockCreditSums(ctx context.Context, tx pgx.Tx, blockID int64) (map[string]int64, error) {
	rows, err := tx.Query(ctx, `
		SELECT address, sum(amount)::bigint FROM block_credits
		WHERE block_id = $1 GROUP BY address`, blockID)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var a string
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&a, &v}, func() error { out[a] = v; return nil })
	return out, err
}

// MatureBlock implements payout.Store.
func (l *Ledger) MatureBlock(ctx context.Context, blockID, confirmations int64) error {
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE blocks SET status = 'confirmed', confirmations = $2, settled_at = now()
			WHERE id = $1 AND status = 'pending' AND credited_at IS NOT NULL`, blockID, confirmations)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return releaseBlockCredits(ctx, tx, blockID, "block_mature", true)
	})
	if err != nil {
		return fmt.Errorf("mature block %d: %w", blockID, err)
	}
	return nil
}

// OrphanBlock implements payout.Store. block_credits stays, for the audit
// trail; the journal records the reversal.
func (l *Ledger) OrphanBlock(ctx context.Context, blockID int64) error {
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var credited bool
		err := tx.QueryRow(ctx, `
			UPDATE blocks SET status = 'orphaned', settled_at = now()
			WHERE id = $1 AND status = 'pending'
			RETURNING credited_at IS NOT NULL`, blockID).Scan(&credited)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !credited) {
			return nil
		}
		if err != nil {
			return err
		}
		return releaseBlockCredits(ctx, tx, blockID, "block_orphan", false)
	})
	if err != nil {
		return fmt.Errorf("orphan block %d: %w", blockID, err)
	}
	return nil
}

// releaseBlockCredits journals a block's credits out of immature: into
// mature when the block matured, nowhere when it was orphaned.
func releaseBlockCredits(ctx context.Context, tx pgx.Tx, blockID int64, kind string, toMature bool) error {
	sums, err := blockCreditSums(ctx, tx, blockID)
	if err != nil {
		return err
	}
	var jr []journalRow
	for a, v := range sums {
		if v <= 0 {
			continue
		}
		r := journalRow{address: a, kind: kind, immature: -v, blockID: &blockID}
		if toMature {
			r.mature = v
		}
		jr = append(jr, r)
	}
	return applyJournal(ctx, tx, jr)
}

// OpenBatches implements payout.Store.
func (l *Ledger) OpenBatches(ctx context.Context) ([]payout.Batch, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT id, batch_id::text, state, COALESCE(txid, ''), created_at, last_attempt_at, missing_since IS NOT NULL
		FROM payments WHERE state IN ('planned', 'sent', 'dropped') ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("open batches: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (payout.Batch, error) {
		var b payout.Batch
		var last *time.Time
		err := r.Scan(&b.ID, &b.BatchID, &b.State, &b.TxID, &b.CreatedAt, &last, &b.Missing)
		if last != nil {
			b.LastAttempt = *last
		}
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("open batches: %w", err)
	}
	for i := range out {
		if out[i].Items, err = batchItems(ctx, l.pool, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchItems reads a batch's items, in a transaction or not.
func batchItems(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, id int64) ([]payout.Item, error) {
	rows, err := q.Query(ctx,
		`SELECT address, amount FROM payment_items WHERE payment_id = $1 ORDER BY address`, id)
	if err != nil {
		return nil, fmt.Errorf("items of payment %d: %w", id, err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[payout.Item])
	if err != nil {
		return nil, fmt.Errorf("items of payment %d: %w", id, err)
	}
	return items, nil
}

// ErrBatchOpen is returned by PlanBatch while another batch is planned.
var ErrBatchOpen = errors.New("a payment batch is already planned")

// PlanBatch implements payout.Store: the batch, its items and the debit of
// every paid balance are one transaction, so a batch exists exactly when
// its money has left the balances.
func (l *Ledger) PlanBatch(ctx context.Context, batchID string, threshold int64, maxItems int) (*payout.Batch, error) {
	if threshold <= 0 || maxItems <= 0 {
		return nil, fmt.Errorf("plan batch: threshold %d, max items %d", threshold, maxItems)
	}
	var b *payout.Batch
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		// Row locks: a PPS credit landing meanwhile waits, so the
		// amount read is the amount debited.
		// One item per address, whatever the database holds: accounts
		// whose addresses differ only in case (two spellings of one
		// bech32 address, from before migration 0007) never go out
		// together; the smaller waits for the next batch. Folding a
		// base58 pair that differs in case would only delay one of them.
		// Addresses of held batches wait for the operator (see HoldBatch).
		rows, err := tx.Query(ctx, `
			SELECT address, mature FROM (
				SELECT DISTINCT ON (lower(a.address)) a.address, a.mature
				FROM accounts a
				WHERE a.mature >= $1
				  AND lower(a.address) NOT IN (
					SELECT lower(i.address) FROM payments p JOIN payment_items i ON i.payment_id = p.id
					WHERE p.state = 'held')
				ORDER BY lower(a.address), a.mature DESC, a.address
			) d
			ORDER BY mature DESC, address
			LIMIT $2`, threshold, maxItems)
		if err != nil {
			return err
		}
		items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[payout.Item])
		if err != nil || len(items) == 0 {
			return err
		}
		addrs := make([]string, len(items))
		for i, it := range items {
			addrs[i] = it.Address
		}
		rows, err = tx.Query(ctx, `
			SELECT address, mature FROM accounts
			WHERE address = ANY($1::text[]) AND mature >= $2
			ORDER BY address
			FOR UPDATE`, addrs, threshold)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, pgx.RowToStructByPos[payout.Item])
		if err != nil || len(items) == 0 {
			return err
		}
		slices.SortFunc(items, func(x, y payout.Item) int { return cmp.Compare(x.Address, y.Address) })
		nb := &payout.Batch{BatchID: batchID, State: payout.StatePlanned, Items: items}
		var total int64
		addrs = make([]string, len(items))
		amounts := make([]int64, len(items))
		for i, it := range items {
			total += it.Amount
			addrs[i], amounts[i] = it.Address, it.Amount
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO payments (batch_id, state, total, items) VALUES ($1, 'planned', $2, $3)
			RETURNING id, created_at`, batchID, total, len(items)).Scan(&nb.ID, &nb.CreatedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.ConstraintName == "payments_one_planned_idx" {
			return ErrBatchOpen
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO payment_items (payment_id, address, amount)
			SELECT $1, * FROM unnest($2::text[], $3::bigint[])`, nb.ID, addrs, amounts); err != nil {
			return err
		}
		jr := make([]journalRow, len(items))
		for i, it := range items {
			jr[i] = journalRow{address: it.Address, kind: "payment", mature: -it.Amount, paid: it.Amount,
				paymentID: &nb.ID, note: batchID}
		}
		if err := applyJournal(ctx, tx, jr); err != nil {
			return err
		}
		b = nb
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plan batch: %w", err)
	}
	return b, nil
}

// MarkAttempt implements payout.Store.
func (l *Ledger) MarkAttempt(ctx context.Context, id int64) (time.Time, error) {
	var at time.Time
	err := l.pool.QueryRow(ctx, `
		UPDATE payments SET attempts = attempts + 1, last_attempt_at = now()
		WHERE id = $1 AND state = 'planned' RETURNING last_attempt_at`, id).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("mark attempt of payment %d: not planned", id)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("mark attempt of payment %d: %w", id, err)
	}
	return at, nil
}

// TxIDsTaken implements payout.Store.
func (l *Ledger) TxIDsTaken(ctx context.Context, id int64, txids []string) (map[string]bool, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT txid FROM payments WHERE txid = ANY($1::text[]) AND id <> $2`, txids, id)
	if err != nil {
		return nil, fmt.Errorf("txids of other payments: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("txids of other payments: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, t := range ids {
		out[t] = true
	}
	return out, nil
}

// MarkSent implements payout.Store. Recording the same txid twice is fine.
func (l *Ledger) MarkSent(ctx context.Context, id int64, txid string) error {
	tag, err := l.pool.Exec(ctx, `
		UPDATE payments SET state = 'sent', txid = $2, sent_at = now()
		WHERE id = $1 AND state = 'planned'`, id, txid)
	if err != nil {
		return fmt.Errorf("mark payment %d sent: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var state, have string
	if err := l.pool.QueryRow(ctx, `SELECT state, COALESCE(txid, '') FROM payments WHERE id = $1`, id).
		Scan(&state, &have); err != nil {
		return fmt.Errorf("mark payment %d sent: %w", id, err)
	}
	if have == txid {
		return nil
	}
	return fmt.Errorf("mark payment %d sent with tx %s: it is %s with tx %q", id, txid, state, have)
}

// MarkConfirmed implements payout.Store.
func (l *Ledger) MarkConfirmed(ctx context.Context, id int64, fee int64) error {
	if _, err := l.pool.Exec(ctx, `
		UPDATE payments SET state = 'confirmed', fee = $2, confirmed_at = now(), missing_since = NULL
		WHERE id = $1 AND state IN ('sent', 'dropped')`, id, max(fee, 0)); err != nil {
		return fmt.Errorf("mark payment %d confirmed: %w", id, err)
	}
	return nil
}

// MarkMissing implements payout.Store. The duration is measured on the
// database's clock, like the time it started.
func (l *Ledger) MarkMissing(ctx context.Context, id int64) (time.Duration, error) {
	var d time.Duration
	err := l.pool.QueryRow(ctx, `
		UPDATE payments SET missing_since = COALESCE(missing_since, now())
		WHERE id = $1 AND state = 'sent'
		RETURNING now() - missing_since`, id).Scan(&d)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("mark payment %d missing: not sent", id)
	}
	if err != nil {
		return 0, fmt.Errorf("mark payment %d missing: %w", id, err)
	}
	return d, nil
}

// ClearMissing implements payout.Store.
func (l *Ledger) ClearMissing(ctx context.Context, id int64) error {
	if _, err := l.pool.Exec(ctx, `UPDATE payments SET missing_since = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("clear payment %d missing: %w", id, err)
	}
	return nil
}

// DropBatch implements payout.Store. The items stay paid: no journal row.
func (l *Ledger) DropBatch(ctx context.Context, id int64, reason string) error {
	tag, err := l.pool.Exec(ctx, `
		UPDATE payments SET state = 'dropped', reason = $2
		WHERE id = $1 AND state = 'sent'`, id, cleanText(reason))
	if err != nil {
		return fmt.Errorf("drop payment %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("drop payment %d: not sent", id)
	}
	return nil
}

// FailBatch implements payout.Store: the batch's items go back to mature
// in the same transaction that marks it failed.
func (l *Ledger) FailBatch(ctx context.Context, id int64, reason string) error {
	if err := l.refund(ctx, id, payout.StatePlanned, reason); err != nil {
		return fmt.Errorf("fail payment %d: %w", id, err)
	}
	return nil
}

// HoldBatch implements payout.Store. The items stay paid: no journal
// row; PlanBatch leaves the batch's addresses out until an operator
// refunds it (RefundDropped).
func (l *Ledger) HoldBatch(ctx context.Context, id int64, reason string) error {
	tag, err := l.pool.Exec(ctx, `
		UPDATE payments SET state = 'held', reason = $2
		WHERE id = $1 AND state = 'planned'`, id, cleanText(reason))
	if err != nil {
		return fmt.Errorf("hold payment %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("hold payment %d: not planned", id)
	}
	return nil
}

// ErrNotDropped is returned by RefundDropped for a batch that is neither
// dropped nor held.
var ErrNotDropped = errors.New("the payment batch is neither dropped nor held")

// RefundDropped is the operator's decision on a dropped or held batch
// (see docs/payouts.md): a dropped batch's transaction will never
// confirm; a held batch's cause (the wallet's refusal) has been fixed.
// The batch becomes failed and its items go back to mature, to be paid by
// the next batch. batchID is the batch's UUID; note is added to its
// reason.
func (l *Ledger) RefundDropped(ctx context.Context, batchID, note string) error {
	var id int64
	var state string
	err := l.pool.QueryRow(ctx, `SELECT id, state FROM payments WHERE batch_id::text = lower($1)`, batchID).Scan(&id, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("refund payment batch %s: no such batch", batchID)
	}
	if err != nil {
		return fmt.Errorf("refund payment batch %s: %w", batchID, err)
	}
	from := payout.StateDropped
	if state == payout.StateHeld {
		from = payout.StateHeld
	}
	if err := l.refund(ctx, id, from, note); err != nil {
		return fmt.Errorf("refund payment batch %s: %w", batchID, err)
	}
	return nil
}

// refund moves a batch from state from to failed and its items back to
// mature, in one transaction. A non-empty reason replaces (planned) or
// is appended to (dropped) the batch's reason.
func (l *Ledger) refund(ctx context.Context, id int64, from, reason string) error {
	return l.inTx(ctx, func(tx pgx.Tx) error {
		var batchID string
		err := tx.QueryRow(ctx, `
			UPDATE payments SET state = 'failed', missing_since = NULL,
				reason = CASE WHEN reason = '' OR $2 = 'planned' THEN $3
				              WHEN $3 = '' THEN reason
				              ELSE reason || '; ' || $3 END
			WHERE id = $1 AND state = $2 RETURNING batch_id::text`, id, from, cleanText(reason)).Scan(&batchID)
		if errors.Is(err, pgx.ErrNoRows) {
			if from != payout.StatePlanned {
				return ErrNotDropped
			}
			return fmt.Errorf("not %s", from)
		}
		if err != nil {
			return err
		}
		items, err := batchItems(ctx, tx, id)
		if err != nil {
			return err
		}
		jr := make([]journalRow, len(items))
		for i, it := range items {
			jr[i] = journalRow{address: it.Address, kind: "refund", mature: it.Amount, paid: -it.Amount,
				paymentID: &id, note: batchID}
		}
		return applyJournal(ctx, tx, jr)
	})
}

// CheckJournal verifies that every account equals the sum of its journal
// rows, and returns the addresses that do not. An address without an
// account must have a journal summing to zero: a spelling migration 0007
// merged into its canonical one.
func (l *Ledger) CheckJournal(ctx context.Context) ([]string, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT COALESCE(a.address, j.address)
		FROM accounts a
		FULL JOIN (SELECT address, sum(immature) AS i, sum(mature) AS m, sum(paid) AS p
		           FROM journal GROUP BY address) j ON j.address = a.address
		WHERE j.address IS NULL
		   OR COALESCE(a.immature, 0) <> j.i OR COALESCE(a.mature, 0) <> j.m OR COALESCE(a.paid, 0) <> j.p
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("check journal: %w", err)
	}
	bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check journal: %w", err)
	}
	return bad, nil
}

// payoutLockKey is the advisory lock key of payout runs. Arbitrary, but it
// must never change, or old and new binaries could pay at the same time.
const payoutLockKey int64 = 0x6866706179 // "hfpay"

// LockPayouts implements payout.Store with a session-level advisory lock
// held on one pooled connection until release. If the connection dies the
// server drops the lock with it, so a crashed process never blocks payouts.
func (l *Ledger) LockPayouts(ctx context.Context) (func(), bool, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock payouts: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, payoutLockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("lock payouts: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(rctx, `SELECT pg_advisory_unlock($1)`, payoutLockKey); err != nil {
			// Do not hand a connection still holding the lock back to
			// the pool: close it, which releases the lock.
			_ = conn.Conn().Close(rctx)
		}
		conn.Release()
	}, true, nil
}
