package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/loadtest"
)

// loadtestDifficulty is the pool's share difficulty under load: above
// regtest's network difficulty (so every share is also a block, and the
// pool builds a clean job per share) and low enough that grinding a share
// costs the generator a few hundred hashes.
const loadtestDifficulty = 1e-8

// loadtestServe is serve as the load tests run it: the difficulty pinned
// at loadtestDifficulty (a share interval far below any real one keeps
// vardiff at the floor).
func loadtestServe(cfg *serveConfig) {
	cfg.StartDifficulty, cfg.MinDifficulty, cfg.ShareInterval = loadtestDifficulty, loadtestDifficulty, time.Millisecond
	// Reject mode from one address is what bans stop; these tests count
	// replies, so the pool keeps answering (TestFloodBannedHonestServed
	// runs the flood with bans on).
	cfg.Guard.Ban.Duration = -1
}

// shareRows counts the ledger's share rows of address's workers whose
// name is like pattern.
func shareRows(ctx context.Context, t *testing.T, dbURL, address, pattern string) int64 {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name LIKE $2`,
		address, pattern).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func logReport(t *testing.T, what string, rep loadtest.Report) {
	t.Helper()
	b, _ := json.Marshal(rep)
	t.Logf("%s: %s", what, b)
}

// TestLoadtestCountsEveryShare loads a real pool (serve in-process over
// btcd regtest and PostgreSQL) in each mode and holds the report to what
// the pool did: every accepted reply is exactly one row in the ledger,
// rejects are low-difficulty refusals that leave no row, and every idle
// session is authorized.
func TestLoadtestCountsEveryShare(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	btcd, dbURL, _ := regtestStack(t)
	cfg := regtestServe(t, btcd, dbURL, "hashforge-loadtest")
	cfg.HTTPAddr = ""
	loadtestServe(&cfg)

	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	ready := make(chan listeners, 1)
	served := make(chan error, 1)
	go func() { served <- runServe(srvCtx, cfg, testLogger(slog.LevelInfo), func(l listeners) { ready <- l }) }()
	var l listeners
	select {
	case l = <-ready:
	case err := <-served:
		t.Fatalf("serve exited early: %v", err)
	}
	url := "stratum+tcp://" + l.Stratum.String()
	addr := btcd.MiningAddr
	log := testLogger(slog.LevelInfo)

	// Accept: miners authorize as ADDRESS.lt0 … lt19.
	acc, err := loadtest.Run(ctx, loadtest.Config{URL: url, Miners: 20, Duration: 5 * time.Second,
		User: addr, Mode: loadtest.ModeAccept, PoolPID: os.Getpid(), Logger: log})
	logReport(t, "accept", acc)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Sessions != 20 || acc.ConnectErrors != 0 || acc.Disconnects != 0 {
		t.Errorf("accept: %d sessions, %d connect errors, %d disconnects; want 20, 0, 0 (%s)", acc.Sessions, acc.ConnectErrors, acc.Disconnects, acc.FirstError)
	}
	if acc.Accepted == 0 {
		t.Errorf("accept: no share accepted (%v)", acc.RejectedByReason)
	}
	if acc.Accepted+acc.Rejected+acc.Unanswered != acc.Submitted {
		t.Errorf("accept: %d accepted + %d rejected + %d unanswered != %d submitted", acc.Accepted, acc.Rejected, acc.Unanswered, acc.Submitted)
	}
	// On regtest every share is a block: a share ground between a block
	// and the pool's next job may be stale (21). Nothing else is refused.
	for reason := range acc.RejectedByReason {
		if !strings.HasPrefix(reason, "21 ") {
			t.Errorf("accept: refused for %q", reason)
		}
	}
	if acc.Jobs == 0 || acc.ReplyP50Ms <= 0 || acc.ReplyP99Ms < acc.ReplyP50Ms || acc.NotifyMaxSpreadMs < acc.NotifyP99Ms {
		t.Errorf("accept: %d jobs, reply p50 %g p99 %g, notify p99 %g max %g", acc.Jobs, acc.ReplyP50Ms, acc.ReplyP99Ms, acc.NotifyP99Ms, acc.NotifyMaxSpreadMs)
	}

	// Reject: one worker name for all, so its rows (none) are easy to find.
	rej, err := loadtest.Run(ctx, loadtest.Config{URL: url, Miners: 10, Duration: 3 * time.Second,
		User: addr + ".rej", Mode: loadtest.ModeReject, Logger: log})
	logReport(t, "reject", rej)
	if err != nil {
		t.Fatal(err)
	}
	if rej.Accepted != 0 || rej.Rejected == 0 || rej.Rejected != rej.RejectedByReason["23 low difficulty share"] {
		t.Errorf("reject: %d accepted, %d rejected %v; want only code 23", rej.Accepted, rej.Rejected, rej.RejectedByReason)
	}

	// Idle: sessions that hold on to their work.
	idle, err := loadtest.Run(ctx, loadtest.Config{URL: url, Miners: 50, Duration: 2 * time.Second,
		User: addr + ".idle", Mode: loadtest.ModeIdle, Logger: log})
	logReport(t, "idle", idle)
	if err != nil {
		t.Fatal(err)
	}
	if idle.Sessions != 50 || idle.Submitted != 0 || idle.Disconnects != 0 {
		t.Errorf("idle: %d sessions, %d submitted, %d disconnects; want 50, 0, 0 (%s)", idle.Sessions, idle.Submitted, idle.Disconnects, idle.FirstError)
	}

	// Stopping the pool flushes its ledger batcher; then the rows must
	// be exactly the accepted replies.
	stopSrv()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if rows := shareRows(ctx, t, dbURL, addr, "lt%"); rows != acc.Accepted {
		t.Errorf("ledger has %d share rows for the accept run's workers, the run counted %d accepted", rows, acc.Accepted)
	}
	if rows := shareRows(ctx, t, dbURL, addr, "%"); rows != acc.Accepted {
		t.Errorf("ledger has %d share rows in all, want the accept run's %d (reject and idle add none)", rows, acc.Accepted)
	}
}

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveProcess is `hashforge serve` in its own process (the test binary
// run as hashforge), so its CPU time is its own.
type serveProcess struct {
	cmd     *exec.Cmd
	addr    string // its Stratum address
	logPath string
	exited  chan struct{}
	waitErr error // once exited is closed
}

// startServeProcess runs serve at loadtestDifficulty on the regtest stack
// until the test ends, and returns once its Stratum port answers.
func startServeProcess(ctx context.Context, t *testing.T, btcd *devstack.Btcd, dbURL string) *serveProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{addr: freePort(t), logPath: filepath.Join(t.TempDir(), "serve.log"), exited: make(chan struct{})}
	diff := strconv.FormatFloat(loadtestDifficulty, 'g', -1, 64)
	p.cmd = exec.Command(exe, "serve", "--network", "regtest", "--node-url", "http://"+btcd.RPCHost,
		"--node-user", btcd.RPCUser, "--node-pass", btcd.RPCPass, "--pool-address", btcd.MiningAddr,
		"--database-url", dbURL, "--stratum-addr", p.addr, "--http-addr", "",
		"--spool-dir", t.TempDir(), "--start-difficulty", diff, "--min-difficulty", diff,
		"--share-interval", "1ms", "--log-level", "warn")
	p.cmd.Env = append(os.Environ(), runAsMainEnv+"=1")
	// A test binary that dies takes its pool along.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { _ = p.stop() })
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("serve exited before listening (%v): %s", p.waitErr, p.log())
		case <-ctx.Done():
			t.Fatalf("serve not listening on %s: %s", p.addr, p.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *serveProcess) pid() int { return p.cmd.Process.Pid }

func (p *serveProcess) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// stop interrupts serve (it flushes its ledger on the way out) and
// returns its exit; a second call returns the first's.
func (p *serveProcess) stop() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("serve still running 60 s after SIGINT: %v", p.waitErr)
	}
}

// TestLoadtestCommandJSON runs `hashforge loadtest --json --rate 20`
// (below the pool's flood guard of 100 requests a second a session, so
// latencies are the pool's work) through its flag parsing against `hashforge serve` in its own process, so the two
// CPU figures are the generator's and the pool's apart, and holds the
// JSON to the report's keys and the ledger to its accepted count.
func TestLoadtestCommandJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	btcd, dbURL, _ := regtestStack(t)
	pool := startServeProcess(ctx, t, btcd, dbURL)
	stratumAddr := pool.addr

	out := captureStdout(t, func() error {
		return cmdLoadtest([]string{"--url", "stratum+tcp://" + stratumAddr, "--miners", "20", "--duration", "5s",
			"--user", btcd.MiningAddr + ".cmd", "--mode", "accept", "--window", "8", "--rate", "20",
			"--pool-pid", strconv.Itoa(pool.pid()), "--json"})
	})
	t.Logf("hashforge loadtest --json: %s", out)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(out, &keys); err != nil {
		t.Fatalf("loadtest --json printed %q: %v", out, err)
	}
	for _, k := range []string{"accepted", "rejected", "rejected_by_reason", "shares_per_sec", "reply_p50_ms", "reply_p99_ms",
		"notify_p50_ms", "notify_p99_ms", "notify_max_spread_ms", "sessions", "connect_errors", "duration_sec",
		"submitted", "unanswered", "cpu_self_sec", "cpu_pool_sec"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("loadtest --json: no %q", k)
		}
	}
	var rep loadtest.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Sessions != 20 || rep.Accepted == 0 || rep.CPUPoolSec == nil || *rep.CPUPoolSec <= 0 || rep.CPUSelfSec <= 0 {
		t.Errorf("loadtest --json: %d sessions, %d accepted, pool CPU %v s, own CPU %g s; want 20, some, both > 0",
			rep.Sessions, rep.Accepted, rep.CPUPoolSec, rep.CPUSelfSec)
	}
	if rep.Accepted+rep.Rejected+rep.Unanswered != rep.Submitted || rep.Submitted > 20*20*5+20 {
		t.Errorf("loadtest --json: %d accepted + %d rejected + %d unanswered, %d submitted (at most 20/s for 5 s by 20 miners)",
			rep.Accepted, rep.Rejected, rep.Unanswered, rep.Submitted)
	}
	if err := pool.stop(); err != nil {
		t.Fatalf("serve: %v: %s", err, pool.log())
	}
	if rows := shareRows(ctx, t, dbURL, btcd.MiningAddr, "cmd"); rows != rep.Accepted {
		t.Errorf("ledger has %d share rows, the run counted %d accepted", rows, rep.Accepted)
	}

	// Flags are checked before anything is dialled.
	for _, args := range [][]string{
		{"--miners", "1"},
		{"--url", "stratum+tcp://" + stratumAddr, "--rate", "fast"},
		{"--url", "stratum+tcp://" + stratumAddr, "--mode", "flood"},
		{"--url", "stratum+tcp://" + stratumAddr, "--source-ips", "127.0.0.9-127.0.0.1"},
	} {
		if err := cmdLoadtest(args); err == nil {
			t.Errorf("loadtest %q: want an error", args)
		}
	}
}
