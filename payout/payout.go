package payout

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	// Unknown is a block whose submission had no clear answer (ledger
	// status 'unknown'): it is looked up in the chain by hash until it
	// is found there (then it is an accepted block like any other) or
	// the chain is OrphanDepth past it without it.
	Unknown bool
	// Terms are the scheme and fee the pool node that found the block
	// ran under, recorded with the block; nil for a block recorded
	// without them (by a pool older than migration 0004).
	Terms *Terms
}

// Terms are what a block was found under: they decide who is owed its
// reward. A SOLO block paid its finder in the coinbase and a PPS block
// paid its shares at acceptance, so crediting either again under PPLNS
// or PROP would pay twice.
type Terms struct {
	Scheme Scheme
	FeeBPS int
}

// ErrSchemeMismatch is returned when a block would be credited under a
// scheme other than the one it was found under.
var ErrSchemeMismatch = errors.New("payout: block found under another payout scheme")

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
	// Missing is set while the wallet reports the transaction of a sent
	// batch unknown or conflicted (Store.MarkMissing).
	Missing bool
}

// Payment batch states, as stored in payments.state.
const (
	StatePlanned   = "planned"
	StateSent      = "sent"
	StateConfirmed = "confirmed"
	StateFailed    = "failed" // the wallet provably sent nothing; items refunded
	// StateDropped is a sent batch whose transaction the wallet reported
	// conflicted or unknown for longer than Config.DropAfter. Its items
	// stay paid (the transaction might still confirm) and nothing is
	// resent: an operator decides (docs/payouts.md). It still becomes
	// confirmed if the transaction confirms after all.
	StateDropped = "dropped"
	// StateHeld is a planned batch the wallet refused for a cause that
	// sending it again would not change (WalletErrorKind
	// ErrKindWalletInvalidAmount: an invalid or duplicated address, an
	// invalid amount). Its items stay paid and its addresses are left out
	// of new batches, so it is not rebuilt and refused forever; an
	// operator fixes the cause and refunds it (docs/decisions.md).
	StateHeld = "held"
)

// Store is the ledger as the payout process needs it. Every method that
// changes money does it in one database transaction, journal included.
type Store interface {
	// LockPayouts takes a database-wide lock so that only one process
	// (pool node, `hashforge payout run`) runs payouts at a time; ok is
	// false when another holds it.
	LockPayouts(ctx context.Context) (release func(), ok bool, err error)
	// UnsettledBlocks returns accepted blocks still 'pending' and blocks
	// of unknown outcome ('unknown', Block.Unknown), oldest first.
	UnsettledBlocks(ctx context.Context) ([]Block, error)
	// ResolveUnknownBlock settles a block of unknown outcome: "pending"
	// when it was found in the main chain (it becomes accepted),
	// "orphaned" or "rejected" when the chain went on without it. It
	// does nothing to a block no longer 'unknown'.
	ResolveUnknownBlock(ctx context.Context, blockID int64, status string) error
	// PreviousBlock is the id of the pool's last accepted block before b
	// (its end starts b's PROP round); ok is false for the first.
	PreviousBlock(ctx context.Context, b Block) (id int64, ok bool, err error)
	// ShareWeights sums share difficulty per address over a window.
	ShareWeights(ctx context.Context, w Window) ([]Weight, error)
	// CreditBlock stores credits as immature and records the terms they
	// were computed under, unless the block already has credits (then it
	// does nothing: a second process got there first). It returns an
	// error wrapping ErrSchemeMismatch, and credits nothing, when the
	// block was found under another scheme.
	CreditBlock(ctx context.Context, blockID int64, terms Terms, credits []Credit) error
	// SetConfirmations records the block's confirmations.
	SetConfirmations(ctx context.Context, blockID, confirmations int64) error
	// MatureBlock marks the block confirmed and moves its credits from
	// immature to mature.
	MatureBlock(ctx context.Context, blockID, confirmations int64) error
	// OrphanBlock marks the block orphaned and reverts its credits.
	OrphanBlock(ctx context.Context, blockID int64) error

	// OpenBatches returns batches in state planned, sent or dropped,
	// oldest first.
	OpenBatches(ctx context.Context) ([]Batch, error)
	// PlanBatch writes a batch of every mature balance ≥ threshold (at most
	// maxItems, largest first; never two spellings of one address, never
	// an address of a held batch) as planned and debits the balances, in
	// one transaction. It returns nil when nothing is due, and an error when a
	// planned batch already exists.
	PlanBatch(ctx context.Context, batchID string, threshold int64, maxItems int) (*Batch, error)
	// MarkAttempt records, before sendmany is called, that it is about to
	// be, and returns the time it recorded (the batch's new LastAttempt).
	MarkAttempt(ctx context.Context, id int64) (time.Time, error)
	// TxIDsTaken returns which of txids are recorded for a batch other
	// than id: reconciliation must never give one transaction to two
	// batches.
	TxIDsTaken(ctx context.Context, id int64, txids []string) (map[string]bool, error)
	// MarkSent records the batch's txid.
	MarkSent(ctx context.Context, id int64, txid string) error
	// MarkConfirmed records that the batch's transaction (state sent or
	// dropped) is confirmed, and the network fee the wallet paid.
	MarkConfirmed(ctx context.Context, id int64, fee int64) error
	// FailBatch marks a planned batch failed and credits its items back
	// to mature.
	FailBatch(ctx context.Context, id int64, reason string) error
	// MarkMissing records that the wallet does not show a sent batch's
	// transaction in the main chain or mempool (unknown, or conflicted),
	// and returns for how long it has not (0 on the first report).
	MarkMissing(ctx context.Context, id int64) (time.Duration, error)
	// ClearMissing forgets an earlier MarkMissing: the wallet shows the
	// transaction again.
	ClearMissing(ctx context.Context, id int64) error
	// DropBatch marks a sent batch dropped with the reason. Its items
	// stay paid.
	DropBatch(ctx context.Context, id int64, reason string) error
	// HoldBatch marks a planned batch held with the reason. Its items
	// stay paid, and PlanBatch leaves its addresses out until an
	// operator refunds it.
	HoldBatch(ctx context.Context, id int64, reason string) error
}

// BlockState is where a block stands in the node's chain.
type BlockState struct {
	InMainChain   bool
	Confirmations int64 // 1 for the tip; meaningful when InMainChain
	TipHeight     int64
	// Known is whether the node has the block at all, in the main chain
	// or on a side chain.
	Known bool
	// NetworkDifficulty is the difficulty the block was mined at.
	NetworkDifficulty float64
}

// Chain answers where a block stands; payout/nodechain implements it with
// a pool/node.Client.
type Chain interface {
	BlockState(ctx context.Context, hash string, height int64) (BlockState, error)
}

// WalletTx is one transaction of the wallet's send history, grouped from
// listtransactions: what it paid to which address.
type WalletTx struct {
	TxID    string
	Time    time.Time
	Comment string
	Outputs map[string]int64 // address → satoshis sent there
	Fee     int64            // satoshis, when the wallet knows
	// Confirms is negative when the transaction conflicts with one in
	// the main chain (Bitcoin Core: -depth of the conflicting one).
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
	// Transaction returns a wallet transaction's confirmations and fee;
	// an error wrapping ErrTxNotFound when the wallet does not know it.
	Transaction(ctx context.Context, txid string) (WalletTx, error)
}

// ErrTxNotFound is the wallet saying it has no such transaction.
var ErrTxNotFound = errors.New("payout: wallet does not know the transaction")

// ErrWalletUnreachable marks an error where the wallet was never reached:
// the connection could not be made, so no request was sent.
var ErrWalletUnreachable = errors.New("wallet unreachable")

// IsUnreachable reports whether err proves the wallet was never reached:
// ErrWalletUnreachable, or a failure to dial (connection refused, no
// route, unknown host, dial timeout). A connection that broke or timed
// out after it was made is not one: the request may have been written
// and executed.
func IsUnreachable(err error) bool {
	if errors.Is(err, ErrWalletUnreachable) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
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

// Error kinds, the keys of Stats.ErrorsByKind (and of a metric's label).
const (
	ErrKindNode                 = "node"     // asking the node about a block failed
	ErrKindDatabase             = "database" // reading or writing the ledger failed
	ErrKindSchemeMismatch       = "scheme_mismatch"
	ErrKindCredit               = "credit" // computing a block's credits failed
	ErrKindWalletUnreachable    = "wallet_unreachable"
	ErrKindWalletUnknownOutcome = "wallet_unknown_outcome" // sendmany may or may not have run
	ErrKindWalletInsufficient   = "wallet_insufficient_funds"
	ErrKindWalletInvalidAmount  = "wallet_invalid_amount" // or address, or parameter: the batch is held
	ErrKindWalletFee            = "wallet_fee"
	ErrKindWalletLocked         = "wallet_locked"
	ErrKindWalletAuth           = "wallet_auth"
	ErrKindWalletRefused        = "wallet_refused" // any other refusal
	ErrKindWallet               = "wallet"         // a wallet read (history, confirmations) failed
	ErrKindTxDropped            = "tx_dropped"     // a sent batch's transaction was conflicted or dropped
)

// ErrorKinds lists every error kind, so a metric can show each at zero.
var ErrorKinds = []string{ErrKindNode, ErrKindDatabase, ErrKindSchemeMismatch, ErrKindCredit,
	ErrKindWalletUnreachable, ErrKindWalletUnknownOutcome, ErrKindWalletInsufficient, ErrKindWalletInvalidAmount,
	ErrKindWalletFee, ErrKindWalletLocked, ErrKindWalletAuth, ErrKindWalletRefused, ErrKindWallet, ErrKindTxDropped}

// WalletErrorKind classifies a sendmany error: unreachable, a refusal by
// its cause (Bitcoin Core and btcwallet error codes and messages), or an
// unknown outcome.
func WalletErrorKind(err error) string {
	if IsUnreachable(err) {
		return ErrKindWalletUnreachable
	}
	var we *WalletError
	if !errors.As(err, &we) {
		return ErrKindWalletUnknownOutcome
	}
	msg := strings.ToLower(we.Message)
	switch {
	case we.Code == 401 || we.Code == 403:
		return ErrKindWalletAuth
	case we.Code == -13 || we.Code == -14 || strings.Contains(msg, "passphrase") || strings.Contains(msg, "locked"):
		return ErrKindWalletLocked
	case strings.Contains(msg, "fee"):
		// Before insufficient funds: Core says "Insufficient funds"
		// for some fee failures too, but names the fee when it is one.
		return ErrKindWalletFee
	case we.Code == -6 || strings.Contains(msg, "insufficient funds"):
		return ErrKindWalletInsufficient
	case we.Code == -3 || we.Code == -5 || we.Code == -8 || strings.Contains(msg, "amount") || strings.Contains(msg, "address"):
		return ErrKindWalletInvalidAmount
	}
	return ErrKindWalletRefused
}
