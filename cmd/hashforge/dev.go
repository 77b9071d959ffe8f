package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/worker"
)

// devConfig is what `hashforge dev` is told on its command line.
type devConfig struct {
	DataDir        string
	StratumAddr    string
	HTTPAddr       string
	MinerThreads   int
	Fresh          bool
	PayoutInterval time.Duration
	LogLevel       string
}

func cmdDev(args []string) error {
	var cfg devConfig
	fs := newFlagSet("dev", "[flags]")
	fs.StringVar(&cfg.DataDir, "data-dir", ".hashforge-dev", "where the dev stack keeps its chain, wallet, database, keys and logs across restarts")
	fs.BoolVar(&cfg.Fresh, "fresh", false, "delete what --data-dir kept (chain, wallet, database, keys, ports) and start over")
	fs.StringVar(&cfg.StratumAddr, "stratum-addr", "127.0.0.1:3333", "Stratum listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "dashboard listen address")
	fs.IntVar(&cfg.MinerThreads, "miner-threads", 1, "threads of the bundled miner (0: no miner)")
	fs.DurationVar(&cfg.PayoutInterval, "payout-interval", 10*time.Second, "how often the pool settles blocks and sends payments")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, false)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return runDev(ctx, cfg, log, os.Stdout)
}

// Dev stack settings that are not flags (docs/decisions.md, "Dev stack").
const (
	devNetwork         = "simnet" // btcwallet has no regtest mode
	devDatabase        = "hashforge"
	devMaturity        = payout.DefaultMaturity + 1 // one block of slack for the wallet to see a coinbase mature
	devConfirmations   = 1
	devPayoutThreshold = payout.DefaultThreshold
)

// runDev runs the dev stack until ctx ends, printing the lines scripts
// read (stratum:, dashboard:, node-rpc:, database:, wallet:) to out.
func runDev(ctx context.Context, cfg devConfig, log *slog.Logger, out io.Writer) error {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDevDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	dl := log.With("component", "devstack")
	st, kept, err := loadDevState(dir)
	if err != nil {
		return err
	}
	switch {
	case cfg.Fresh:
		dl.Info("--fresh: deleting the chain, wallet, database and keys the dev stack kept", "dir", dir)
	case !kept:
		dl.Info("no dev stack state in the data dir: starting afresh", "dir", dir)
	}
	if cfg.Fresh || !kept {
		if err := clearDevData(ctx, dir, dl); err != nil {
			return err
		}
		st = devState{}
	}

	// Children are stopped with a context of their own: ctx is already
	// cancelled by the time we stop them after Ctrl-C. Deferred stops run
	// in reverse: wallet, node, database.
	stopChild := func(name string, stop func(context.Context) error) {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := stop(c); err != nil {
			log.Error("stop "+name, "err", err)
		}
	}

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{
		DataDir: filepath.Join(dir, "postgres"), PortHint: st.PostgresPort, Logger: dl})
	if err != nil {
		return err
	}
	defer stopChild("postgres", pg.Stop)
	dbURL, err := pg.CreateDatabase(ctx, devDatabase)
	if err != nil {
		return err
	}
	st.PostgresPort = pg.Port

	btcd, err := devstack.StartBtcd(ctx, devstack.BtcdOptions{
		Network: devNetwork, DataDir: filepath.Join(dir, "btcd"),
		PortHint: st.Node.Port, RPCUser: st.Node.User, RPCPass: st.Node.Pass,
		// Blocks devstack mines itself (a stale tip's) pay the wallet
		// once it has an address: more for it to pay fees from. On the
		// first start btcd generates an address, whose key is kept for
		// the bundled miner to mine to.
		MiningAddr: st.PoolAddress,
		Logger:     dl,
	})
	if err != nil {
		return err
	}
	defer stopChild("btcd", btcd.Stop)
	if st.MinerAddress == "" {
		st.MinerAddress, st.MinerKey = btcd.MiningAddr, btcd.MiningKey
	}
	if st.Node, err = rpcStateOf(btcd.RPCHost, btcd.RPCUser, btcd.RPCPass); err != nil {
		return err
	}
	if err := checkDevChain(ctx, dbURL, btcd.RPCURL(), dir); err != nil {
		return err
	}

	wallet, err := devstack.StartBtcwallet(ctx, devstack.BtcwalletOptions{
		Btcd: btcd, DataDir: filepath.Join(dir, "btcwallet"),
		PortHint: st.Wallet.Port, RPCUser: st.Wallet.User, RPCPass: st.Wallet.Pass,
		Logger: dl,
	})
	if err != nil {
		return err
	}
	defer stopChild("btcwallet", wallet.Stop)
	if st.Wallet, err = rpcStateOf(wallet.RPCHost, wallet.RPCUser, wallet.RPCPass); err != nil {
		return err
	}
	// The coinbases pay an address of the wallet, so that it can pay the
	// miners from them.
	if st.PoolAddress == "" {
		if err := wallet.Call(ctx, "getnewaddress", nil, &st.PoolAddress); err != nil {
			return fmt.Errorf("ask btcwallet for the pool address: %w", err)
		}
	}
	if err := saveDevState(dir, st); err != nil {
		return err
	}

	scfg := serveConfig{
		Network:         devNetwork,
		NodeURL:         "http://" + btcd.RPCHost,
		NodeUser:        btcd.RPCUser,
		NodePass:        btcd.RPCPass,
		PoolAddress:     st.PoolAddress,
		DatabaseURL:     dbURL,
		StratumAddr:     cfg.StratumAddr,
		HTTPAddr:        cfg.HTTPAddr,
		CoinbaseTag:     "/hashforge-dev/",
		Extranonce2Size: 8,
		VersionMask:     "1fffe000",
		SpoolDir:        filepath.Join(dir, "spool"),
		Payout: payoutConfig{
			Scheme:        string(payout.PPLNS),
			PPLNSWindow:   payout.DefaultPPLNSWindow,
			Threshold:     devPayoutThreshold,
			Interval:      cfg.PayoutInterval,
			Maturity:      devMaturity,
			Confirmations: devConfirmations,
			DropAfter:     payout.DefaultDropAfter,
			WalletURL:     "http://" + wallet.RPCHost,
			WalletUser:    wallet.RPCUser,
			WalletPass:    wallet.RPCPass,
			WalletAccount: "default",
		},
	}

	devPoolSettings(&scfg)

	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan listeners, 1)
	g.Go(func() error { return runServe(gctx, scfg, log, func(l listeners) { ready <- l }) })

	var l listeners
	select {
	case l = <-ready:
	case <-gctx.Done():
		return g.Wait()
	}
	stratumURL := "stratum+tcp://" + l.Stratum.String()
	fmt.Fprintf(out, "stratum: %s\n", stratumURL)
	if l.HTTP != nil {
		fmt.Fprintf(out, "dashboard: http://%s/\n", l.HTTP.String())
	}
	fmt.Fprintf(out, "node-rpc: %s\n", btcd.RPCURL())
	fmt.Fprintf(out, "database: %s\n", dbURL)
	fmt.Fprintf(out, "wallet: %s\n", wallet.RPCURL())
	// Scripts read exactly the five lines above from stdout; the rest is log.
	log.Info("dev stack ready", "data_dir", dir, "pool_address", st.PoolAddress, "miner_address", st.MinerAddress,
		"miner_threads", cfg.MinerThreads)

	if cfg.MinerThreads > 0 {
		miner, err := worker.New(worker.Config{
			URLs:    []string{stratumURL},
			User:    st.MinerAddress + ".dev",
			Threads: cfg.MinerThreads,
			// stdout holds only the lines above, for scripts.
			Output: os.Stderr,
			Logger: log.With("component", "miner"),
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return miner.Run(gctx) })
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// clearDevData deletes what the dev stack keeps in dir, stopping any
// server a killed run left running there first.
func clearDevData(ctx context.Context, dir string, log *slog.Logger) error {
	if err := devstack.RemovePostgres(ctx, filepath.Join(dir, "postgres"), log); err != nil {
		return err
	}
	for _, child := range []string{"btcwallet", "btcd"} {
		if err := devstack.RemoveChildDataDir(ctx, filepath.Join(dir, child), log); err != nil {
			return err
		}
	}
	for _, f := range []string{"spool", devStateFile} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("clear data dir: %w", err)
		}
	}
	return nil
}

// errDevChainMismatch is the refusal of a kept database whose blocks the
// kept chain does not have.
var errDevChainMismatch = errors.New("the dev database and the dev chain disagree")

// checkDevChain refuses to run on a kept database whose newest block is
// not in the node's chain at its height (the chain was deleted or reset
// by hand): the dashboard, balances and payouts would describe blocks that
// no longer exist.
func checkDevChain(ctx context.Context, dbURL, nodeURL, dir string) error {
	led, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer led.Close()
	if _, err := led.Migrate(ctx); err != nil {
		return err
	}
	b, ok, err := led.NewestChainBlock(ctx)
	if err != nil || !ok {
		return err
	}
	rpc, err := node.New(nodeURL, "", "")
	if err != nil {
		return err
	}
	tip, err := rpc.GetBlockCount(ctx)
	if err != nil {
		return fmt.Errorf("check the kept chain: %w", err)
	}
	var chain string
	if b.Height > tip {
		chain = fmt.Sprintf("the node's chain ends at height %d", tip)
	} else {
		have, err := rpc.GetBlockHash(ctx, b.Height)
		if err != nil {
			return fmt.Errorf("check the kept chain: %w", err)
		}
		if have == b.Hash {
			return nil
		}
		chain = "the node has block " + have + " there"
	}
	return fmt.Errorf("%w: the database records block %s at height %d, but %s (was the chain in %s reset?); "+
		"run `hashforge dev --fresh` (`make run ARGS=--fresh`) to start over with a new chain, wallet and database",
		errDevChainMismatch, b.Hash, b.Height, chain, filepath.Join(dir, "btcd"))
}
