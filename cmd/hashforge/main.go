// Command hashforge is a SHA-256d mining pool server and miner in one binary.
// Each subcommand only parses its configuration and wires packages together;
// the logic lives in the packages named in docs/DESIGN.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name  string
	short string
	run   func(args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the Stratum server, job manager, share ledger and dashboard", cmdServe},
		{"mine", "run the bundled miner against a Stratum pool", cmdMine},
		{"migrate", "apply database migrations and exit", cmdMigrate},
		{"payout", "settle blocks and pay miners once (run), or show balances and batches (status)", cmdPayout},
		{"bench", "print the hashrate of every SHA-256d implementation on this machine", cmdBench},
		{"devices", "list the CPU and OpenCL devices the miner can use", cmdDevices},
		{"loadtest", "simulate N Stratum miners against a pool for a while and report what it did", cmdLoadtest},
		{"dev", "run the whole stack on this machine, kept in --data-dir: PostgreSQL, simnet node, wallet, pool, miner", cmdDev},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: hashforge <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'hashforge <command> --help' for the flags of a command.\n"+
		"Every flag can also be set with an environment variable HASHFORGE_<FLAG> (dashes become underscores).\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(os.Args[2:])
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "hashforge %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "hashforge: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

// signalContext is cancelled on SIGINT or SIGTERM so every subcommand shuts
// down the same way: stop accepting work, flush, stop children.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newLogger(level string, json bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("parse --log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if json {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}
