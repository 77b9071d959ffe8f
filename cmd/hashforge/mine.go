package main

import (
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/worker"
)

// cmdMine runs the bundled miner. Every flag is also read from
// HASHFORGE_<FLAG>; --url may repeat (or be comma-separated) for failover.
func cmdMine(args []string) error {
	var (
		cfg    worker.Config
		urls   multiFlag
		level  string
		tlsOpt tlsreload.ClientOptions
	)
	fs := newFlagSet("mine", "--url stratum+tcp://HOST:PORT|stratum+ssl://HOST:PORT|stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY --user ADDRESS.WORKER [flags]")
	fs.Var(&urls, "url", "pool URL stratum+tcp://host:port, stratum+ssl://host:port (TLS) or stratum2+tcp://host:port/AUTHORITY_PUBKEY (Stratum V2); repeat for failover pools in priority order")
	fs.StringVar(&cfg.User, "user", "", "payout address and worker name, ADDRESS.WORKER")
	fs.StringVar(&cfg.Pass, "pass", "x", "pool password")
	fs.Float64Var(&cfg.SuggestDiff, "suggest-diff", 0, "send mining.suggest_difficulty with this difficulty (0: don't)")
	fs.BoolVar(&cfg.NoVersionRolling, "no-version-rolling", false, "do not negotiate BIP 310 version rolling")
	fs.BoolVar(&cfg.V2Standard, "sv2-standard-channel", false, "on Stratum V2 pools, open a standard (header-only) channel instead of an extended one")
	fs.IntVar(&cfg.Threads, "threads", 0, "CPU hashing threads (0: every core)")
	fs.StringVar(&cfg.Impl, "impl", "", "force a SHA-256d implementation (see 'hashforge bench'; empty: fastest)")
	fs.StringVar(&cfg.Device, "device", "cpu", "devices to mine on: cpu, opencl:N, or a comma-separated list")
	fs.BoolVar(&cfg.Benchmark, "benchmark", false, "mine a synthetic job without a pool")
	fs.Float64Var(&cfg.BenchmarkDiff, "benchmark-diff", 1.0/256, "share difficulty of the --benchmark job")
	fs.DurationVar(&cfg.StatusInterval, "status-interval", 10*time.Second, "how often to print a status line")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no status lines or share logs, only warnings and the summary")
	fs.BoolVar(&cfg.JSONStats, "json-stats", false, "print status lines as JSON objects, one per line")
	fs.DurationVar(&cfg.ProbeInterval, "probe-interval", time.Minute, "while on a backup pool, how often to try the earlier ones")
	registerTLSClientFlags(fs, &tlsOpt)
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.Quiet && level == "info" {
		level = "warn"
	}
	log, err := newLogger(level, false)
	if err != nil {
		return err
	}
	cfg.URLs = urls
	if cfg.TLS, err = clientTLSConfig(tlsOpt, log); err != nil {
		return err
	}
	cfg.Logger = log
	m, err := worker.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return m.Run(ctx)
}
