package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
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
	fs.DurationVar(&c.Interval, "payout-interval", payout.DefaultInterval, "how often blocks are checked and payments sent")
	fs.Int64Var(&c.Maturity, "coinbase-maturity", payout.DefaultMaturity, "confirmations before a block's credits are released")
	fs.Int64Var(&c.Confirmations, "payout-confirmations", payout.DefaultConfirmations, "confirmations before a payment is final")
	fs.StringVar(&c.WalletURL, "wallet-url", "", "JSON-RPC URL of the wallet that pays miners (empty: blocks are tracked, nothing is paid)")
	fs.StringVar(&c.WalletUser, "wallet-user", "", "wallet RPC user")
	fs.StringVar(&c.WalletPass, "wallet-pass", "", "wallet RPC password")
	fs.StringVar(&c.WalletAccount, "wallet-account", "", `sendmany's account: "" for Bitcoin Core, "default" for btcwallet`)
}

// processor builds the payout processor: the ledger as store, the node as
// chain, the wallet when one is configured. defaultFeeAddress (serve: the
// pool address) receives the fee when --fee-address is not set. A zero
// payoutConfig is PPLNS without a fee.
func (c *payoutConfig) processor(led *ledger.Ledger, rpc *node.Client, params *chaincfg.Params, defaultFeeAddress string, log *slog.Logger) (*payout.Processor, error) {
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
		if _, err := pool.ParseUsername(c.FeeAddress, params); err != nil {
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
	return payout.New(payout.Config{
		Scheme:        scheme,
		PPLNSWindow:   c.PPLNSWindow,
		FeeBPS:        c.FeeBPS,
		NoFee:         c.FeeBPS == 0,
		FeeAddress:    c.FeeAddress,
		Threshold:     c.Threshold,
		Maturity:      c.Maturity,
		Confirmations: c.Confirmations,
		Logger:        log,
	}, led, payout.NodeChain{Node: rpc}, wallet)
}

func cmdPayout(args []string) error {
	if len(args) == 0 || (args[0] != "run" && args[0] != "status") {
		fmt.Fprintf(os.Stderr, "usage: hashforge payout run|status [flags]\n\n"+
			"  run     settle blocks (credit, mature, orphan) and send one payment batch, then exit\n"+
			"  status  show balances, pending blocks and payment batches\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("want a subcommand: run or status")
	}
	if args[0] == "status" {
		return cmdPayoutStatus(args[1:])
	}
	var (
		pc                                                 payoutConfig
		network, dbURL, nodeURL, nodeUser, nodePass, level string
	)
	fs := newFlagSet("payout run", "[flags]")
	fs.StringVar(&network, "network", "mainnet", "chain: mainnet, testnet, signet, regtest or simnet")
	fs.StringVar(&dbURL, "database-url", "", "PostgreSQL URL (required)")
	fs.StringVar(&nodeURL, "node-url", "http://127.0.0.1:8332", "JSON-RPC URL of a bitcoind-compatible node")
	fs.StringVar(&nodeUser, "node-user", "", "node RPC user")
	fs.StringVar(&nodePass, "node-pass", "", "node RPC password")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	pc.register(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if dbURL == "" {
		return errors.New("--database-url is required")
	}
	log, err := newLogger(level, false)
	if err != nil {
		return err
	}
	params, err := pool.ParseNetwork(network)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	led, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer led.Close()
	if _, err := led.Migrate(ctx); err != nil {
		return err
	}
	rpc, err := node.New(nodeURL, nodeUser, nodePass)
	if err != nil {
		return err
	}
	p, err := pc.processor(led, rpc, params, "", log)
	if err != nil {
		return err
	}
	err = p.RunOnce(ctx)
	st := p.Stats()
	log.Info("payout run done", "credited", st.BlocksCredited, "matured", st.BlocksMatured, "orphaned", st.BlocksOrphaned,
		"planned", st.BatchesPlanned, "sent", st.BatchesSent, "confirmed", st.BatchesConfirmed, "failed", st.BatchesFailed,
		"reconciled", st.BatchesReconciled)
	return err
}

func cmdPayoutStatus(args []string) error {
	fs := newFlagSet("payout status", "--database-url URL")
	dbURL := fs.String("database-url", "", "PostgreSQL URL (required)")
	limit := fs.Int("limit", 20, "rows per section")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("--database-url is required")
	}
	ctx, stop := signalContext()
	defer stop()
	led, err := ledger.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer led.Close()
	return printPayoutStatus(ctx, led, *limit)
}

func printPayoutStatus(ctx context.Context, led *ledger.Ledger, limit int) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	defer w.Flush()
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
	fmt.Fprintf(w, "\t\t\t\t\nPENDING BLOCKS\t\t\t\t\n")
	fmt.Fprintf(w, "height\thash\treward\tcredited\t\n")
	for i, b := range blocks {
		if i == limit {
			break
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%v\t\n", b.Height, b.Hash, b.Reward, b.Credited)
	}
	ps, err := led.Payments(ctx, limit, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\t\t\t\t\t\t\nPAYMENT BATCHES\t\t\t\t\t\t\n")
	fmt.Fprintf(w, "batch\tstate\titems\ttotal\tfee\ttxid / reason\t\n")
	for _, p := range ps {
		detail := p.TxID
		if p.State == payout.StateFailed {
			detail = p.Reason
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t\n", p.BatchID, p.State, p.Items, p.Total, p.Fee, detail)
	}
	return nil
}
