package payout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/internal/uuidv7"
)

// Defaults for the zero values of Config.
const (
	DefaultPPLNSWindow    = 2.0
	DefaultFeeBPS         = 100
	DefaultThreshold      = 1_000_000 // 0.01 BTC
	DefaultMaturity       = 100
	DefaultConfirmations  = 6
	DefaultOrphanDepth    = 6
	DefaultMaxItems       = 500
	DefaultResendGrace    = 5 * time.Minute
	DefaultInterval       = 10 * time.Minute
	DefaultClockAllowance = 2 * time.Minute
	DefaultDropAfter      = 24 * time.Hour

	// MinThreshold keeps every payment item far above the dust limit of
	// any standard output at any sane relay fee (546 sat for P2PKH at
	// 1 sat/vB): a dust output makes the wallet refuse the whole batch.
	MinThreshold = 10_000
)

// Config configures a Processor.
type Config struct {
	Scheme Scheme
	// PPLNSWindow is N as a multiple of the network difficulty of the block.
	PPLNSWindow float64
	// FeeBPS is the pool fee in basis points (PPLNS, PROP; PPS applies it
	// to the share value), paid to FeeAddress (PPLNS, PROP).
	FeeBPS     int
	FeeAddress string
	// NoFee makes a zero FeeBPS mean no fee rather than the default.
	NoFee bool
	// Threshold is the least mature balance that is paid, in satoshis.
	Threshold int64
	// Maturity is the confirmations a coinbase needs before its credits
	// are released (100 on every Bitcoin network).
	Maturity int64
	// Confirmations a payment transaction needs to be 'confirmed'.
	Confirmations int64
	// OrphanDepth is how far the node's tip must be past a block that left
	// the main chain before it is declared orphaned: a block that comes
	// back in a short reorg must not have had its credits reverted.
	OrphanDepth int64
	// MaxItems caps the outputs of one sendmany.
	MaxItems int
	// ResendGrace is how long after a sendmany attempt whose outcome is
	// unknown the wallet's history is trusted to show it.
	ResendGrace time.Duration
	// ClockAllowance is how much earlier than a batch's last sendmany
	// attempt (database clock) reconciliation looks in the wallet's
	// history (wallet clock): the clocks of two hosts differ a little.
	ClockAllowance time.Duration
	// DropAfter is how long a sent batch's transaction may be unknown to
	// the wallet, or conflicted, before the batch is marked dropped.
	DropAfter time.Duration
	// CreditDelay lets the share batcher commit the last shares before a
	// block is credited (its flush interval is 200 ms; spooled shares
	// may take longer).
	CreditDelay time.Duration
	Logger      *slog.Logger

	// step, when set (tests), is called after each step of a payment and
	// may stop the run there, as a crash would.
	step func(step string, b *Batch) error
}

// Payment steps passed to the test hook.
const (
	stepPlanned = "planned" // batch written, balances debited
	stepSent    = "sent"    // sendmany returned a txid, not yet stored
	stepStored  = "stored"  // txid stored
)

// Stats is a snapshot of the processor's counters since it was made,
// for metrics (web reads it at scrape time).
type Stats struct {
	BlocksCredited uint64
	BlocksMatured  uint64
	BlocksOrphaned uint64 // orphaned, and unknown blocks that never made the main chain
	// BlocksFoundInChain counts blocks of unknown outcome found in the
	// main chain (from there on credited like any accepted block).
	BlocksFoundInChain uint64
	BatchesPlanned     uint64
	BatchesSent        uint64
	BatchesConfirmed   uint64
	BatchesFailed      uint64
	BatchesReconciled  uint64 // planned batches found already sent in the wallet
	BatchesDropped     uint64 // sent batches whose transaction was conflicted or dropped
	BatchesHeld        uint64 // planned batches the wallet refused as they are (StateHeld)
	Errors             uint64 // runs that ended in an error
	// ErrorsByKind counts every error met, by kind (the ErrKind
	// constants; ErrorKinds lists them all), including those that did
	// not make the run fail: a batch the wallet refused or could not be
	// reached for (failed and refunded), a dropped transaction.
	ErrorsByKind map[string]uint64
	LastError    string
	// LastRun is when the last run ended, LastSuccess when the last run
	// without an error did (zero: none yet).
	LastRun     time.Time
	LastSuccess time.Time
}

// Processor moves blocks through their life cycle and pays mature
// balances. Several processors (pool nodes) may share one database:
// every transition is a conditional update.
type Processor struct {
	cfg    Config
	store  Store
	chain  Chain
	wallet Wallet
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex // serialises runs of this processor
	smu   sync.Mutex
	stats Stats
}

// New checks cfg and applies defaults. wallet may be nil: then blocks are
// tracked and credited but nothing is paid.
func New(cfg Config, store Store, chain Chain, wallet Wallet) (*Processor, error) {
	if store == nil || chain == nil {
		return nil, errors.New("payout: store and chain are required")
	}
	if cfg.Scheme == "" {
		cfg.Scheme = PPLNS
	}
	sc, err := ParseScheme(string(cfg.Scheme))
	if err != nil {
		return nil, err
	}
	cfg.Scheme = sc // compared as constants from here on
	if cfg.PPLNSWindow == 0 {
		cfg.PPLNSWindow = DefaultPPLNSWindow
	}
	if !(cfg.PPLNSWindow > 0) || cfg.PPLNSWindow > 1e6 {
		return nil, fmt.Errorf("payout: PPLNS window %v", cfg.PPLNSWindow)
	}
	if cfg.FeeBPS == 0 && !cfg.NoFee {
		cfg.FeeBPS = DefaultFeeBPS
	}
	if cfg.FeeBPS < 0 || cfg.FeeBPS > MaxFeeBPS {
		return nil, fmt.Errorf("payout: pool fee %d bps outside 0..%d", cfg.FeeBPS, MaxFeeBPS)
	}
	if cfg.FeeBPS > 0 && cfg.FeeAddress == "" && (cfg.Scheme == PPLNS || cfg.Scheme == PROP) {
		return nil, errors.New("payout: a pool fee needs a fee address (or a fee of 0)")
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Threshold < MinThreshold || cfg.Threshold > MaxMoney {
		return nil, fmt.Errorf("payout: threshold %d sat outside %d..%d", cfg.Threshold, MinThreshold, int64(MaxMoney))
	}
	setDefault(&cfg.Maturity, DefaultMaturity)
	setDefault(&cfg.Confirmations, DefaultConfirmations)
	setDefault(&cfg.OrphanDepth, DefaultOrphanDepth)
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultMaxItems
	}
	if cfg.ResendGrace <= 0 {
		cfg.ResendGrace = DefaultResendGrace
	}
	if cfg.ClockAllowance <= 0 {
		cfg.ClockAllowance = DefaultClockAllowance
	}
	if cfg.DropAfter <= 0 {
		cfg.DropAfter = DefaultDropAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Processor{
		cfg: cfg, store: store, chain: chain, wallet: wallet,
		log: cfg.Logger.With("component", "payout"), now: time.Now,
		stats: Stats{ErrorsByKind: map[string]uint64{}},
	}, nil
}

// Config returns the processor's configuration with every default
// applied and the scheme parsed: what the rest of the pool must follow
// (serve builds SOLO coinbases and PPS share credits from it).
func (p *Processor) Config() Config {
	c := p.cfg
	c.step = nil
	return c
}

func setDefault(v *int64, d int64) {
	if *v <= 0 {
		*v = d
	}
}

// Stats returns a snapshot of the counters.
func (p *Processor) Stats() Stats {
	p.smu.Lock()
	defer p.smu.Unlock()
	s := p.stats
	s.ErrorsByKind = make(map[string]uint64, len(p.stats.ErrorsByKind))
	for k, v := range p.stats.ErrorsByKind {
		s.ErrorsByKind[k] = v
	}
	return s
}

func (p *Processor) count(f func(*Stats)) {
	p.smu.Lock()
	f(&p.stats)
	p.smu.Unlock()
}

// countKind counts an error of kind.
func (p *Processor) countKind(kind string) {
	p.count(func(s *Stats) { s.ErrorsByKind[kind]++ })
}

// countErr counts an error of kind and returns it.
func (p *Processor) countErr(kind string, err error) error {
	p.countKind(kind)
	return err
}

// Run runs RunOnce at once (reconciling whatever a previous process left)
// and then every interval until ctx ends. Errors are logged and counted;
// the next tick tries again.
func (p *Processor) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := p.RunOnce(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("payout run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce settles blocks, then pays: first it reconciles open batches
// with the wallet, then plans and sends one new batch if anything is due.
func (p *Processor) RunOnce(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	release, ok, err := p.store.LockPayouts(ctx)
	if err != nil {
		err = p.countErr(ErrKindDatabase, fmt.Errorf("payout: lock: %w", err))
		p.endRun(err)
		return err
	}
	if !ok {
		p.log.Info("another process is running payouts; skipping this run")
		return nil
	}
	defer release()
	err = p.settleBlocks(ctx)
	if p.wallet != nil {
		// A block that cannot be settled (a node hiccup, another
		// scheme's block) must not hold up the payment of mature
		// balances.
		err = errors.Join(err, p.pay(ctx))
	}
	p.endRun(err)
	return err
}

func (p *Processor) endRun(err error) {
	p.count(func(s *Stats) {
		s.LastRun = p.now()
		if err != nil {
			s.Errors++
			s.LastError = err.Error()
		} else {
			s.LastSuccess = s.LastRun
		}
	})
}

// SettleBlocks credits, matures and orphans blocks only.
func (p *Processor) SettleBlocks(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	release, ok, err := p.store.LockPayouts(ctx)
	if err != nil || !ok {
		return err
	}
	defer release()
	return p.settleBlocks(ctx)
}

func (p *Processor) settleBlocks(ctx context.Context) error {
	blocks, err := p.store.UnsettledBlocks(ctx)
	if err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: list unsettled blocks: %w", err))
	}
	var errs []error
	// A PROP round ends at the pool's previous accepted block, so while
	// an older block's outcome is unknown no later block is credited
	// under PROP: the unknown one may yet end its round.
	holdPROP := false
	for _, b := range blocks {
		unknown, err := p.settleBlock(ctx, b, holdPROP)
		if err != nil {
			errs = append(errs, fmt.Errorf("block %d %s: %w", b.Height, b.Hash, err))
		}
		holdPROP = holdPROP || unknown
	}
	return errors.Join(errs...)
}

// settleBlock moves one block on. It reports whether the block's outcome
// is still unknown afterwards (or could not be checked).
func (p *Processor) settleBlock(ctx context.Context, b Block, holdPROP bool) (unknown bool, err error) {
	st, err := p.chain.BlockState(ctx, b.Hash, b.Height)
	if err != nil {
		return b.Unknown, p.countErr(ErrKindNode, fmt.Errorf("ask node: %w", err))
	}
	log := p.log.With("height", b.Height, "hash", b.Hash)
	if b.Unknown {
		if resolved, err := p.resolveUnknown(ctx, b, st, log); err != nil || !resolved || !st.InMainChain {
			return !resolved, err
		}
		b.Unknown = false // found in the main chain: an accepted block from here on
	}
	return false, p.settleAccepted(ctx, b, st, log, holdPROP)
}

// resolveUnknown settles a block of unknown outcome once the chain says:
// found in the main chain, it becomes accepted ('pending'); absent while
// the tip is OrphanDepth past its height, it is orphaned when the node
// has it on a side chain, rejected when the node never took it.
func (p *Processor) resolveUnknown(ctx context.Context, b Block, st BlockState, log *slog.Logger) (bool, error) {
	status := ""
	switch {
	case st.InMainChain:
		status = "pending"
	case st.TipHeight < b.Height+p.cfg.OrphanDepth:
		log.Info("block of unknown outcome not in the main chain (yet); checking again next run",
			"tip", st.TipHeight, "known_to_node", st.Known, "orphan_depth", p.cfg.OrphanDepth)
		return false, nil
	case st.Known:
		status = "orphaned"
	default:
		status = "rejected"
	}
	if err := p.store.ResolveUnknownBlock(ctx, b.ID, status); err != nil {
		return false, p.countErr(ErrKindDatabase, fmt.Errorf("resolve unknown block: %w", err))
	}
	if status == "pending" {
		p.count(func(s *Stats) { s.BlocksFoundInChain++ })
		log.Info("block of unknown outcome found in the main chain; it counts as accepted", "confirmations", st.Confirmations)
		return true, nil
	}
	p.count(func(s *Stats) { s.BlocksOrphaned++ })
	log.Warn("block of unknown outcome never made the main chain", "status", status, "tip", st.TipHeight,
		"known_to_node", st.Known)
	return true, nil
}

// settleAccepted credits, matures or orphans an accepted block.
func (p *Processor) settleAccepted(ctx context.Context, b Block, st BlockState, log *slog.Logger, holdPROP bool) error {
	if !st.InMainChain {
		if st.TipHeight < b.Height+p.cfg.OrphanDepth {
			log.Warn("block is not in the main chain; waiting before declaring it orphaned",
				"tip", st.TipHeight, "orphan_depth", p.cfg.OrphanDepth)
			return nil
		}
		if err := p.store.OrphanBlock(ctx, b.ID); err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("orphan: %w", err))
		}
		p.count(func(s *Stats) { s.BlocksOrphaned++ })
		log.Warn("block orphaned; its credits are reverted", "tip", st.TipHeight)
		return nil
	}
	scheme := p.cfg.Scheme
	if b.Terms != nil {
		scheme = b.Terms.Scheme
	}
	if holdPROP && scheme == PROP && !b.Credited {
		log.Info("not crediting yet: an older block's outcome is unknown and may end this PROP round")
		return nil
	}
	if !b.Credited && p.now().Sub(b.FoundAt) >= p.cfg.CreditDelay {
		switch err := p.credit(ctx, b, st); {
		case err == nil:
			b.Credited = true
		case errors.Is(err, errNotCredited):
		default:
			return err
		}
	}
	if st.Confirmations >= p.cfg.Maturity {
		if !b.Credited {
			return nil // CreditDelay not over yet; matures next run
		}
		if err := p.store.MatureBlock(ctx, b.ID, st.Confirmations); err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("mature: %w", err))
		}
		p.count(func(s *Stats) { s.BlocksMatured++ })
		log.Info("block matured; credits released", "confirmations", st.Confirmations)
		return nil
	}
	if err := p.store.SetConfirmations(ctx, b.ID, st.Confirmations); err != nil {
		return p.countErr(ErrKindDatabase, err)
	}
	return nil
}

var errNotCredited = errors.New("payout: block not credited yet")

// credit computes and stores a block's credits under the scheme. PPS and
// SOLO blocks get none: under PPS the reward is the pool's (it already
// paid every share), under SOLO the coinbase paid the finder on chain.
//
// A block recorded with its terms is credited only under its own scheme
// (anything else could pay it twice), with the fee it was found under; a
// block recorded without them (before migration 0004) under the
// configured scheme and fee.
func (p *Processor) credit(ctx context.Context, b Block, st BlockState) error {
	terms := Terms{Scheme: p.cfg.Scheme, FeeBPS: p.cfg.FeeBPS}
	if b.Terms != nil {
		if b.Terms.Scheme != p.cfg.Scheme {
			return p.countErr(ErrKindSchemeMismatch, fmt.Errorf(
				"%w: found under %s, this process is configured for %s; not credited "+
					"(run `hashforge payout run --payout-scheme %s` to settle it, see docs/payouts.md)",
				ErrSchemeMismatch, b.Terms.Scheme, p.cfg.Scheme, b.Terms.Scheme))
		}
		if b.Terms.FeeBPS != p.cfg.FeeBPS {
			p.log.Info("block found under another pool fee; crediting it with the fee it was found under",
				"height", b.Height, "hash", b.Hash, "fee_bps", b.Terms.FeeBPS, "configured_fee_bps", p.cfg.FeeBPS)
		}
		terms.FeeBPS = b.Terms.FeeBPS
	}
	var credits []Credit
	switch terms.Scheme {
	case PPLNS, PROP:
		w := Window{UntilBlock: b.ID}
		if terms.Scheme == PPLNS {
			if !(st.NetworkDifficulty > 0) {
				return p.countErr(ErrKindNode, errors.New("node gave no network difficulty for the PPLNS window"))
			}
			w.Limit = p.cfg.PPLNSWindow * st.NetworkDifficulty
		} else {
			prev, ok, err := p.store.PreviousBlock(ctx, b)
			if err != nil {
				return p.countErr(ErrKindDatabase, fmt.Errorf("round start: %w", err))
			}
			if ok {
				w.AfterBlock = prev
			}
		}
		weights, err := p.store.ShareWeights(ctx, w)
		if err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("share weights: %w", err))
		}
		if terms.FeeBPS > 0 && p.cfg.FeeAddress == "" {
			return p.countErr(ErrKindCredit, fmt.Errorf("block found with a pool fee of %d bps, and no fee address is configured", terms.FeeBPS))
		}
		if credits, err = BlockCredits(b.Reward, terms.FeeBPS, p.cfg.FeeAddress, weights); errors.Is(err, ErrNoShares) {
			// Its shares may still be in a spool waiting for the
			// database; try again next run. Never guess who earned it.
			p.log.Warn("block has no shares in its window yet; not credited", "height", b.Height, "hash", b.Hash,
				"scheme", terms.Scheme)
			return errNotCredited
		} else if err != nil {
			return p.countErr(ErrKindCredit, err)
		}
	}
	if err := p.store.CreditBlock(ctx, b.ID, terms, credits); err != nil {
		if errors.Is(err, ErrSchemeMismatch) {
			return p.countErr(ErrKindSchemeMismatch, fmt.Errorf("store credits: %w", err))
		}
		return p.countErr(ErrKindDatabase, fmt.Errorf("store credits: %w", err))
	}
	p.count(func(s *Stats) { s.BlocksCredited++ })
	p.log.Info("block credited", "height", b.Height, "hash", b.Hash, "scheme", terms.Scheme, "fee_bps", terms.FeeBPS,
		"reward", b.Reward, "credits", len(credits))
	return nil
}

// pay reconciles open batches, then plans and sends a new one. A planned
// batch that cannot be resolved yet blocks new batches: PlanBatch refuses
// while one exists, so money is never in two unresolved batches.
func (p *Processor) pay(ctx context.Context) error {
	open, err := p.store.OpenBatches(ctx)
	if err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: list open batches: %w", err))
	}
	// A run that found a planned batch (a crash, a lost answer, another
	// node's batch in flight) only resolves it: the next run plans anew,
	// from balances that then reflect the outcome.
	recovering := false
	var errs []error
	for i := range open {
		b := &open[i]
		switch b.State {
		case StatePlanned:
			recovering = true
			if err := p.resolvePlanned(ctx, b); err != nil {
				return errors.Join(append(errs, err)...)
			}
		case StateSent, StateDropped:
			// One batch whose wallet transaction cannot be read must
			// not stop the others, nor new payments.
			if err := p.checkConfirmations(ctx, b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if recovering {
		return errors.Join(errs...)
	}
	b, err := p.store.PlanBatch(ctx, newBatchID(p.now()), p.cfg.Threshold, p.cfg.MaxItems)
	if err != nil {
		return errors.Join(append(errs, p.countErr(ErrKindDatabase, fmt.Errorf("payout: plan batch: %w", err)))...)
	}
	if b == nil {
		return errors.Join(errs...)
	}
	p.count(func(s *Stats) { s.BatchesPlanned++ })
	p.log.Info("payment batch planned", "batch", b.BatchID, "items", len(b.Items), "total", total(b.Items))
	if err := p.hook(stepPlanned, b); err != nil {
		return err
	}
	return errors.Join(append(errs, p.send(ctx, b))...)
}

func (p *Processor) hook(step string, b *Batch) error {
	if p.cfg.step == nil {
		return nil
	}
	return p.cfg.step(step, b)
}

// resolvePlanned settles a batch that was planned but is not known to be
// sent: sent, failed, sent again, or left waiting for the resend grace.
func (p *Processor) resolvePlanned(ctx context.Context, b *Batch) error {
	if b.LastAttempt.IsZero() {
		// Never handed to the wallet: the crash came between planning
		// and sendmany. Sending now is the first attempt.
		return p.send(ctx, b)
	}
	tx, found, err := p.findInWallet(ctx, b)
	if err != nil {
		return err
	}
	if found {
		return p.reconciled(ctx, b, p.log.With("batch", b.BatchID), tx.TxID, "payment batch found sent in the wallet; txid recorded")
	}
	if since := p.now().Sub(b.LastAttempt); since < p.cfg.ResendGrace {
		// A sendmany whose answer was lost may still be running in the
		// wallet; resending now could pay twice.
		p.log.Warn("payment batch attempted but not in the wallet yet; waiting before resending",
			"batch", b.BatchID, "since_attempt", since.Round(time.Second), "grace", p.cfg.ResendGrace)
		return nil
	}
	p.log.Warn("payment batch attempted but absent from the wallet; sending again", "batch", b.BatchID)
	return p.send(ctx, b)
}

// walletReadKind classifies a failed read of the wallet (history, one
// transaction) for the error metrics.
func walletReadKind(err error) string {
	if IsUnreachable(err) {
		return ErrKindWalletUnreachable
	}
	return ErrKindWallet
}

// reconciled records the txid of a batch found sent in the wallet's own
// history.
func (p *Processor) reconciled(ctx context.Context, b *Batch, log *slog.Logger, txid, msg string, args ...any) error {
	if err := p.store.MarkSent(ctx, b.ID, txid); err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: record txid of batch %s: %w", b.BatchID, err))
	}
	p.count(func(s *Stats) { s.BatchesReconciled++; s.BatchesSent++ })
	log.Warn(msg, append(args, "txid", txid)...)
	return nil
}

// findInWallet looks for the batch among the wallet's sends since its
// last sendmany attempt (less ClockAllowance for the two clocks): by
// comment where the wallet keeps one, else by its outputs (every item
// paid exactly its amount, in one transaction). A transaction already
// recorded for another batch is never taken: batches of the same
// amounts to the same addresses are common (a steady miner, a fixed
// threshold), and an older one's transaction is not this one's.
func (p *Processor) findInWallet(ctx context.Context, b *Batch) (WalletTx, bool, error) {
	since := b.LastAttempt
	if since.IsZero() {
		since = b.CreatedAt
	}
	txs, err := p.wallet.RecentSends(ctx, since.Add(-p.cfg.ClockAllowance))
	if err != nil {
		return WalletTx{}, false, p.countErr(walletReadKind(err), fmt.Errorf("payout: reconcile batch %s: wallet history: %w", b.BatchID, err))
	}
	var candidates []WalletTx
	for _, tx := range txs {
		if tx.Comment == b.BatchID || paysItems(tx, b.Items) {
			candidates = append(candidates, tx)
		}
	}
	if len(candidates) == 0 {
		return WalletTx{}, false, nil
	}
	ids := make([]string, len(candidates))
	for i, tx := range candidates {
		ids[i] = tx.TxID
	}
	taken, err := p.store.TxIDsTaken(ctx, b.ID, ids)
	if err != nil {
		return WalletTx{}, false, p.countErr(ErrKindDatabase, fmt.Errorf("payout: reconcile batch %s: %w", b.BatchID, err))
	}
	for _, tx := range candidates {
		if taken[tx.TxID] {
			p.log.Info("wallet transaction matching the batch belongs to another batch; skipped",
				"batch", b.BatchID, "txid", tx.TxID)
			continue
		}
		return tx, true, nil
	}
	return WalletTx{}, false, nil
}

func paysItems(tx WalletTx, items []Item) bool {
	if len(items) == 0 || len(tx.Outputs) < len(items) {
		return false
	}
	for _, it := range items {
		if tx.Outputs[it.Address] != it.Amount {
			return false
		}
	}
	return true
}

// send calls sendmany for a planned batch. When nothing can have been
// sent, the batch fails and its items return to the balances: the
// wallet refused (it answered no), or it could not be reached at all
// (the connection was never made). Anything else (a timeout or a
// connection lost after the request was written) leaves the batch
// planned with its attempt recorded, for reconciliation.
func (p *Processor) send(ctx context.Context, b *Batch) error {
	if a, ok := twice(b.Items); ok {
		// Bitcoin Core refuses such a batch (-8, duplicated address)
		// and btcwallet would pay the address twice: neither is asked.
		// The planner never builds one; an older pool may have.
		p.countKind(ErrKindWalletInvalidAmount)
		return p.hold(ctx, b, p.log.With("batch", b.BatchID), "address "+a+" is in the batch twice (two spellings)")
	}
	at, err := p.store.MarkAttempt(ctx, b.ID)
	if err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: record attempt of batch %s: %w", b.BatchID, err))
	}
	b.LastAttempt = at
	amounts := make(map[string]int64, len(b.Items))
	for _, it := range b.Items {
		amounts[it.Address] = it.Amount
	}
	log := p.log.With("batch", b.BatchID, "items", len(b.Items), "total", total(b.Items))
	txid, err := p.wallet.SendMany(ctx, amounts, b.BatchID)
	if err != nil {
		kind := WalletErrorKind(err)
		p.countKind(kind)
		switch {
		case kind == ErrKindWalletUnreachable:
			// The request never left: nothing to reconcile.
			return p.fail(ctx, b, log, "wallet unreachable: "+err.Error())
		case !IsRefusal(err):
			log.Error("sendmany outcome unknown; the batch stays planned for reconciliation", "err", err)
			return fmt.Errorf("payout: sendmany of batch %s: %w", b.BatchID, err)
		}
		// A wallet that built and stored the transaction but failed to
		// broadcast it may still answer with an error: only fail the
		// batch when the wallet's history has no trace of it.
		if tx, found, ferr := p.findInWallet(ctx, b); ferr != nil {
			return fmt.Errorf("payout: sendmany of batch %s refused (%v), and %w", b.BatchID, err, ferr)
		} else if found {
			return p.reconciled(ctx, b, log, tx.TxID, "sendmany answered an error but the wallet sent the batch; txid recorded", "err", err)
		}
		if kind == ErrKindWalletInvalidAmount {
			// Refunded, the same balances would make the same batch,
			// refused the same way, on every run.
			return p.hold(ctx, b, log, err.Error())
		}
		return p.fail(ctx, b, log, err.Error())
	}
	if err := p.hook(stepSent, b); err != nil {
		return err
	}
	if err := p.store.MarkSent(ctx, b.ID, txid); err != nil {
		// Reconciliation will find it by its outputs.
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: record txid %s of batch %s: %w", txid, b.BatchID, err))
	}
	b.State, b.TxID = StateSent, txid
	p.count(func(s *Stats) { s.BatchesSent++ })
	log.Info("payment batch sent", "txid", txid)
	return p.hook(stepStored, b)
}

// fail marks a batch that provably was not sent failed, refunding its
// items. The run goes on: the failure is in the batch, the logs and
// the metrics.
func (p *Processor) fail(ctx context.Context, b *Batch, log *slog.Logger, reason string) error {
	if err := p.store.FailBatch(ctx, b.ID, reason); err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: mark batch %s failed (%s): %w", b.BatchID, reason, err))
	}
	b.State = StateFailed
	p.count(func(s *Stats) { s.BatchesFailed++ })
	log.Error("payment batch failed; balances restored", "reason", reason)
	return nil
}

// hold marks a planned batch the wallet will not take as it is held: its
// items stay paid and its addresses out of new batches until an operator
// fixes the cause and refunds it. The run goes on.
func (p *Processor) hold(ctx context.Context, b *Batch, log *slog.Logger, reason string) error {
	if err := p.store.HoldBatch(ctx, b.ID, reason); err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: hold batch %s (%s): %w", b.BatchID, reason, err))
	}
	b.State = StateHeld
	p.count(func(s *Stats) { s.BatchesHeld++ })
	log.Error("payment batch held: the wallet refuses it as it is; its items stay paid and its addresses wait; "+
		"operator action needed (docs/decisions.md, \"Held batches\")", "reason", reason, "items", len(b.Items), "total", total(b.Items))
	return nil
}

// twice returns an address that is in items twice, spelled alike or in
// another case (bech32 is case-insensitive, so Core reads them as one).
func twice(items []Item) (string, bool) {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		k := strings.ToLower(it.Address)
		if seen[k] {
			return it.Address, true
		}
		seen[k] = true
	}
	return "", false
}

// checkConfirmations follows a sent (or dropped) batch's transaction. A
// transaction the wallet does not know, or reports conflicted (negative
// confirmations), for DropAfter makes the batch dropped: never resent
// automatically, since a conflicted transaction may be replaced by one
// that pays the same, and a "dropped" one may still be in some mempool.
func (p *Processor) checkConfirmations(ctx context.Context, b *Batch) error {
	log := p.log.With("batch", b.BatchID, "txid", b.TxID)
	tx, err := p.wallet.Transaction(ctx, b.TxID)
	missing := ""
	switch {
	case errors.Is(err, ErrTxNotFound):
		missing = "the wallet does not know the transaction"
	case err != nil:
		return p.countErr(walletReadKind(err), fmt.Errorf("payout: confirmations of batch %s tx %s: %w", b.BatchID, b.TxID, err))
	case tx.Confirms < 0:
		missing = fmt.Sprintf("the transaction conflicts with one %d blocks deep in the main chain", -tx.Confirms)
	}
	if missing != "" {
		if b.State == StateDropped {
			return nil // an operator's decision now
		}
		d, err := p.store.MarkMissing(ctx, b.ID)
		if err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("payout: batch %s: %w", b.BatchID, err))
		}
		if d < p.cfg.DropAfter {
			log.Warn("payment transaction missing from the wallet or conflicted", "why", missing,
				"for", d.Round(time.Second), "drop_after", p.cfg.DropAfter)
			return nil
		}
		reason := "conflicted/dropped: " + missing + " for " + d.Round(time.Second).String()
		if err := p.store.DropBatch(ctx, b.ID, reason); err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("payout: drop batch %s: %w", b.BatchID, err))
		}
		b.State = StateDropped
		p.countKind(ErrKindTxDropped)
		p.count(func(s *Stats) { s.BatchesDropped++ })
		log.Error("payment batch dropped: its items stay paid and nothing is resent; operator action needed "+
			"(docs/payouts.md, \"Dropped batches\")", "reason", reason, "items", len(b.Items), "total", total(b.Items))
		return nil
	}
	if b.Missing {
		if err := p.store.ClearMissing(ctx, b.ID); err != nil {
			return p.countErr(ErrKindDatabase, fmt.Errorf("payout: batch %s: %w", b.BatchID, err))
		}
		b.Missing = false
		log.Info("payment transaction is back in the wallet", "confirmations", tx.Confirms)
	}
	if tx.Confirms < p.cfg.Confirmations {
		return nil
	}
	if err := p.store.MarkConfirmed(ctx, b.ID, tx.Fee); err != nil {
		return p.countErr(ErrKindDatabase, fmt.Errorf("payout: confirm batch %s: %w", b.BatchID, err))
	}
	if b.State == StateDropped {
		log.Warn("dropped payment batch confirmed after all", "confirmations", tx.Confirms)
	}
	p.count(func(s *Stats) { s.BatchesConfirmed++ })
	log.Info("payment batch confirmed", "confirmations", tx.Confirms, "fee", tx.Fee)
	return nil
}

func total(items []Item) int64 {
	var t int64
	for _, it := range items {
		t += it.Amount
	}
	return t
}

// newBatchID is a UUIDv7: time-ordered like the share batch ids.
func newBatchID(now time.Time) string { return uuidv7.New(now).String() }
