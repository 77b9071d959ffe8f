package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BtcwalletModule and BtcwalletVersion pin the wallet payout tests run
// against. btcwallet has no tagged release that builds with current Go
// modules; this is the pseudo-version `go install …@latest` resolved to.
const (
	BtcwalletModule  = "github.com/btcsuite/btcwallet"
	BtcwalletVersion = "v0.16.10-0.20240718224643-db3a4a2543bd"
)

// BtcwalletPassphrase is the private passphrase of a wallet made with
// --createtemp.
const BtcwalletPassphrase = "password"

// InstallBtcwallet returns the path of a btcwallet binary of
// BtcwalletVersion, building it into the cache on first use like
// InstallBtcd. $HASHFORGE_BTCWALLET names a binary to use instead.
func InstallBtcwallet(ctx context.Context) (string, error) {
	return installGoTool(ctx, "HASHFORGE_BTCWALLET", BtcwalletModule, BtcwalletVersion, "btcwallet", nil)
}

// BtcwalletOptions configures StartBtcwallet.
type BtcwalletOptions struct {
	// Btcd is the node the wallet follows; it must run in simnet
	// (btcwallet has no regtest mode).
	Btcd *Btcd
	// DataDir holds the wallet, logs and config; empty means a temporary
	// directory that Stop removes. A DataDir that already holds a wallet
	// is reopened (restart tests).
	DataDir string
	// Port is the legacy RPC port on 127.0.0.1; 0 picks a free one.
	Port int
	// PortHint, when Port is 0, is a port to take if it is free once a
	// server left in DataDir by a killed run is stopped (a restart that
	// keeps its ports); otherwise a free one is picked.
	PortHint int
	// RPCUser and RPCPass are the wallet's RPC credentials; empty means
	// "hashforge" and a random password.
	RPCUser, RPCPass string
	// ReadyTimeout bounds the wait for the wallet to talk to btcd; 0
	// means 60 s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Btcwallet is a running btcwallet connected to a simnet btcd, unlocked.
type Btcwallet struct {
	rpcChild
	btcd *Btcd
	log  *slog.Logger
}

// StartBtcwallet installs btcwallet if needed, creates a wallet (passphrase
// BtcwalletPassphrase) unless DataDir has one, starts it against opts.Btcd
// without TLS on either side (both on 127.0.0.1), waits until its chain
// connection is up and it has caught up with the node's tip, and unlocks it.
func StartBtcwallet(ctx context.Context, opts BtcwalletOptions) (*Btcwallet, error) {
	if opts.Btcd == nil || opts.Btcd.Network != "simnet" {
		return nil, errors.New("start btcwallet: needs a btcd running in simnet")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bin, err := InstallBtcwallet(ctx)
	if err != nil {
		return nil, err
	}
	w := &Btcwallet{btcd: opts.Btcd, log: log}
	if w.DataDir, w.temp, err = childDataDir(ctx, opts.DataDir, "btcwallet", log); err != nil {
		return nil, err
	}
	fail := func(err error) (*Btcwallet, error) {
		if w.temp {
			os.RemoveAll(w.DataDir)
		}
		return nil, err
	}
	if w.RPCHost, w.RPCUser, w.RPCPass, err = childRPC(opts.Port, opts.PortHint, opts.RPCUser, opts.RPCPass); err != nil {
		return fail(err)
	}
	conf := filepath.Join(w.DataDir, "btcwallet.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return fail(fmt.Errorf("write btcwallet config: %w", err))
	}
	appData := filepath.Join(w.DataDir, "app")
	args := []string{
		"--simnet",
		"--configfile=" + conf,
		"--appdata=" + appData,
		"--logdir=" + filepath.Join(w.DataDir, "logs"),
		"--rpcconnect=" + opts.Btcd.RPCHost,
		"--btcdusername=" + opts.Btcd.RPCUser,
		"--btcdpassword=" + opts.Btcd.RPCPass,
		// btcd runs with --notls; btcwallet allows plain connections
		// only on localhost, which both ends are.
		"--noclienttls",
		"--noservertls",
		"--rpclisten=" + w.RPCHost,
		"--username=" + w.RPCUser,
		"--password=" + w.RPCPass,
	}
	// --createtemp makes a wallet without a terminal, but refuses to run
	// over an existing one.
	if _, err := os.Stat(filepath.Join(appData, "simnet", "wallet.db")); errors.Is(err, os.ErrNotExist) {
		args = append(args, "--createtemp")
	}
	if err := w.launch(ctx, exec.Command(bin, args...), w.outputPath()); err != nil {
		return fail(err)
	}
	start := time.Now()
	if err := w.waitReady(ctx, opts.ReadyTimeout); err != nil {
		_ = w.proc.stop(context.WithoutCancel(ctx))
		return fail(withLog(err, w.outputPath()))
	}
	// No timeout (0): the wallet stays unlocked while it runs.
	if err := w.rpc.call(ctx, "walletpassphrase", []any{BtcwalletPassphrase, 0}, nil); err != nil {
		_ = w.proc.stop(context.WithoutCancel(ctx))
		return fail(withLog(fmt.Errorf("unlock btcwallet: %w", err), w.outputPath()))
	}
	log.Info("devstack: btcwallet started", "rpc", w.RPCHost, "dir", w.DataDir,
		"took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// waitReady waits until the wallet's chain connection is up ("Chain RPC
// is inactive" until then) and it has synced to the node's tip.
func (w *Btcwallet) waitReady(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// WaitSynced retries until the wallet answers at the node's height,
	// the process exits, or the timeout.
	if err := w.WaitSynced(ctx); err != nil {
		return fmt.Errorf("btcwallet not ready after %s: %w", timeout, err)
	}
	return nil
}

// WaitSynced waits until the wallet has processed the node's current tip,
// so that coinbases and payments mined so far are in its balance.
func (w *Btcwallet) WaitSynced(ctx context.Context) error {
	var lastErr error
	for {
		var tip, have int64
		lastErr = w.btcd.rpc.call(ctx, "getblockcount", nil, &tip)
		if lastErr == nil {
			lastErr = w.rpc.call(ctx, "getblockcount", nil, &have)
		}
		if lastErr == nil && have >= tip {
			return nil
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("wallet at height %d, node at %d", have, tip)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for btcwallet to sync: %w (last: %v)", ctx.Err(), lastErr)
		case <-w.proc.exited:
			return fmt.Errorf("btcwallet exited: %v", w.proc.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Call invokes a wallet RPC (tests: getnewaddress, getbalance, …).
func (w *Btcwallet) Call(ctx context.Context, method string, params []any, out any) error {
	return w.rpc.call(ctx, method, params, out)
}

// LogTail returns the last n lines of btcwallet's output and log.
func (w *Btcwallet) LogTail(n int) string {
	logFile := filepath.Join(w.DataDir, "logs", "simnet", "btcwallet.log")
	return strings.TrimSpace(tailFile(w.outputPath(), n) + "\n" + tailFile(logFile, n))
}

func (w *Btcwallet) outputPath() string { return filepath.Join(w.DataDir, "btcwallet.out") }

// Stop interrupts btcwallet, waits for it to exit and removes a temporary
// data dir. Only the first call does anything.
func (w *Btcwallet) Stop(ctx context.Context) error { return w.stop(ctx, "btcwallet") }
