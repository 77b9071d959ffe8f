package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/loadtest"
	"github.com/hashforge/hashforge/pool/node"
)

// serveProc is `hashforge serve` as a real process (the test binary run as
// hashforge), so that it can be killed with SIGKILL like a crashed pool.
type serveProc struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startServeProc(t *testing.T, args ...string) *serveProc {
	t.Helper()
	return startServeProcEnv(t, nil, args...)
}

// startServeProcEnv is startServeProc with extra environment variables.
func startServeProcEnv(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: exec.Command(exe, append([]string{"serve"}, args...)...), log: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), runAsMainEnv+"=1"), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = p.log
	p.cmd.Stdout = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	return p
}

func (p *serveProc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// waitLog waits for a line containing s in the process's log.
func (p *serveProc) waitLog(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.log.String(), s) {
		select {
		case <-p.exited:
			t.Fatalf("serve exited before logging %q:\n%s", s, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q within %v:\n%s", s, within, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatalf("serve did not stop within a minute of SIGTERM:\n%s", p.log.String())
	}
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCrashLosesNothing kills a real `hashforge serve` with SIGKILL while
// a load generator mines through it against a real btcd (regtest: nearly
// every share is a block) and a real PostgreSQL, with the database up and
// after an outage, and starts it again. Afterwards every share the load
// generator heard accepted is a row, no share is stored twice, and every
// block of the pool's in the node's chain is in the blocks table.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: real processes killed and restarted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "regtest"})
	rpc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true, Logger: testLogger(0)})
	devtest.Require(t, "start a private PostgreSQL of this test's own", err)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })

	for i, tc := range []struct {
		name   string
		outage bool
		// loseJournal deletes the block journal before the restart: the
		// blocks recorded during the outage must be found in the chain.
		loseJournal bool
		wantLog     string
		// graceful stops it with SIGTERM instead (a restart, not a crash).
		graceful bool
	}{
		{"database up", false, false, "", false},
		{"after a database outage", true, false, "block journal recorded in the ledger", false},
		{"after a database outage, journal lost", true, true, "BLOCK FOUND IN THE CHAIN THAT THE LEDGER DID NOT HAVE", false},
		{"graceful restart under load", false, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbURL, err := pg.CreateDatabase(ctx, fmt.Sprintf("crash_%d", i))
			if err != nil {
				t.Fatal(err)
			}
			tag := fmt.Sprintf("/crash-%d/", i)
			spool := filepath.Join(t.TempDir(), "spool")
			addr := freeLoopbackPort(t)
			args := []string{"--network", "regtest", "--node-url", "http://" + btcd.RPCHost,
				"--node-user", btcd.RPCUser, "--node-pass", btcd.RPCPass, "--pool-address", btcd.MiningAddr,
				"--database-url", dbURL, "--stratum-addr", addr, "--http-addr", "",
				"--spool-dir", spool, "--coinbase-tag", tag,
				"--start-difficulty", "1e-6", "--min-difficulty", "1e-6", "--log-level", "debug"}
			tipBefore, err := rpc.GetBlockCount(ctx)
			if err != nil {
				t.Fatal(err)
			}

			p := startServeProc(t, args...)
			p.waitLog(t, "pool listening", time.Minute)
			p.waitLog(t, "new job", time.Minute)

			type result struct {
				rep loadtest.Report
				err error
			}
			ran := make(chan result, 1)
			go func() {
				rep, err := loadtest.Run(ctx, loadtest.Config{URL: "stratum+tcp://" + addr, Miners: 8, Duration: 8 * time.Second,
					Rate: 4, User: btcd.MiningAddr, Mode: loadtest.ModeAccept, DrainTimeout: 2 * time.Second})
				ran <- result{rep, err}
			}()
			if tc.outage {
				time.Sleep(2 * time.Second)
				if err := pg.Pause(ctx); err != nil {
					t.Fatal(err)
				}
				time.Sleep(3 * time.Second) // shares go on: kept in the spool
			} else {
				time.Sleep(4 * time.Second)
			}
			if tc.graceful {
				p.signal(syscall.SIGTERM)
			} else {
				p.signal(syscall.SIGKILL)
			}
			<-p.exited
			res := <-ran
			if res.err != nil {
				t.Fatalf("loadtest: %v", res.err)
			}
			rep := res.rep
			t.Logf("before the kill: %d submitted, %d accepted, %d rejected %v, %d unanswered",
				rep.Submitted, rep.Accepted, rep.Rejected, rep.RejectedByReason, rep.Unanswered)
			if rep.Accepted < 10 {
				t.Fatalf("only %d shares accepted before the kill: the test proves nothing", rep.Accepted)
			}
			if tc.outage {
				if err := pg.Resume(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tc.loseJournal {
				if err := os.Remove(filepath.Join(spool, "blocks.journal")); err != nil {
					t.Fatal(err)
				}
			}

			// The next process replays the spool and the block journal and
			// checks the chain; a clean stop then applies what is left.
			p2 := startServeProc(t, args...)
			p2.waitLog(t, "chain checked for the pool's blocks", 2*time.Minute)
			p2.stop(t)
			if tc.wantLog != "" && !strings.Contains(p2.log.String(), tc.wantLog) {
				t.Errorf("the restarted pool did not log %q: what this case tests did not happen", tc.wantLog)
			}

			db, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close(ctx)
			var rows, distinct int64
			// The hash's difficulty tells shares apart: two rows alike
			// in it, worker, job and time are one share stored twice.
			if err := db.QueryRow(ctx, `SELECT count(*), count(DISTINCT (time, worker_id, job_id, actual_difficulty, extranonce1)) FROM shares`).
				Scan(&rows, &distinct); err != nil {
				t.Fatal(err)
			}
			// A share can be kept (fsynced) and its reply never leave
			// before the kill: at most the unanswered ones are extra.
			if rows < rep.Accepted || rows > rep.Accepted+rep.Unanswered || distinct != rows {
				// On regtest every share is a block: the blocks without a
				// share row name what went missing.
				var missing []string
				if r, err := db.Query(ctx, `SELECT height || ' ' || hash || ' ' || found_at FROM blocks b
					WHERE NOT EXISTS (SELECT 1 FROM shares s WHERE s.block_hash = b.hash) ORDER BY height`); err == nil {
					missing, _ = pgx.CollectRows(r, pgx.RowTo[string])
				}
				t.Fatalf("%d rows (%d distinct) for %d shares heard accepted and %d unanswered; blocks without a share row %v\nthe killed pool logged:\n%s\nthe restarted pool logged:\n%s",
					rows, distinct, rep.Accepted, rep.Unanswered, missing, p.log.String(), p2.log.String())
			}
			// A graceful stop answers every share it took before it goes.
			if tc.graceful && (rep.Unanswered != 0 || rows != rep.Accepted) {
				t.Fatalf("graceful stop: %d rows for %d shares heard accepted, %d unanswered", rows, rep.Accepted, rep.Unanswered)
			}

			tipAfter, err := rpc.GetBlockCount(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ours, missing int
			for h := tipBefore + 1; h <= tipAfter; h++ {
				hash, err := rpc.GetBlockHash(ctx, h)
				if err != nil {
					t.Fatal(err)
				}
				cb, err := rpc.GetBlockCoinbase(ctx, hash)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(cb.ScriptSig, []byte(tag)) {
					continue
				}
				ours++
				var status string
				if err := db.QueryRow(ctx, "SELECT status FROM blocks WHERE hash = $1", hash).Scan(&status); err != nil {
					missing++
					t.Errorf("block %d %s of the pool's is in the chain but not in blocks: %v", h, hash, err)
					continue
				}
				if status == "rejected" || status == "orphaned" {
					t.Errorf("block %d %s in the chain has status %s", h, hash, status)
				}
			}
			if ours == 0 {
				t.Fatal("no block of the pool's in the chain: the test proves nothing")
			}
			t.Logf("%d shares stored for %d heard accepted (%d unanswered); %d of the pool's blocks in the chain, %d missing",
				rows, rep.Accepted, rep.Unanswered, ours, missing)
		})
	}
}
