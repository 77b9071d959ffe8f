package devstack

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/btcaddr"
)

// BtcdOptions configures StartBtcd.
type BtcdOptions struct {
	// Network is "regtest" (the default) or "simnet" (what btcwallet needs).
	Network string
	// MiningAddr receives the coinbase of blocks mined with Generate. Empty
	// means a fresh P2WPKH address whose key is in Btcd.MiningKey.
	MiningAddr string
	// DataDir holds the chain, logs and config; empty means a temporary
	// directory that Stop removes.
	DataDir string
	// Port is the RPC port on 127.0.0.1; 0 picks a free one.
	Port int
	// PortHint, when Port is 0, is a port to take if it is free once a
	// server left in DataDir by a killed run is stopped (a restart that
	// keeps its ports); otherwise a free one is picked.
	PortHint int
	// RPCUser and RPCPass are the RPC credentials; empty means "hashforge"
	// and a random password. Fixing them lets a restarted node keep its
	// clients (dev restarts, node-outage tests).
	RPCUser, RPCPass string
	// NoInitialBlock leaves the chain as it is. By default one block is
	// mined at start when the tip is older than staleTip, because btcd
	// refuses getblocktemplate while its tip is older than 24 hours: every
	// test network's genesis is, and so is a kept chain left for a day.
	NoInitialBlock bool
	// Listen opens btcd's peer-to-peer port on 127.0.0.1 (Btcd.P2PHost),
	// so that other nodes can peer with it. Without it btcd takes no
	// peers, which is what a lone test node wants.
	Listen bool
	// P2PPort is the peer-to-peer port when Listen is set; 0 picks a free
	// one. A node restarted on the same port gets its peers back.
	P2PPort int
	// AddPeers are peer-to-peer addresses (another node's P2PHost) that
	// btcd keeps connected to, reconnecting when they come back, so that
	// a block mined or submitted on one node reaches the others.
	AddPeers []string
	// ReadyTimeout bounds the wait for the RPC server; 0 means 30 s.
	ReadyTimeout time.Duration
	// Logger receives progress lines; nil means slog.Default().
	Logger *slog.Logger
}

// Btcd is a running btcd node, without peers unless BtcdOptions asked
// for them.
type Btcd struct {
	rpcChild
	// P2PHost is the peer-to-peer address (127.0.0.1:port) when
	// BtcdOptions.Listen was set, else "".
	P2PHost    string
	Network    string // "regtest" or "simnet"
	MiningAddr string
	// MiningKey is the WIF private key of MiningAddr when StartBtcd
	// generated the address, so tests can spend the coinbase outputs.
	MiningKey string
	// Params are the chain parameters of Network.
	Params *chaincfg.Params

	log *slog.Logger
}

// StartBtcd installs btcd if needed, starts it, waits until its RPC server
// answers and, unless opts.NoInitialBlock, mines one block.
func StartBtcd(ctx context.Context, opts BtcdOptions) (*Btcd, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Btcd{Network: opts.Network, log: log}
	var netFlag string
	switch b.Network {
	case "", "regtest":
		b.Network, netFlag, b.Params = "regtest", "--regtest", &chaincfg.RegressionNetParams
	case "simnet":
		netFlag, b.Params = "--simnet", &chaincfg.SimNetParams
	default:
		return nil, fmt.Errorf("start btcd: unsupported network %q (want regtest or simnet)", opts.Network)
	}
	bin, err := InstallBtcd(ctx)
	if err != nil {
		return nil, err
	}

	b.MiningAddr = opts.MiningAddr
	if b.MiningAddr == "" {
		if b.MiningAddr, b.MiningKey, err = newMiningAddress(b.Params); err != nil {
			return nil, err
		}
	} else if _, err := btcaddr.Decode(b.MiningAddr, b.Params); err != nil {
		return nil, fmt.Errorf("start btcd: mining address %q is not a %s address: %w", b.MiningAddr, b.Network, err)
	}

	if b.DataDir, b.temp, err = childDataDir(ctx, opts.DataDir, "btcd", log); err != nil {
		return nil, err
	}
	fail := func(err error) (*Btcd, error) {
		if b.temp {
			os.RemoveAll(b.DataDir)
		}
		return nil, err
	}
	if b.RPCHost, b.RPCUser, b.RPCPass, err = childRPC(opts.Port, opts.PortHint, opts.RPCUser, opts.RPCPass); err != nil {
		return fail(err)
	}
	// An empty config file keeps a developer's ~/.btcd/btcd.conf out of
	// the picture; btcd still creates ~/.btcd, which is harmless.
	conf := filepath.Join(b.DataDir, "btcd.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return fail(fmt.Errorf("write btcd config: %w", err))
	}

	args := []string{
		netFlag,
		"--configfile=" + conf,
		"--datadir=" + filepath.Join(b.DataDir, "data"),
		"--logdir=" + filepath.Join(b.DataDir, "logs"),
		"--notls",
		"--nodnsseed",
		"--rpclisten=" + b.RPCHost,
		"--rpcuser=" + b.RPCUser,
		"--rpcpass=" + b.RPCPass,
		"--utxocachemaxsize=10",
		"--miningaddr=" + b.MiningAddr,
	}
	if opts.Listen {
		port := opts.P2PPort
		if port == 0 {
			if port, err = freePort(); err != nil {
				return fail(err)
			}
		}
		b.P2PHost = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args = append(args, "--listen="+b.P2PHost)
	} else {
		args = append(args, "--nolisten")
	}
	for _, p := range opts.AddPeers {
		args = append(args, "--addpeer="+p)
	}
	// Not CommandContext: the node must outlive the start-up context.
	if err := b.launch(ctx, exec.Command(bin, args...), b.outputPath()); err != nil {
		return fail(err)
	}

	start := time.Now()
	if err := b.waitReady(ctx, opts.ReadyTimeout); err != nil {
		_ = b.proc.stop(context.WithoutCancel(ctx))
		return fail(withLog(err, b.outputPath()))
	}
	log.Info("devstack: btcd started", "network", b.Network, "rpc", b.RPCHost,
		"dir", b.DataDir, "took", time.Since(start).Round(time.Millisecond))
	if !opts.NoInitialBlock {
		if err := b.freshenTip(ctx); err != nil {
			_ = b.proc.stop(context.WithoutCancel(ctx))
			return fail(withLog(err, b.outputPath()))
		}
	}
	return b, nil
}

// staleTip is how old a tip may be before StartBtcd mines a block on it:
// well inside btcd's 24 hours, so a template can be had for a while.
const staleTip = 12 * time.Hour

// freshenTip mines one block when the tip is older than staleTip.
func (b *Btcd) freshenTip(ctx context.Context) error {
	var best string
	var hdr struct {
		Time int64 `json:"time"`
	}
	if err := b.rpc.call(ctx, "getbestblockhash", nil, &best); err != nil {
		return err
	}
	if err := b.rpc.call(ctx, "getblockheader", []any{best, true}, &hdr); err != nil {
		return err
	}
	if age := time.Since(time.Unix(hdr.Time, 0)); age < staleTip {
		return nil
	}
	_, err := b.Generate(ctx, 1)
	return err
}

// waitReady polls getblockcount until the RPC server answers, the process
// exits, or the timeout passes.
func (b *Btcd) waitReady(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		callCtx, cancelCall := context.WithTimeout(ctx, time.Second)
		var n int64
		lastErr = b.rpc.call(callCtx, "getblockcount", nil, &n)
		cancelCall()
		if lastErr == nil {
			return nil
		}
		select {
		case <-b.proc.exited:
			return fmt.Errorf("btcd exited during start-up: %v", b.proc.err)
		case <-ctx.Done():
			return fmt.Errorf("btcd RPC not ready after %s: %w (last error: %v)", timeout, ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// Generate mines n blocks to MiningAddr and returns their hashes.
func (b *Btcd) Generate(ctx context.Context, n int) ([]string, error) {
	var hashes []string
	if err := b.rpc.call(ctx, "generate", []any{n}, &hashes); err != nil {
		return nil, fmt.Errorf("btcd generate %d: %w", n, err)
	}
	return hashes, nil
}

// RPCURL is the node's RPC endpoint with credentials, as pool/node.New and
// the --node flag take it.

// LogPath is btcd's own log file.
func (b *Btcd) LogPath() string {
	return filepath.Join(b.DataDir, "logs", b.Network, "btcd.log")
}

// LogTail returns the last n lines of btcd's log, for test failures and
// error reports.
func (b *Btcd) LogTail(n int) string { return tailFile(b.LogPath(), n) }

// outputPath collects btcd's stdout and stderr, which hold start-up errors
// and panics that never reach its log file.
func (b *Btcd) outputPath() string { return filepath.Join(b.DataDir, "btcd.out") }

// Exited is closed when the btcd process has exited.
func (b *Btcd) Exited() <-chan struct{} { return b.proc.exited }

// Stop interrupts btcd, waits for it to flush and exit (killing it if ctx
// ends first) and removes a temporary data dir. Only the first call does
// anything.
func (b *Btcd) Stop(ctx context.Context) error {
	err := b.stop(ctx, "btcd")
	if err == nil {
		b.log.Info("devstack: btcd stopped", "rpc", b.RPCHost)
	}
	return err
}

// newMiningAddress makes a P2WPKH address from a fresh key.
func newMiningAddress(params *chaincfg.Params) (addr, wif string, err error) {
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return "", "", fmt.Errorf("generate mining key: %w", err)
	}
	a, err := address.NewAddressWitnessPubKeyHash(address.Hash160(key.PubKey().SerializeCompressed()), params)
	if err != nil {
		return "", "", fmt.Errorf("derive mining address: %w", err)
	}
	w, err := btcutil.NewWIF(key, params, true)
	if err != nil {
		return "", "", fmt.Errorf("encode mining key: %w", err)
	}
	return a.EncodeAddress(), w.String(), nil
}

// rpcChild is what devstack's RPC servers (btcd, btcwallet) share: a data
// dir (removed at Stop when it was made for them), an RPC endpoint on
// loopback, the process, and a client for devstack's own calls.
type rpcChild struct {
	RPCHost string // 127.0.0.1:port
	RPCUser string
	RPCPass string
	DataDir string

	proc     *process
	rpc      *rpcClient
	temp     bool
	stopOnce sync.Once
	stopErr  error
}

// RPCURL is the RPC endpoint with credentials (--node-url, --wallet-url).
func (c *rpcChild) RPCURL() string {
	u := url.URL{Scheme: "http", User: url.UserPassword(c.RPCUser, c.RPCPass), Host: c.RPCHost}
	return u.String()
}

// launch starts a child's process with its output appended to outPath,
// and remembers its pid in the data dir, for the next start to stop it
// should this run be killed (see childDataDir).
func (c *rpcChild) launch(ctx context.Context, cmd *exec.Cmd, outPath string) error {
	pidFile := filepath.Join(c.DataDir, filepath.Base(cmd.Path)+pidSuffix)
	var err error
	if c.proc, err = startProcess(cmd, outPath); err != nil {
		return err
	}
	c.rpc = newRPCClient(c.RPCHost, c.RPCUser, c.RPCPass)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(c.proc.cmd.Process.Pid)), 0o644); err != nil {
		_ = c.proc.stop(context.WithoutCancel(ctx))
		return fmt.Errorf("write %s: %w", pidFile, err)
	}
	return nil
}

// stop ends the process and removes a temporary data dir, once.
func (c *rpcChild) stop(ctx context.Context, name string) error {
	c.stopOnce.Do(func() {
		c.stopErr = c.proc.stop(ctx)
		if c.temp {
			if err := os.RemoveAll(c.DataDir); err != nil && c.stopErr == nil {
				c.stopErr = fmt.Errorf("remove %s temp dir: %w", name, err)
			}
		}
	})
	return c.stopErr
}

// childDataDir returns dir, created if needed, or a new temporary directory
// (temp true: the caller removes it) when dir is empty. A process a killed
// run left running in dir is stopped first: it would hold the data dir's
// locks and its port.
func childDataDir(ctx context.Context, dir, name string, log *slog.Logger) (string, bool, error) {
	if dir == "" {
		dir, err := os.MkdirTemp("", "hashforge-"+name+"-")
		if err != nil {
			return "", false, fmt.Errorf("create %s temp dir: %w", name, err)
		}
		return dir, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("create %s data dir: %w", name, err)
	}
	stopLeftovers(ctx, dir, log)
	return dir, false, nil
}

// childRPC picks a child's RPC address and credentials: the given ones, or
// the hinted port if it is free, else a free loopback port, user
// "hashforge" and a random password.
func childRPC(port, hint int, user, pass string) (host, u, p string, err error) {
	if port == 0 {
		port = portIfFree(hint)
	}
	if port == 0 {
		if port, err = freePort(); err != nil {
			return "", "", "", err
		}
	}
	if user == "" {
		user = "hashforge"
	}
	if pass == "" {
		pass = rand.Text()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), user, pass, nil
}
