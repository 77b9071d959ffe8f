package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/internal/tlsreload"
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
	SV2Addr         string
	SV2Authority    string
	ReconnectTo     string
	ShutdownGrace   time.Duration
	StratumTLSAddr  string
	StratumTLSCert  string
	StratumTLSKey   string
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
	Guard           guardConfig
	LogLevel        string
	LogJSON         bool
	Payout          payoutConfig

	// nodeTuning shortens the node set's waits in tests (zero: defaults).
	nodeTuning node.SetOptions
	// Shares table upkeep (docs/scaling.md).
	PartitionsAhead int
	SharesRetention time.Duration
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Network, "network", "mainnet", "chain: mainnet, testnet, testnet4, signet (one whose challenge is OP_TRUE), regtest or simnet")
	c.NodeURL = "http://127.0.0.1:8332"
	fs.Var(&nodeURLFlag{list: &c.NodeURL}, "node-url", "JSON-RPC URL of a bitcoind-compatible node; repeat it (or give a comma-separated list) for failover nodes, in priority order; http://user:pass@host:port overrides --node-user/--node-pass for that node")
	fs.StringVar(&c.NodeUser, "node-user", "", "node RPC user (for every --node-url without its own)")
	fs.StringVar(&c.NodePass, "node-pass", "", "node RPC password (for every --node-url without its own)")
	fs.StringVar(&c.NodeZMQ, "node-zmq", "", "ZMQ address of the first node's hashblock notices (Bitcoin Core -zmqpubhashblock), e.g. tcp://127.0.0.1:28332; empty: off")
	fs.StringVar(&c.PoolAddress, "pool-address", "", "address the coinbase pays (required)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL, e.g. postgres://user:pass@host/db (required)")
	fs.StringVar(&c.StratumAddr, "stratum-addr", ":3333", "Stratum listen address")
	fs.StringVar(&c.StratumTLSAddr, "stratum-tls-addr", "", "stratum+ssl listen address (empty: off); needs --stratum-tls-cert and --stratum-tls-key")
	fs.StringVar(&c.StratumTLSCert, "stratum-tls-cert", "", "PEM certificate chain (leaf first) of the stratum+ssl port; reloaded when the file changes")
	fs.StringVar(&c.StratumTLSKey, "stratum-tls-key", "", "PEM private key of --stratum-tls-cert; reloaded when the file changes")
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
	fs.StringVar(&c.SV2Addr, "sv2-addr", "", "Stratum V2 listen address (encrypted, binary; docs/stratum-v2.md); empty: off")
	fs.StringVar(&c.SV2Authority, "sv2-authority-key", "hashforge-sv2-authority.key", "the pool's Stratum V2 authority key file, made on first use (mode 0600); its public key is part of the URL miners use: back it up")
	fs.StringVar(&c.ReconnectTo, "reconnect-to", "", "HOST:PORT miners are sent to (client.reconnect) when this node stops; empty: they reconnect to the address they used (another node behind DNS or a load balancer)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM: how long miners have to leave after client.reconnect, and their last shares to be answered, before the rest are closed")
	registerHTTPLimits(fs, &c.HTTPLimits)
	c.Guard.register(fs)
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
	Stratum    net.Addr
	StratumTLS net.Addr // nil without --stratum-tls-addr
	// StratumV2 is the V2 port's URL (with the authority key); empty
	// without --sv2-addr.
	StratumV2 string
	HTTP      net.Addr
	Admin     net.Addr
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
	reconnectHost, reconnectPort, err := parseReconnectTo(cfg.ReconnectTo)
	if err != nil {
		return err
	}
	cfg.ReconnectTo = net.JoinHostPort(reconnectHost, strconv.Itoa(reconnectPort))
	if reconnectHost == "" {
		cfg.ReconnectTo = ""
	}
	if err := cfg.Guard.validate(); err != nil {
		return err
	}
	if _, err := fdBudget(&cfg.Guard, &cfg.HTTPLimits, log); err != nil {
		return err
	}
	guard := newStratumGuard(cfg.Guard, cfg.MaxRequests, cfg.MaxErrors, log.With("component", "stratum"))
	mask, err := strconv.ParseUint(cfg.VersionMask, 16, 32)
	if err != nil {
		return fmt.Errorf("--version-mask %q: %w", cfg.VersionMask, err)
	}
	// The pair is loaded before anything starts: a wrong path is an
	// operator's typo, better refused at once than found by miners.
	var certs *tlsreload.Certs
	if cfg.StratumTLSAddr != "" {
		if cfg.StratumTLSCert == "" || cfg.StratumTLSKey == "" {
			return errors.New("--stratum-tls-addr needs --stratum-tls-cert and --stratum-tls-key")
		}
		if certs, err = tlsreload.Load(cfg.StratumTLSCert, cfg.StratumTLSKey, log.With("component", "stratum-tls")); err != nil {
			return fmt.Errorf("--stratum-tls-cert/--stratum-tls-key: %w", err)
		}
	} else if cfg.StratumTLSCert != "" || cfg.StratumTLSKey != "" {
		return errors.New("--stratum-tls-cert and --stratum-tls-key need --stratum-tls-addr")
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

	tuning := cfg.nodeTuning
	tuning.Network, tuning.Logger = params, log.With("component", "node")
	nodes, err := node.NewSet(node.SplitURLs(cfg.NodeURL), cfg.NodeUser, cfg.NodePass, tuning)
	if err != nil {
		return fmt.Errorf("--node-url: %w", err)
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
	// Every node must serve the chain --network names. Nodes that cannot
	// be asked now are waited for (the template watcher checks before the
	// first job); a node on another chain, or on a signet whose blocks
	// must be signed (node.SignetChallengeError), is refused.
	checkCtx, cancelCheck := context.WithTimeout(ctx, 5*time.Second)
	err = nodes.CheckNetwork(checkCtx, params)
	cancelCheck()
	networkChecked := err == nil
	switch {
	case node.IsFinalNetworkError(err):
		return fmt.Errorf("--network %s: %w", cfg.Network, err)
	case err != nil:
		log.Warn("cannot reach the node to check its network; retrying in the background, no work for miners until it answers",
			"node", redactURLs(cfg.NodeURL), "err", err)
	}
	// The node id last among the start-up checks: a process refused for
	// its configuration never held it.
	nodeID := int16(cfg.NodeID)
	holder, releaseNode, err := claimNode(ctx, led, nodeID, log)
	if err != nil {
		return err
	}
	defer releaseNode()
	led.SetNodeID(nodeID)
	resumeKey, err := led.PoolSecret(ctx, "session-resume", 32)
	if err != nil {
		return err
	}
	spool, err := filepath.Abs(cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("spool dir: %w", err)
	}
	pay, err := cfg.Payout.setup(led, nodes.Client(), params, cfg.PoolAddress, log)
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
	bopts := ledger.BatcherOptions{SpoolDir: spool, NodeID: nodeID, Logger: log.With("component", "ledger")}
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
		Bans:            guard.bans,
		ResumeKey:       resumeKey,
	}, nodes, batcher, blocks)
	if err != nil {
		return err
	}

	stratumLn, err := net.Listen("tcp", cfg.StratumAddr)
	if err != nil {
		return fmt.Errorf("listen stratum: %w", err)
	}
	var tlsLn net.Listener
	if certs != nil {
		if tlsLn, err = net.Listen("tcp", cfg.StratumTLSAddr); err != nil {
			stratumLn.Close()
			return fmt.Errorf("listen stratum tls: %w", err)
		}
	}
	var httpLn net.Listener
	if cfg.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			stratumLn.Close()
			closeListener(tlsLn)
			return fmt.Errorf("listen http: %w", err)
		}
		dash, err = web.New(web.Config{Pool: srv, Events: srv, Ledger: led, Payouts: led, Batcher: batcher, Processor: payouts,
			Network: params, StratumURL: publicStratumURL(cfg.PublicURL, stratumLn.Addr()), Limits: cfg.HTTPLimits,
			Guard: guard, Nodes: led, NodeID: int(nodeID), Logger: log.With("component", "web")})
		if err != nil {
			stratumLn.Close()
			closeListener(tlsLn)
			httpLn.Close()
			return err
		}
	}
	v2, err := listenV2(cfg, srv, guard, log)
	if err != nil {
		stratumLn.Close()
		closeListener(tlsLn)
		closeListener(httpLn)
		return err
	}
	var adminLn net.Listener
	if cfg.Guard.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.Guard.AdminAddr); err != nil {
			stratumLn.Close()
			closeListener(tlsLn)
			closeListener(httpLn)
			if v2 != nil {
				v2.ln.Close()
			}
			return fmt.Errorf("listen admin: %w", err)
		}
	}
	if ready != nil {
		l := listeners{Stratum: stratumLn.Addr()}
		if tlsLn != nil {
			l.StratumTLS = tlsLn.Addr()
		}
		if httpLn != nil {
			l.HTTP = httpLn.Addr()
		}
		if adminLn != nil {
			l.Admin = adminLn.Addr()
		}
		if v2 != nil {
			l.StratumV2 = v2.url
		}
		ready(l)
	}
	log.Info("pool listening", "stratum", stratumLn.Addr().String(), "network", cfg.Network, "node", redactURLs(cfg.NodeURL))
	if tlsLn != nil {
		leaf := certs.Current().Leaf
		sum := sha256.Sum256(leaf.Raw)
		log.Info("pool listening for stratum+ssl", "stratum_tls", tlsLn.Addr().String(), "cert", cfg.StratumTLSCert,
			"sha256", hex.EncodeToString(sum[:]), "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}

	// The batcher outlives the pool: it gets its own context so that on
	// shutdown the accepted shares still queued are flushed (or spooled).
	batchCtx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	batchDone := make(chan error, 1)
	go func() { batchDone <- batcher.Run(batchCtx) }()

	g, gctx := errgroup.WithContext(ctx)
	// The Stratum ports, and the jobs they send, outlive gctx by the
	// shutdown grace (drain): miners still connected keep getting work
	// on the current tip until stratumCtx ends.
	stratumCtx, stopStratum := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStratum()
	templates := make(chan *node.Template, 4)
	g.Go(func() error {
		if !networkChecked {
			if err := nodes.WaitNetwork(stratumCtx, params, log.With("component", "node"), 0); err != nil {
				if stratumCtx.Err() != nil || gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("--network %s: %w", cfg.Network, err)
			}
			log.Info("node reachable, network checked", "network", cfg.Network)
		}
		nodes.WatchTemplates(stratumCtx, watchOpts, templates)
		return nil
	})
	g.Go(func() error { return srv.Run(stratumCtx, templates) })
	g.Go(func() error { return holdNode(gctx, led, nodeID, holder, srv, log) })
	// Blocks found by one pool node reach the others' miners at once.
	g.Go(func() error { announceBlocks(gctx, srv, led, nodeID, log); return nil })
	g.Go(func() error { hearBlocks(gctx, srv, led, nodeID, log.With("component", "ledger")); return nil })
	// Blocks a previous process found but did not record: from the
	// journal first (it knows their finders), then from the chain.
	g.Go(func() error {
		recoverBlocks(gctx, journal, led, nodes, blocks, srv.ReconcileConfig(), log)
		return nil
	})
	// Settles blocks at start (reconciling whatever a previous process
	// left) and on every --payout-interval.
	g.Go(func() error { return payouts.Run(gctx, cfg.Payout.Interval) })
	ports := []*stratum.Server{newStratumServer(cfg, srv, guard, log, "stratum")}
	g.Go(func() error { return ports[0].Serve(stratumCtx, stratumLn) })
	if tlsLn != nil {
		// A Server serves one listener; the second shares the Handler,
		// so both ports are one pool.
		tlsPort := newStratumServer(cfg, srv, guard, log, "stratum-tls")
		ports = append(ports, tlsPort)
		g.Go(func() error { return tlsPort.Serve(stratumCtx, tls.NewListener(tlsLn, certs.Config())) })
	}
	// Partitions ahead, DEFAULT emptied, retention: at start and hourly.
	g.Go(func() error {
		led.RunPartitionMaintenance(gctx, ledger.PartitionMaintenance{Ahead: cfg.PartitionsAhead,
			Retention: ledger.RetentionPolicy{Keep: cfg.SharesRetention, Scheme: pay.Terms.Scheme,
				PPLNSWindow: cfg.Payout.PPLNSWindow}, Logger: log.With("component", "ledger")})
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		drain(ports, srv, cfg, log)
		stopStratum()
		return nil
	})
	if adminLn != nil {
		g.Go(func() error { return serveAdmin(gctx, adminLn, guard, log.With("component", "admin")) })
	}
	if v2 != nil {
		g.Go(func() error { return v2.srv.Serve(stratumCtx, v2.ln) })
	}
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

// newStratumServer is the one place a Stratum port's server is made, so
// the plain and the TLS port get the same limits and share one Gate: caps
// and bans hold whichever port a client uses. name is its log component.
// A TLS handshake is bounded by the session's auth timeout: it runs on the
// session's first read, and a client that never finishes it is never
// authorized (and gives way first when a cap is reached).
func newStratumServer(cfg serveConfig, h stratum.Handler, guard *stratumGuard, log *slog.Logger, name string) *stratum.Server {
	return &stratum.Server{Handler: h, Logger: log.With("component", name),
		MaxRequestsPerSecond: cfg.MaxRequests, MaxErrorsPerSecond: cfg.MaxErrors, Gate: guard.gate}
}

func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
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

// redactURLs is redactURL for a comma-separated list of URLs.
func redactURLs(list string) string {
	urls := node.SplitURLs(list)
	for i, u := range urls {
		urls[i] = redactURL(u)
	}
	return strings.Join(urls, ",")
}

// nodeURLFlag is --node-url: each use appends to the comma-separated list
// (the form HASHFORGE_NODE_URL and config files give in one value), the
// first replacing the default.
type nodeURLFlag struct {
	list *string
	set  bool
}

func (f *nodeURLFlag) String() string {
	if f.list == nil { // flag.isZeroValue makes one with no list
		return ""
	}
	return *f.list
}

func (f *nodeURLFlag) Set(v string) error {
	if len(node.SplitURLs(v)) == 0 {
		return errors.New("no URL")
	}
	if f.set {
		*f.list += "," + v
	} else {
		*f.list, f.set = v, true
	}
	return nil
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
