package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/nodechain"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
)

// payoutConfig is the payout part of serve's flags, shared with
// `hashforge payout run`.
type payoutConfig struct {
	Scheme        string
	PPLNSWindow   float64
	FeeBPS        int
	FeeAddress    string
	Threshold     int64
	Interval      time.Duration
	Maturity      int64
	Confirmations int64
	DropAfter     time.Duration
	WalletURL     string
	WalletUser    string
	WalletPass    string
	WalletAccount string
}

func (c *payoutConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Scheme, "payout-scheme", "pplns", "reward scheme: pplns, pps, prop or solo (see docs/payouts.md)")
	fs.Float64Var(&c.PPLNSWindow, "pplns-window", payout.DefaultPPLNSWindow, "PPLNS window N as a multiple of the network difficulty")
	fs.IntVar(&c.FeeBPS, "pool-fee-bps", payout.DefaultFeeBPS, "pool fee in basis points (100 = 1%)")
	fs.StringVar(&c.FeeAddress, "fee-address", "", "address credited with the pool fee (serve: default --pool-address)")
	fs.Int64Var(&c.Threshold, "payout-threshold", payout.DefaultThreshold, "least mature balance paid, in satoshis")
	fs.DurationVar(&c.Interval, "payout-interval", payout.DefaultInterval, "how often serve checks blocks and sends payments (payout run ignores it, so serve and payout run can share one config)")
	fs.Int64Var(&c.Maturity, "coinbase-maturity", payout.DefaultMaturity, "confirmations before a block's credits are released")
	fs.Int64Var(&c.Confirmations, "payout-confirmations", payout.DefaultConfirmations, "confirmations before a payment is final")
	fs.DurationVar(&c.DropAfter, "payout-drop-after", payout.DefaultDropAfter, "how long a sent payment's transaction may be unknown to the wallet or conflicted before its batch is marked dropped (never resent automatically)")
	fs.StringVar(&c.WalletURL, "wallet-url", "", "JSON-RPC URL of the wallet that pays miners (empty: blocks are tracked, nothing is paid)")
	fs.StringVar(&c.WalletUser, "wallet-user", "", "wallet RPC user")
	fs.StringVar(&c.WalletPass, "wallet-pass", "", "wallet RPC password")
	fs.StringVar(&c.WalletAccount, "wallet-account", "", `sendmany's account: "" for Bitcoin Core, "default" for btcwallet`)
}

// setup builds the payout service (payout.Setup): the ledger as store,
// the node as chain, the wallet when one is configured. defaultFeeAddress
// (serve and payout run: --pool-address) receives the fee when
// --fee-address is not set. A zero payoutConfig is PPLNS without a fee.
//
// This is the one place the payout flags are parsed: everything else
// (serve's SOLO coinbases, PPS share credits, the terms blocks are
// recorded with) follows the service, built from the processor's Config.
func (c *payoutConfig) setup(led *ledger.Ledger, rpc *node.Client, params *chaincfg.Params, defaultFeeAddress string, log *slog.Logger) (*payout.Service, error) {
	if c.Scheme == "" {
		c.Scheme = string(payout.PPLNS)
	}
	scheme, err := payout.ParseScheme(c.Scheme)
	if err != nil {
		return nil, fmt.Errorf("--payout-scheme: %w", err)
	}
	if c.FeeAddress == "" {
		c.FeeAddress = defaultFeeAddress
	}
	if c.FeeAddress != "" {
		var err error
		if c.FeeAddress, err = pool.ParseAddress(c.FeeAddress, params); err != nil {
			return nil, fmt.Errorf("--fee-address: %w", err)
		}
	}
	var wallet payout.Wallet
	if c.WalletURL != "" {
		w, err := walletrpc.New(c.WalletURL, c.WalletUser, c.WalletPass, walletrpc.Options{Account: c.WalletAccount})
		if err != nil {
			return nil, fmt.Errorf("--wallet-url: %w", err)
		}
		wallet = w
	}
	return payout.Setup(payout.Config{
		Scheme:        scheme,
		PPLNSWindow:   c.PPLNSWindow,
		FeeBPS:        c.FeeBPS,
		NoFee:         c.FeeBPS == 0,
		FeeAddress:    c.FeeAddress,
		Threshold:     c.Threshold,
		Maturity:      c.Maturity,
		Confirmations: c.Confirmations,
		DropAfter:     c.DropAfter,
		Logger:        log,
	}, params.SubsidyReductionInterval, led, nodechain.Chain{Node: rpc}, wallet)
}

// ledgerHooks wires the payout service into the ledger: found blocks are
// recorded with its terms, and under PPS the share batcher credits each
// batch (onBatch, nil otherwise).
func ledgerHooks(s *payout.Service, led *ledger.Ledger) (blocks ledger.TermsSink, onBatch func(ctx context.Context, tx pgx.Tx, batchID string, shares []record.Share) error, err error) {
	if blocks, err = led.TermsBlockSink(s.Terms); err != nil {
		return ledger.TermsSink{}, nil, err
	}
	if s.ShareValuer != nil {
		onBatch = ledger.PPSCredits(s.ShareValuer)
	}
	return blocks, onBatch, nil
}

func cmdPayout(args []string) error {
	if len(args) == 0 || (args[0] != "run" && args[0] != "status" && args[0] != "refund") {
		fmt.Fprintf(os.Stderr, "usage: hashforge payout run|status|refund [flags]\n\n"+
			"  run     settle blocks (credit, mature, orphan) and send one payment batch, then exit\n"+
			"  status  show balances, pending blocks and payment batches\n"+
			"  refund  give a dropped or held batch's items back to the balances (docs/payouts.md)\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("want a subcommand: run, status or refund")
	}
	switch args[0] {
	case "status":
		return cmdPayoutStatus(args[1:])
	case "refund":
		return cmdPayoutRefund(args[1:])
	}
	var (
		pc                                                              payoutConfig
		network, dbURL, nodeURL, nodeUser, nodePass, level, poolAddress string
	)
	fs := newFlagSet("payout run", "[flags]")
	fs.StringVar(&network, "network", "mainnet", "chain: mainnet, testnet, signet, regtest or simnet")
	fs.StringVar(&poolAddress, "pool-address", "", "the pool's address: the default --fee-address, as in serve")
	fs.StringVar(&dbURL, "database-url", "", "PostgreSQL URL (required)")
	fs.StringVar(&nodeURL, "node-url", "http://127.0.0.1:8332", "JSON-RPC URL of a bitcoind-compatible node")
	fs.StringVar(&nodeUser, "node-user", "", "node RPC user")
	fs.StringVar(&nodePass, "node-pass", "", "node RPC password")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	pc.register(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	log, err := newLogger(level, false)
	if err != nil {
		return err
	}
	params, err := pool.ParseNetwork(network)
	if err != nil {
		return err
	}
	if poolAddress != "" {
		if poolAddress, err = pool.ParseAddress(poolAddress, params); err != nil {
			return fmt.Errorf("--pool-address: %w", err)
		}
	}
	rpc, err := node.New(nodeURL, nodeUser, nodePass)
	if err != nil {
		return err
	}
	return withLedger(dbURL, func(ctx context.Context, led *ledger.Ledger) error {
		if _, err := led.Migrate(ctx); err != nil {
			return err
		}
		svc, err := pc.setup(led, rpc, params, poolAddress, log)
		if err != nil {
			return err
		}
		p := svc.Processor
		err = p.RunOnce(ctx)
		st := p.Stats()
		log.Info("payout run done", "credited", st.BlocksCredited, "matured", st.BlocksMatured, "orphaned", st.BlocksOrphaned,
			"planned", st.BatchesPlanned, "sent", st.BatchesSent, "confirmed", st.BatchesConfirmed, "failed", st.BatchesFailed,
			"reconciled", st.BatchesReconciled, "dropped", st.BatchesDropped, "held", st.BatchesHeld)
		return err
	})
}

// cmdPayoutRefund is the operator's action on a dropped batch (see
// docs/payouts.md): after making sure its transaction can never confirm,
// the batch becomes failed and its items go back to mature.
func cmdPayoutRefund(args []string) error {
	fs := newFlagSet("payout refund", "--database-url URL --batch UUID [--note TEXT]")
	dbURL := fs.String("database-url", "", "PostgreSQL URL (required)")
	batch := fs.String("batch", "", "id (UUID) of the dropped or held batch to refund (required)")
	note := fs.String("note", "refunded by the operator", "added to the batch's reason")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch == "" {
		return errors.New("--batch is required")
	}
	return withLedger(*dbURL, func(ctx context.Context, led *ledger.Ledger) error {
		// Not while a payout run could be looking at the batch.
		release, ok, err := led.LockPayouts(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("a payout run is in progress; try again in a moment")
		}
		defer release()
		if err := led.RefundDropped(ctx, *batch, *note); err != nil {
			return err
		}
		fmt.Printf("batch %s refunded: its items are mature again and go out with the next batch\n", *batch)
		return nil
	})
}

func cmdPayoutStatus(args []string) error {
	fs := newFlagSet("payout status", "--database-url URL")
	dbURL := fs.String("database-url", "", "PostgreSQL URL (required)")
	limit := fs.Int("limit", 20, "rows per section")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withLedger(*dbURL, func(ctx context.Context, led *ledger.Ledger) error {
		return printPayoutStatus(ctx, os.Stdout, led, *limit)
	})
}

func printPayoutStatus(ctx context.Context, out io.Writer, led *ledger.Ledger, limit int) (err error) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	defer func() {
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
	}()
	bal, err := led.Balances(ctx, limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "BALANCES (satoshis)\t\t\t\t\n")
	fmt.Fprintf(w, "address\timmature\tmature\tpaid\t\n")
	for _, b := range bal {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t\n", b.Address, b.Immature, b.Mature, b.Paid)
	}
	blocks, err := led.UnsettledBlocks(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\t\t\t\t\t\nPENDING BLOCKS\t\t\t\t\t\n")
	fmt.Fprintf(w, "height\thash\treward\tscheme\tcredited\t\n")
	for i, b := range blocks {
		if i == limit {
			break
		}
		scheme := "?" // recorded before its terms were
		if b.Terms != nil {
			scheme = fmt.Sprintf("%s/%dbps", b.Terms.Scheme, b.Terms.FeeBPS)
		}
		credited := fmt.Sprint(b.Credited)
		if b.Unknown {
			credited = "unknown" // submission unanswered: the chain will tell
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t\n", b.Height, b.Hash, b.Reward, scheme, credited)
	}
	ps, err := led.Payments(ctx, limit, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\t\t\t\t\t\t\nPAYMENT BATCHES\t\t\t\t\t\t\n")
	fmt.Fprintf(w, "batch\tstate\titems\ttotal\tfee\ttxid / reason\t\n")
	for _, p := range ps {
		detail := p.TxID
		switch p.State {
		case payout.StateFailed:
			detail = p.Reason
		case payout.StateDropped:
			detail = p.TxID + " " + p.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t\n", p.BatchID, p.State, p.Items, p.Total, p.Fee, detail)
	}
	return nil
}
