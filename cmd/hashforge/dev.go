package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/worker"
)

func cmdDev(args []string) error {
	fs := newFlagSet("dev", "[flags]")
	dataDir := fs.String("data-dir", ".hashforge-dev", "where the private PostgreSQL cluster, node data and logs live")
	stratumAddr := fs.String("stratum-addr", "127.0.0.1:3333", "Stratum listen address")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "dashboard listen address")
	minerThreads := fs.Int("miner-threads", 1, "threads of the bundled miner (0: no miner)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, false)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	// Children are stopped with a context of their own: ctx is already
	// cancelled by the time we stop them after Ctrl-C.
	stopCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 20*time.Second)
	}

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: filepath.Join(dir, "postgres")})
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := stopCtx()
		defer cancel()
		if err := pg.Stop(c); err != nil {
			log.Error("stop postgres", "err", err)
		}
	}()
	// The regtest chain starts afresh every time btcd starts, so the
	// database does too: blocks and shares of a chain that no longer
	// exists would only mislead.
	if err := pg.DropDatabase(ctx, "hashforge"); err != nil {
		return err
	}
	dbURL, err := pg.CreateDatabase(ctx, "hashforge")
	if err != nil {
		return err
	}

	// devstack makes a fresh address for the node's first block; the pool
	// pays its coinbase there too.
	btcd, err := devstack.StartBtcd(ctx, devstack.BtcdOptions{
		Network: "regtest",
		DataDir: filepath.Join(dir, "btcd"),
		Logger:  log.With("component", "devstack"),
	})
	if err != nil {
		return err
	}
	defer func() {
		c, cancel := stopCtx()
		defer cancel()
		if err := btcd.Stop(c); err != nil {
			log.Error("stop btcd", "err", err)
		}
	}()
	poolAddr := btcd.MiningAddr

	cfg := serveConfig{
		Network:         "regtest",
		NodeURL:         "http://" + btcd.RPCHost,
		NodeUser:        btcd.RPCUser,
		NodePass:        btcd.RPCPass,
		PoolAddress:     poolAddr,
		DatabaseURL:     dbURL,
		StratumAddr:     *stratumAddr,
		HTTPAddr:        *httpAddr,
		StartDifficulty: 0.01,
		MinDifficulty:   0.0001,
		ShareInterval:   5 * time.Second,
		CoinbaseTag:     "/hashforge-dev/",
		Extranonce2Size: 8,
		VersionMask:     "1fffe000",
		SpoolDir:        filepath.Join(dir, "spool"),
	}

	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan listeners, 1)
	g.Go(func() error { return runServe(gctx, cfg, log, func(l listeners) { ready <- l }) })

	var l listeners
	select {
	case l = <-ready:
	case <-gctx.Done():
		return g.Wait()
	}
	stratumURL := "stratum+tcp://" + l.Stratum.String()
	fmt.Printf("stratum: %s\n", stratumURL)
	if l.HTTP != nil {
		fmt.Printf("dashboard: http://%s/\n", l.HTTP.String())
	}
	fmt.Printf("node-rpc: %s\n", btcd.RPCURL())
	fmt.Printf("database: %s\n", dbURL)
	// Scripts read exactly the four lines above from stdout; the rest is log.
	log.Info("dev stack ready", "pool_address", poolAddr, "miner_threads", *minerThreads)

	if *minerThreads > 0 {
		miner, err := worker.New(worker.Config{
			URLs:    []string{stratumURL},
			User:    poolAddr + ".dev",
			Threads: *minerThreads,
			Logger:  log.With("component", "miner"),
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
