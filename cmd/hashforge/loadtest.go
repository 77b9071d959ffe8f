package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/loadtest"
)

// cmdLoadtest simulates --miners Stratum miners against --url for
// --duration and prints what the pool did (package loadtest).
func cmdLoadtest(args []string) error {
	var (
		cfg                    loadtest.Config
		rate, mode, ips, level string
		asJSON                 bool
		tlsOpt                 tlsreload.ClientOptions
	)
	fs := newFlagSet("loadtest", "--url stratum+tcp://HOST:PORT [--miners N] [--duration D] [--rate R|unlimited] [--mode accept|reject|idle] [--json]")
	fs.StringVar(&cfg.URL, "url", "", "pool to load, stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT (required)")
	fs.IntVar(&cfg.Miners, "miners", 100, "simulated miners, one session each")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long the run lasts, connecting included")
	fs.StringVar(&rate, "rate", "unlimited", "shares per second per miner (a number), or unlimited: as fast as --window allows")
	fs.StringVar(&cfg.User, "user", loadtest.DefaultUser, "ADDRESS[.worker] to authorize as; without a worker, miner N is ADDRESS.ltN. Use an address of the pool's network")
	fs.StringVar(&cfg.Pass, "pass", "x", "password (a pool reading d=N from it fixes the difficulty)")
	fs.StringVar(&mode, "mode", string(loadtest.ModeAccept), "accept: valid shares at the pool's difficulty; reject: shares that miss it (code 23); idle: hold sessions open")
	fs.StringVar(&ips, "source-ips", "", "local addresses to bind connections to, round-robin: a range 127.0.0.1-127.0.0.16 or a comma list (past 64k ports per address)")
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	fs.DurationVar(&cfg.PaceGrid, "pace-grid", 0, "with --rate, send the submits due within each such interval together (e.g. 5ms): less CPU for both sides, bunched arrivals; 0: evenly spread")
	fs.IntVar(&cfg.Window, "window", 8, "most submits in flight per miner without a reply")
	fs.IntVar(&cfg.PoolPID, "pool-pid", 0, "the pool's process id, to report its CPU time over the run beside ours (Linux /proc)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 5*time.Second, "after --duration, how long to wait for replies to submits in flight")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 256, "dials and handshakes in progress at once")
	registerTLSClientFlags(fs, &tlsOpt)
	fs.StringVar(&level, "log-level", "warn", "debug, info, warn or error (logs go to stderr, the report to stdout)")
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(fs.Output(), loadtest.ReportHelp)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.URL == "" {
		return errors.New("--url is required")
	}
	var err error
	if cfg.Rate, err = loadtest.ParseRate(rate); err != nil {
		return fmt.Errorf("--rate: %w", err)
	}
	if cfg.Mode, err = loadtest.ParseMode(mode); err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	if cfg.SourceIPs, err = loadtest.ParseSourceIPs(ips); err != nil {
		return fmt.Errorf("--source-ips: %w", err)
	}
	if cfg.Logger, err = newLogger(level, false); err != nil {
		return err
	}
	if cfg.TLS, err = clientTLSConfig(tlsOpt, cfg.Logger); err != nil {
		return err
	}

	ctx, stop := signalContext()
	defer stop()
	rep, runErr := loadtest.Run(ctx, cfg)
	if rep.Miners > 0 { // a run happened: its report is worth printing even when it failed
		if asJSON {
			err = json.NewEncoder(os.Stdout).Encode(rep)
		} else {
			err = rep.WriteText(os.Stdout)
		}
		if err != nil {
			return fmt.Errorf("print report: %w", err)
		}
	}
	if errors.Is(runErr, context.Canceled) {
		// Interrupted by the operator: what was measured so far is the
		// answer, the drain was skipped (see unanswered).
		cfg.Logger.Warn("load test interrupted before --duration")
		return nil
	}
	return runErr
}
