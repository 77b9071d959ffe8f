package payout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scheme is how a pool shares its rewards between miners.
type Scheme string

// The reward schemes. See docs/payouts.md for the formulas.
const (
	PPLNS Scheme = "pplns" // the last N difficulty-weighted shares before a block
	PPS   Scheme = "pps"   // every share paid its expected value at acceptance
	PROP  Scheme = "prop"  // the shares of the round since the previous block
	SOLO  Scheme = "solo"  // the finder is paid in the coinbase itself
)

// ParseScheme parses a --payout-scheme value.
func ParseScheme(s string) (Scheme, error) {
	switch sc := Scheme(strings.ToLower(strings.TrimSpace(s))); sc {
	case PPLNS, PPS, PROP, SOLO:
		return sc, nil
	}
	return "", fmt.Errorf("payout: unknown scheme %q (want pplns, pps, prop or solo)", s)
}

// Block is a found block as the payout process sees it.
type Block struct {
	ID       int64
	Height   int64
	Hash     string
	Reward   int64 // coinbase value, satoshis
	Finder   string
	FoundAt  time.Time
	Credited bool // its credits are in accounts.immature
}

// Window selects the shares a block is split by: those after block
// AfterBlock's end (0: from the first share) up to block UntilBlock's end,
// newest first, until their difficulty reaches Limit (0 = no limit). The
// share that crosses Limit counts only with the part that fits, so a full
// window weighs exactly Limit.
//
// A block's end is the later of its found_at and the time of its own
// solving share: the pool stamps the share after submitblock returned, so
// the share that found the block counts for that block, not the next.
type Window struct {
	AfterBlock int64
	UntilBlock int64
	Limit      float64
}

// Item is one address's part of a payment batch.
type Item struct {
	Address string
	Amount  int64
}

// Batch is a payment batch.
type Batch struct {
	ID        int64
	BatchID   string // UUID; the idempotency marker
	State     string
	TxID      string
	Items     []Item
	CreatedAt time.Time
	// LastAttempt is when sendmany was last called for the batch; zero if
	// it never was.
	LastAttempt time.Time
}

// Payment batch states, as stored in payments.state.
const (
	StatePlanned   = "planned"
	StateSent      = "sent"
	StateConfirmed = "confirmed"
	StateFailed    = "failed"
)

// Store is the ledger as the payout process needs it. Every method that
// changes money does it in one database transaction, journal included.
type Store interface {
	// LockPayouts takes a database-wide lock so that only one process
	// (pool node, `hashforge payout run`) runs payouts at a time; ok is
	// false when another holds it.
	LockPayouts(ctx context.Context) (release func(), ok bool, err error)
	// UnsettledBlocks returns accepted blocks still 'pending', oldest first.
	UnsettledBlocks(ctx context.Context) ([]Block, error)
	// PreviousBlock is the id of the pool's last accepted block before b
	// (its end starts b's PROP round); ok is false for the first.
	PreviousBlock(ctx context.Context, b Block) (id int64, ok bool, err error)
	// ShareWeights sums share difficulty per address over a window.
	ShareWeights(ctx context.Context, w Window) ([]Weight, error)
	// CreditBlock stores credits as immature, unless the block already has
	// credits (then it does nothing: a second process got there first).
	CreditBlock(ctx context.Context, blockID int64, scheme Scheme, credits []Credit) error
	// SetConfirmations records the block's confirmations.
	SetConfirmations(ctx context.Context, blockID, confirmations int64) error
	// MatureBlock marks the block confirmed and moves its credits from
	// immature to mature.
	MatureBlock(ctx context.Context, blockID, confirmations int64) error
	// OrphanBlock marks the block orphaned and reverts its credits.
	OrphanBlock(ctx context.Context, blockID int64) error

	// OpenBatches returns batches in state planned or sent, oldest first.
	OpenBatches(ctx context.Context) ([]Batch, error)
	// PlanBatch writes a batch of every mature balance ≥ threshold (at most
	// maxItems, largest first) as planned and debits the balances, in one
	// transaction. It returns nil when nothing is due, and an error when a
	// planned batch already exists.
	PlanBatch(ctx context.Context, batchID string, threshold int64, maxItems int) (*Batch, error)
	// MarkAttempt records, before sendmany is called, that it is about to be.
	MarkAttempt(ctx context.Context, id int64) error
	// MarkSent records the batch's txid.
	MarkSent(ctx context.Context, id int64, txid string) error
	// MarkConfirmed records that the batch's transaction is confirmed, and
	// the network fee the wallet paid.
	MarkConfirmed(ctx context.Context, id int64, fee int64) error
	// FailBatch marks a planned batch failed and credits its items back
	// to mature.
	FailBatch(ctx context.Context, id int64, reason string) error
}

// BlockState is where a block stands in the node's chain.
type BlockState struct {
	InMainChain   bool
	Confirmations int64 // 1 for the tip; meaningful when InMainChain
	TipHeight     int64
	// NetworkDifficulty is the difficulty the block was mined at.
	NetworkDifficulty float64
}

// Chain answers where a block stands; pool/node.Client implements it via
// NodeChain.
type Chain interface {
	BlockState(ctx context.Context, hash string, height int64) (BlockState, error)
}

// WalletTx is one transaction of the wallet's send history, grouped from
// listtransactions: what it paid to which address.
type WalletTx struct {
	TxID     string
	Time     time.Time
	Comment  string
	Outputs  map[string]int64 // address → satoshis sent there
	Fee      int64            // satoshis, when the wallet knows
	Confirms int64
}

// Wallet is the pool's hot wallet (Bitcoin Core or btcwallet JSON-RPC).
type Wallet interface {
	// SendMany pays amounts (satoshis per address) in one transaction,
	// with comment as the wallet-side marker where the wallet stores one.
	SendMany(ctx context.Context, amounts map[string]int64, comment string) (txid string, err error)
	// RecentSends lists the wallet's outgoing transactions received at or
	// after since, newest first.
	RecentSends(ctx context.Context, since time.Time) ([]WalletTx, error)
	// Transaction returns a wallet transaction's confirmations and fee.
	Transaction(ctx context.Context, txid string) (WalletTx, error)
}

// WalletError is a refusal by the wallet (it answered, and said no), as
// opposed to not reaching it. Only a refusal proves nothing was sent.
type WalletError struct {
	Code    int
	Message string
}

func (e *WalletError) Error() string { return fmt.Sprintf("wallet error %d: %s", e.Code, e.Message) }

// IsRefusal reports whether err is the wallet refusing a request.
func IsRefusal(err error) bool {
	var we *WalletError
	return errors.As(err, &we)
}
