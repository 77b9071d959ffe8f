package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/web"
)

type serveConfig struct {
	Network         string
	NodeURL         string
	NodeUser        string
	NodePass        string
	NodeZMQ         string
	PoolAddress     string
	DatabaseURL     string
	StratumAddr     string
	HTTPAddr        string
	PublicURL       string
	StartDifficulty float64
	MinDifficulty   float64
	ShareInterval   time.Duration
	CoinbaseTag     string
	NodeID          uint
	Extranonce2Size int
	VersionMask     string
	SpoolDir        string
	MaxRequests     int
	MaxErrors       int
	HTTPLimits      web.Limits
	LogLevel        string
	LogJSON         bool
	Payout          payoutConfig
	// Shares table upkeep (docs/scaling.md).
	PartitionsAhead int
	SharesRetention time.Duration
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Network, "network", "mainnet", "chain: mainnet, testnet, testnet4, signet (one whose challenge is OP_TRUE), regtest or simnet")
	fs.StringVar(&c.NodeURL, "node-url", "http://127.0.0.1:8332", "JSON-RPC URL of a bitcoind-compatible node")
	fs.StringVar(&c.NodeUser, "node-user", "", "node RPC user")
	fs.StringVar(&c.NodePass, "node-pass", "", "node RPC password")
	fs.StringVar(&c.NodeZMQ, "node-zmq", "", "ZMQ address of the node's hashblock notices (Bitcoin Core -zmqpubhashblock), e.g. tcp://127.0.0.1:28332; empty: off")
	fs.StringVar(&c.PoolAddress, "pool-address", "", "address the coinbase pays (required)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL, e.g. postgres://user:pass@host/db (required)")
	fs.StringVar(&c.StratumAddr, "stratum-addr", ":3333", "Stratum listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "dashboard and API listen address (empty: off)")
	fs.StringVar(&c.PublicURL, "public-stratum-url", "", "Stratum URL the dashboard tells miners to use (default: from --stratum-addr)")
	fs.Float64Var(&c.StartDifficulty, "start-difficulty", 1, "share difficulty a new session starts at")
	fs.Float64Var(&c.MinDifficulty, "min-difficulty", 0.001, "lowest share difficulty vardiff or a miner's suggestion may set")
	fs.DurationVar(&c.ShareInterval, "share-interval", 10*time.Second, "vardiff aims at one share per this interval per session")
	fs.StringVar(&c.CoinbaseTag, "coinbase-tag", "/hashforge/", "text put in every coinbase scriptSig")
	fs.UintVar(&c.NodeID, "node-id", 0, "this pool node's id (0-255), the first byte of every extranonce1 it hands out")
	fs.IntVar(&c.Extranonce2Size, "extranonce2-size", 8, "bytes of extranonce2 miners roll")
	fs.StringVar(&c.VersionMask, "version-mask", "1fffe000", "BIP 310 version-rolling mask offered to miners (BIP 320: 1fffe000, BIP 323: 1fffffe0)")
	fs.StringVar(&c.SpoolDir, "spool-dir", "hashforge-spool", "write-ahead spool and block journal: every accepted share is fsynced here before the miner hears \"accepted\" (one directory per pool process)")
	fs.IntVar(&c.MaxRequests, "max-requests-per-second", 10000, "per-session guard on all Stratum requests (burst 2x); a farm proxy forwards many ASICs' valid shares on one connection")
	fs.IntVar(&c.MaxErrors, "max-errors-per-second", 100, "per-session pace of what is invalid: malformed lines and requests answered with an error (burst 2x); a session over it is read more slowly")
	registerHTTPLimits(fs, &c.HTTPLimits)
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.LogJSON, "log-json", false, "log as JSON lines")
	c.Payout.register(fs)
	fs.IntVar(&c.PartitionsAhead, "shares-partitions-ahead", ledger.DefaultPartitionsAhead, "days of shares partitions created ahead of today (hourly, by every pool node)")
	fs.DurationVar(&c.SharesRetention, "shares-retention", 30*24*time.Hour, "raw shares older than this are rolled up into hourly per-worker statistics and dropped, a day at a time, unless a payout still needs them; at least 192h (the charts' reach); 0: keep forever")
}

// registerHTTPLimits declares the dashboard's limits (docs/decisions.md,
// "HTTP limits"), web.DefaultLimits by default.
func registerHTTPLimits(fs *flag.FlagSet, l *web.Limits) {
	d := web.DefaultLimits()
	fs.IntVar(&l.MaxConns, "http-max-conns", d.MaxConns, "open HTTP connections (websockets included) past which new ones are closed at accept; 0: no cap")
	fs.IntVar(&l.MaxConnsPerIP, "http-max-conns-per-ip", d.MaxConnsPerIP, "open HTTP connections per client IPv4 address or IPv6 /64; 0: no cap (behind a reverse proxy every client is the proxy)")
	fs.DurationVar(&l.ReadHeaderTimeout, "http-read-header-timeout", d.ReadHeaderTimeout, "time a client has to send a request's headers")
	fs.DurationVar(&l.ReadTimeout, "http-read-timeout", d.ReadTimeout, "time a client has to send a whole request")
	fs.DurationVar(&l.WriteTimeout, "http-write-timeout", d.WriteTimeout, "time to answer a request, from the end of its headers; must exceed the API's 15s request timeout (websockets are not subject to it)")
	fs.DurationVar(&l.IdleTimeout, "http-idle-timeout", d.IdleTimeout, "a keep-alive connection idle this long is closed")
	fs.IntVar(&l.MaxHeaderBytes, "http-max-header-bytes", d.MaxHeaderBytes, "largest request header accepted (431 past it)")
	fs.IntVar(&l.MaxFeeds, "ws-max-clients", d.MaxFeeds, "open live feed websockets; past it dashboards poll the API instead; 0: no cap")
	fs.IntVar(&l.MaxFeedsPerIP, "ws-max-clients-per-ip", d.MaxFeedsPerIP, "open live feed websockets per client IPv4 address or IPv6 /64; 0: no cap")
	fs.DurationVar(&l.FeedPollInterval, "ws-fallback-poll-interval", d.FeedPollInterval, "how often a dashboard refused a live feed reloads over the API")
}

func cmdServe(args []string) error {
	var cfg serveConfig
	fs := newFlagSet("serve", "[flags]")
	cfg.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogJSON)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return runServe(ctx, cfg, log, nil)
}

// listeners are the addresses serve actually bound, reported to dev so it
// can print them (ports may be chosen by the kernel).
type listeners struct {
	Stratum net.Addr
	HTTP    net.Addr
}

// runServe runs the pool until ctx ends. ready, when set, is called once
// every listener is bound.
func runServe(ctx context.Context, cfg serveConfig, log *slog.Logger, ready func(listeners)) error {
	params, err := pool.ParseNetwork(cfg.Network)
	if err != nil {
		return err
	}
	if cfg.PoolAddress == "" {
		return errors.New("--pool-address is required")
	}
	if cfg.PoolAddress, err = pool.ParseAddress(cfg.PoolAddress, params); err != nil {
		return fmt.Errorf("--pool-address: %w", err)
	}
	if r := cfg.SharesRetention; r < 0 || (r > 0 && r < ledger.MinShareRetention) || cfg.PartitionsAhead < 0 {
		return fmt.Errorf("--shares-retention %v must be 0 or at least %v, --shares-partitions-ahead %d not negative",
			r, ledger.MinShareRetention, cfg.PartitionsAhead)
	}
	if cfg.DatabaseURL == "" {
		return errors.New("--database-url is required")
	}
	if cfg.NodeID > 255 {
		return fmt.Errorf("--node-id %d: must be 0-255", cfg.NodeID)
	}
	if w := cfg.HTTPLimits.WriteTimeout; w != 0 && w <= web.APIRequestTimeout {
		return fmt.Errorf("--http-write-timeout %s: must exceed the API's %s request timeout (or be 0)", w, web.APIRequestTimeout)
	}
	mask, err := strconv.ParseUint(cfg.VersionMask, 16, 32)
	if err != nil {
		return fmt.Errorf("--version-mask %q: %w", cfg.VersionMask, err)
	}

	led, err := ledger.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer led.Close()
	applied, err := led.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info("database migrated", "applied", applied)
	}

	rpc, err := node.New(cfg.NodeURL, cfg.NodeUser, cfg.NodePass)
	if err != nil {
		return err
	}
	// New-block notices from the node's ZMQ publisher, when configured.
	// The subscription lives as long as serve and redials by itself.
	watchOpts := node.WatchOptions{Logger: log.With("component", "node")}
	if cfg.NodeZMQ != "" {
		zctx, stopZMQ := context.WithCancel(ctx)
		defer stopZMQ()
		if watchOpts.Notices, err = node.SubscribeBlocks(zctx, cfg.NodeZMQ, log.With("component", "node"), 0); err != nil {
			return fmt.Errorf("--node-zmq: %w", err)
		}
	}
	// The node must serve the chain --network names. A node that cannot
	// be asked now is waited for (the template watcher checks before the
	// first job); a node on another chain, or on a signet whose blocks
	// must be signed (node.SignetChallengeError), is refused.
	checkCtx, cancelCheck := context.WithTimeout(ctx, 5*time.Second)
	err = rpc.CheckNetwork(checkCtx, params)
	cancelCheck()
	networkChecked := err == nil
	switch {
	case node.IsFinalNetworkError(err):
		return fmt.Errorf("--network %s: %w", cfg.Network, err)
	case err != nil:
		log.Warn("cannot reach the node to check its network; retrying in the background, no work for miners until it answers",
			"node", redactURL(cfg.NodeURL), "err", err)
	}
	spool, err := filepath.Abs(cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	pay, err := cfg.Payout.setup(led, rpc, params, cfg.PoolAddress, log)
	if err != nil {
		return err
	}
	payouts := pay.Processor
	blocks, onBatch, err := ledgerHooks(pay, led)
	if err != nil {
		return err
	}
	journal, err := ledger.OpenBlockJournal(spool, pay.Terms, log)
	if err != nil {
		return err
	}
	defer journal.Close()
	bopts := ledger.BatcherOptions{SpoolDir: spool, Logger: log.With("component", "ledger")}
	bopts.OnBatch = onBatch // PPS: credits each share batch in its own transaction
	// The dashboard (made below, before the batcher runs; nil without
	// --http-addr) observes every batch write for its metrics.
	var dash *web.Server
	bopts.OnFlush = func(n int, d time.Duration, err error) { dash.ObserveFlush(n, d, err) }
	batcher := ledger.NewBatcher(led, bopts)
	srv, err := pool.NewServer(pool.Config{
		Network:         params,
		PoolAddress:     cfg.PoolAddress,
		CoinbaseTag:     cfg.CoinbaseTag,
		NodeID:          uint8(cfg.NodeID),
		Extranonce2Size: cfg.Extranonce2Size,
		StartDifficulty: cfg.StartDifficulty,
		MinDifficulty:   cfg.MinDifficulty,
		ShareInterval:   cfg.ShareInterval,
		VersionMask:     uint32(mask),
		Logger:          log,
		Solo:            pay.Solo,
		SoloSplit:       pay.SoloSplit,
		SoloFeeAddress:  pay.SoloFeeAddress,
		BlockJournal:    journal,
	}, rpc, batcher, blocks)
	if err != nil {
		return err
	}

	stratumLn, err := net.Listen("tcp", cfg.StratumAddr)
	if err != nil {
		return fmt.Errorf("listen stratum: %w", err)
	}
	var httpLn net.Listener
	if cfg.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			stratumLn.Close()
			return fmt.Errorf("listen http: %w", err)
		}
		dash, err = web.New(web.Config{Pool: srv, Events: srv, Ledger: led, Payouts: led, Batcher: batcher, Processor: payouts,
			Network: params, StratumURL: publicStratumURL(cfg.PublicURL, stratumLn.Addr()), Limits: cfg.HTTPLimits,
			Logger: log.With("component", "web")})
		if err != nil {
			stratumLn.Close()
			httpLn.Close()
			return err
		}
	}
	if ready != nil {
		l := listeners{Stratum: stratumLn.Addr()}
		if httpLn != nil {
			l.HTTP = httpLn.Addr()
		}
		ready(l)
	}
	log.Info("pool listening", "stratum", stratumLn.Addr().String(), "network", cfg.Network, "node", redactURL(cfg.NodeURL))

	// The batcher outlives the pool: it gets its own context so that on
	// shutdown the accepted shares still queued are flushed (or spooled).
	batchCtx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	batchDone := make(chan error, 1)
	go func() { batchDone <- batcher.Run(batchCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	templates := make(chan *node.Template, 4)
	g.Go(func() error {
		if !networkChecked {
			if err := rpc.WaitNetwork(gctx, params, log.With("component", "node"), 0); err != nil {
				if gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("--network %s: %w", cfg.Network, err)
			}
			log.Info("node reachable, network checked", "network", cfg.Network)
		}
		rpc.WatchTemplates(gctx, watchOpts, templates)
		return nil
	})
	g.Go(func() error { return srv.Run(gctx, templates) })
	// Blocks a previous process found but did not record: from the
	// journal first (it knows their finders), then from the chain.
	g.Go(func() error {
		recoverBlocks(gctx, journal, led, rpc, blocks, srv.ReconcileConfig(), log)
		return nil
	})
	// Settles blocks at start (reconciling whatever a previous process
	// left) and on every --payout-interval.
	g.Go(func() error { return payouts.Run(gctx, cfg.Payout.Interval) })
	// Partitions ahead, DEFAULT emptied, retention: at start and hourly.
	g.Go(func() error {
		led.RunPartitionMaintenance(gctx, ledger.PartitionMaintenance{Ahead: cfg.PartitionsAhead,
			Retention: ledger.RetentionPolicy{Keep: cfg.SharesRetention, Scheme: pay.Terms.Scheme,
				PPLNSWindow: cfg.Payout.PPLNSWindow}, Logger: log.With("component", "ledger")})
		return nil
	})
	g.Go(func() error {
		s := &stratum.Server{Handler: srv, Logger: log.With("component", "stratum"),
			MaxRequestsPerSecond: cfg.MaxRequests, MaxErrorsPerSecond: cfg.MaxErrors}
		return s.Serve(gctx, stratumLn)
	})
	if httpLn != nil {
		g.Go(func() error { return dash.Run(gctx) })
		g.Go(func() error { return dash.Serve(gctx, httpLn) })
	}
	err = g.Wait()
	stopBatcher()
	if berr := <-batchDone; berr != nil && !errors.Is(berr, context.Canceled) {
		log.Error("share batcher stopped with error", "err", berr)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// publicStratumURL is what the dashboard shows miners. A wildcard listen
// address says nothing useful to a miner, so it becomes this host's name.
func publicStratumURL(configured string, addr net.Addr) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "stratum+tcp://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "stratum+tcp://" + net.JoinHostPort(host, port)
}

// redactURL hides the password of a URL before it reaches a log line.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// recoverBlocks records what a previous process left unrecorded: the
// block journal's entries, then the pool's blocks found in the chain
// (pool.ReconcileBlocks). It retries, in the background, until both are
// done or ctx ends: the database or the node may be away at start.
func recoverBlocks(ctx context.Context, journal *ledger.BlockJournal, led *ledger.Ledger, chain pool.ChainReader, rec pool.BlockSink, rcfg pool.ReconcileConfig, log *slog.Logger) {
	retry := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for {
		_, err := journal.Recover(ctx, led)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("cannot record the block journal in the ledger yet; retrying", "journal", journal.Path(), "err", err)
		if !backoff.Sleep(ctx, retry.Next()) {
			return
		}
	}
	retry.Reset()
	for {
		_, err := pool.ReconcileBlocks(ctx, chain, led, rec, rcfg)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("cannot check the chain for the pool's blocks yet; retrying", "err", err)
		if !backoff.Sleep(ctx, retry.Next()) {
			return
		}
	}
}
