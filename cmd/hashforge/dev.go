package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/fixturenode"
	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/worker"
)

// devConfig is what `hashforge dev` is told on its command line.
type devConfig struct {
	DataDir        string
	StratumAddr    string
	StratumTLSAddr string
	HTTPAddr       string
	MinerThreads   int
	Fresh          bool
	PayoutInterval time.Duration
	LogLevel       string
	// Node is what serves templates: "btcd" (a simnet btcd and
	// btcwallet) or "fixture" (fixturenode: mainnet-like templates,
	// payouts off).
	Node                 string
	FixtureBlockInterval time.Duration
}

func cmdDev(args []string) error {
	var cfg devConfig
	fs := newFlagSet("dev", "[flags]")
	fs.StringVar(&cfg.DataDir, "data-dir", ".hashforge-dev", "where the dev stack keeps its chain, wallet, database, keys and logs across restarts")
	fs.BoolVar(&cfg.Fresh, "fresh", false, "delete what --data-dir kept (chain, wallet, database, keys, ports) and start over")
	fs.StringVar(&cfg.StratumAddr, "stratum-addr", "127.0.0.1:3333", "Stratum listen address")
	fs.StringVar(&cfg.StratumTLSAddr, "stratum-tls-addr", "", "stratum+ssl listen address, with a self-signed certificate kept in --data-dir (empty: --stratum-addr's port + 1, or a free port if that is 0)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "dashboard listen address")
	fs.IntVar(&cfg.MinerThreads, "miner-threads", 1, "threads of the bundled miner (0: no miner)")
	fs.DurationVar(&cfg.PayoutInterval, "payout-interval", 10*time.Second, "how often the pool settles blocks and sends payments")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.Node, "node", devNodeBtcd, "template source: btcd (simnet btcd and btcwallet, payouts on) or fixture (mainnet-like templates for load tests, payouts off)")
	fs.DurationVar(&cfg.FixtureBlockInterval, "fixture-block-interval", fixturenode.DefaultBlockInterval, "with --node fixture: how often a new previous block arrives")
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

	devNodeBtcd    = "btcd"
	devNodeFixture = "fixture"
	// devFixtureDatabase keeps the fixture's shares and blocks apart
	// from the simnet chain's in the same cluster: the two chains never
	// mix in one database.
	devFixtureDatabase = "hashforge_fixture"
	// devFixtureWallet is the wallet line of a fixture stack: there is no
	// wallet, and scripts still find five lines.
	devFixtureWallet = "none (fixture node: payouts off)"
)

// devNodeSide is what the node half of the dev stack (btcd and btcwallet,
// or the fixture) gives the rest: serve's node, network, pool address and
// payout settings, the miner's address, and two of the lines scripts read.
type devNodeSide struct {
	serve        serveConfig
	minerAddress string
	nodeLine     string
	walletLine   string
}

// runDev runs the dev stack until ctx ends, printing the lines scripts
// read (stratum:, dashboard:, node-rpc:, database:, wallet:, stratum-tls:,
// stratum-tls-cert:, stratum-tls-sha256:, admin:, stratum2:) to out.
func runDev(ctx context.Context, cfg devConfig, log *slog.Logger, out io.Writer) error {
	if cfg.Node == "" {
		cfg.Node = devNodeBtcd
	}
	if cfg.Node != devNodeBtcd && cfg.Node != devNodeFixture {
		return fmt.Errorf("--node %q: want %s or %s", cfg.Node, devNodeBtcd, devNodeFixture)
	}
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
	database := devDatabase
	if cfg.Node == devNodeFixture {
		database = devFixtureDatabase
	}
	dbURL, err := pg.CreateDatabase(ctx, database)
	if err != nil {
		return err
	}
	st.PostgresPort = pg.Port

	var side *devNodeSide
	if cfg.Node == devNodeFixture {
		fx, err := fixturenode.Start(ctx, fixturenode.Options{
			PortHint: st.Fixture.RPC.Port, User: st.Fixture.RPC.User, Pass: st.Fixture.RPC.Pass,
			BlockInterval: cfg.FixtureBlockInterval, Logger: log.With("component", "fixture"),
		})
		if err != nil {
			return err
		}
		defer stopChild("fixture node", fx.Stop)
		if side, err = fixtureSide(fx, &st, cfg, dl); err != nil {
			return err
		}
	} else {
		var stop func()
		side, stop, err = startBtcdSide(ctx, dir, dbURL, &st, cfg, dl, stopChild)
		defer stop()
		if err != nil {
			return err
		}
	}
	if err := saveDevState(dir, st); err != nil {
		return err
	}

	scfg := side.serve
	scfg.DatabaseURL = dbURL
	scfg.StratumAddr = cfg.StratumAddr
	if scfg.StratumTLSAddr, err = devTLSAddr(cfg.StratumTLSAddr, cfg.StratumAddr); err != nil {
		return err
	}
	if scfg.StratumTLSCert, scfg.StratumTLSKey, err = devTLSPair(dir, scfg.StratumTLSAddr, dl); err != nil {
		return err
	}
	tlsFP, err := tlsreload.Fingerprint(scfg.StratumTLSCert)
	if err != nil {
		return err
	}
	scfg.HTTPAddr = cfg.HTTPAddr
	scfg.CoinbaseTag = "/hashforge-dev/"
	scfg.Extranonce2Size = 8
	scfg.VersionMask = "1fffe000"
	scfg.SpoolDir = filepath.Join(dir, "spool")
	// The operator's API (bans, profiler) on a free loopback port.
	scfg.Guard.AdminAddr = "127.0.0.1:0"
	// Stratum V2 on a free port beside, its authority key kept in the
	// data dir (the URL stays the same across restarts).
	scfg.SV2Addr = net.JoinHostPort(devHost(cfg.StratumAddr), "0")
	scfg.SV2Authority = filepath.Join(dir, "sv2-authority.key")
	if cfg.Node == devNodeFixture {
		// Its own spool: a batch of the fixture's shares must never be
		// replayed into the simnet database, nor the other way round.
		scfg.SpoolDir = filepath.Join(dir, "spool-fixture")
		devFixturePoolSettings(&scfg)
	} else {
		devPoolSettings(&scfg)
	}

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
	fmt.Fprintf(out, "node-rpc: %s\n", side.nodeLine)
	fmt.Fprintf(out, "database: %s\n", dbURL)
	fmt.Fprintf(out, "wallet: %s\n", side.walletLine)
	// After the five older lines, so that scripts reading those by
	// position still find them there.
	fmt.Fprintf(out, "stratum-tls: stratum+ssl://%s\n", l.StratumTLS.String())
	fmt.Fprintf(out, "stratum-tls-cert: %s\n", scfg.StratumTLSCert)
	fmt.Fprintf(out, "stratum-tls-sha256: %s\n", tlsFP)
	fmt.Fprintf(out, "admin: http://%s/\n", l.Admin.String())
	fmt.Fprintf(out, "stratum2: %s\n", l.StratumV2)
	// Scripts read exactly the lines above from stdout; the rest is log.
	log.Info("dev stack ready", "data_dir", dir, "node", cfg.Node, "pool_address", scfg.PoolAddress,
		"miner_address", side.minerAddress, "miner_threads", cfg.MinerThreads)

	if cfg.MinerThreads > 0 {
		miner, err := worker.New(worker.Config{
			URLs:    []string{stratumURL},
			User:    side.minerAddress + ".dev",
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

// startBtcdSide starts the simnet btcd and its btcwallet, checks the kept
// database against the chain, and fills st with their ports, credentials
// and addresses. stop stops what was started (call it even on error).
func startBtcdSide(ctx context.Context, dir, dbURL string, st *devState, cfg devConfig, dl *slog.Logger,
	stopChild func(string, func(context.Context) error)) (side *devNodeSide, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
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
		return nil, stop, err
	}
	stops = append(stops, func() { stopChild("btcd", btcd.Stop) })
	if st.MinerAddress == "" {
		st.MinerAddress, st.MinerKey = btcd.MiningAddr, btcd.MiningKey
	}
	if st.Node, err = rpcStateOf(btcd.RPCHost, btcd.RPCUser, btcd.RPCPass); err != nil {
		return nil, stop, err
	}
	if err := checkDevChain(ctx, dbURL, btcd.RPCURL(), dir); err != nil {
		return nil, stop, err
	}

	wallet, err := devstack.StartBtcwallet(ctx, devstack.BtcwalletOptions{
		Btcd: btcd, DataDir: filepath.Join(dir, "btcwallet"),
		PortHint: st.Wallet.Port, RPCUser: st.Wallet.User, RPCPass: st.Wallet.Pass,
		Logger: dl,
	})
	if err != nil {
		return nil, stop, err
	}
	stops = append(stops, func() { stopChild("btcwallet", wallet.Stop) })
	if st.Wallet, err = rpcStateOf(wallet.RPCHost, wallet.RPCUser, wallet.RPCPass); err != nil {
		return nil, stop, err
	}
	// The coinbases pay an address of the wallet, so that it can pay the
	// miners from them.
	if st.PoolAddress == "" {
		if err := wallet.Call(ctx, "getnewaddress", nil, &st.PoolAddress); err != nil {
			return nil, stop, fmt.Errorf("ask btcwallet for the pool address: %w", err)
		}
	}
	return &devNodeSide{
		serve: serveConfig{
			Network:     devNetwork,
			NodeURL:     "http://" + btcd.RPCHost,
			NodeUser:    btcd.RPCUser,
			NodePass:    btcd.RPCPass,
			PoolAddress: st.PoolAddress,
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
		},
		minerAddress: st.MinerAddress,
		nodeLine:     btcd.RPCURL(),
		walletLine:   wallet.RPCURL(),
	}, stop, nil
}

// fixtureSide is the node half of a fixture stack: serve on mainnet
// against the fixture, paying a mainnet address made (with its key) on the
// first fixture start and kept in st. There is no wallet, so nothing is
// paid: serve still records blocks (none at mainnet difficulty) and
// credits shares. The kept chain is not checked against the database
// (checkDevChain): the fixture's chain is new on every start, and its
// database is its own.
func fixtureSide(fx *fixturenode.Node, st *devState, cfg devConfig, dl *slog.Logger) (*devNodeSide, error) {
	var err error
	if st.Fixture.PoolAddress == "" {
		if st.Fixture.PoolAddress, st.Fixture.PoolKey, err = newMainnetAddress(); err != nil {
			return nil, err
		}
	}
	if st.Fixture.RPC, err = rpcStateOf(fx.Host, fx.User, fx.Pass); err != nil {
		return nil, err
	}
	dl.Info("fixture node in place of btcd: mainnet templates, payouts off (no wallet)",
		"block_interval", cfg.FixtureBlockInterval, "pool_address", st.Fixture.PoolAddress)
	return &devNodeSide{
		serve: serveConfig{
			Network:     "mainnet",
			NodeURL:     "http://" + fx.Host,
			NodeUser:    fx.User,
			NodePass:    fx.Pass,
			PoolAddress: st.Fixture.PoolAddress,
			Payout: payoutConfig{
				Scheme:      string(payout.PPLNS),
				PPLNSWindow: payout.DefaultPPLNSWindow,
				Threshold:   devPayoutThreshold,
				Interval:    cfg.PayoutInterval,
				Maturity:    payout.DefaultMaturity,
				// No WalletURL: blocks are tracked, nothing is paid.
				Confirmations: devConfirmations,
				DropAfter:     payout.DefaultDropAfter,
			},
		},
		// The bundled miner mines to the pool's own address: with
		// payouts off, whose credit it is does not matter.
		minerAddress: st.Fixture.PoolAddress,
		nodeLine:     fx.URL(),
		walletLine:   devFixtureWallet,
	}, nil
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
	for _, f := range []string{"spool", "spool-fixture", devTLSDir, devStateFile} {
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

// devTLSDir, in the dev data dir, holds the stratum+ssl pair.
const devTLSDir = "tls"

// devTLSAddr is the dev stack's stratum+ssl address: the one asked for,
// else the next port after the plain one (a free one when that is 0).
func devTLSAddr(tlsAddr, stratumAddr string) (string, error) {
	if tlsAddr != "" {
		return tlsAddr, nil
	}
	host, port, err := net.SplitHostPort(stratumAddr)
	if err != nil {
		return "", fmt.Errorf("--stratum-addr %q: %w", stratumAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p >= 65535 {
		return "", fmt.Errorf("--stratum-addr %q: bad port (or give --stratum-tls-addr)", stratumAddr)
	}
	if p != 0 {
		p++
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// devTLSPair returns the self-signed pair in dir/tls, made on first use
// and kept across runs (miners told to trust it keep trusting it); it is
// made again when missing, unreadable, within a month of expiry, or not
// valid for the host the port listens on.
func devTLSPair(dir, tlsAddr string, log *slog.Logger) (certFile, keyFile string, err error) {
	tdir := filepath.Join(dir, devTLSDir)
	certFile, keyFile = filepath.Join(tdir, "stratum.crt"), filepath.Join(tdir, "stratum.key")
	host, _, _ := net.SplitHostPort(tlsAddr)
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	if name, err := os.Hostname(); err == nil && name != "" && !slices.Contains(hosts, name) {
		hosts = append(hosts, name)
	}
	need := "127.0.0.1"
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		need = host
	}
	if c, err := tlsreload.Load(certFile, keyFile, log); err == nil {
		leaf := c.Current().Leaf
		if time.Until(leaf.NotAfter) > 30*24*time.Hour && leaf.VerifyHostname(need) == nil {
			return certFile, keyFile, nil
		}
		log.Info("dev stratum+ssl certificate expiring or not for this host; making a new one", "cert", certFile, "not_after", leaf.NotAfter)
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return "", "", fmt.Errorf("dev tls dir: %w", err)
	}
	if err := tlsreload.WriteSelfSigned(certFile, keyFile, hosts, 2*365*24*time.Hour); err != nil {
		return "", "", fmt.Errorf("dev tls certificate: %w", err)
	}
	log.Info("made a self-signed stratum+ssl certificate", "cert", certFile, "hosts", hosts)
	return certFile, keyFile, nil
}

// devHost is the host part of a listen address ("" for a wildcard).
func devHost(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1"
	}
	return h
}
