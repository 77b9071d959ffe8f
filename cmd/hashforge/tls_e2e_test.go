package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/loadtest"
	"github.com/hashforge/hashforge/stratum"
)

// startHashforge runs the test binary as `hashforge args...` with its
// output captured, killed when the test ends.
func startHashforge(t *testing.T, args ...string) *serveProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: exec.Command(exe, args...), log: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), runAsMainEnv+"=1")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr, p.cmd.Stdout = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL) })
	return p
}

// writePair writes a self-signed pair for 127.0.0.1 in dir under name.
func writePair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := tlsreload.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func mustFingerprint(t *testing.T, certFile string) string {
	t.Helper()
	fp, err := tlsreload.Fingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// tlsFingerprintOf dials addr with TLS, trusting anything, and returns
// the SHA-256 of the certificate served.
func tlsFingerprintOf(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// TestStratumTLSEndToEnd runs serve with a stratum+ssl port on btcd
// regtest and PostgreSQL: the real `hashforge mine` over stratum+ssl
// with --tls-ca finds blocks the node accepts, every accepted share is a
// row; without --tls-ca it refuses the pool and says which flag to use;
// new certificate files are served to new connections while a session
// made before keeps working.
func TestStratumTLSEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	btcd, dbURL, rpc := regtestStack(t)
	poolAddr := btcd.MiningAddr
	startCount, err := rpc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	certFile, keyFile := writePair(t, certDir, "live")

	cfg := regtestServe(t, btcd, dbURL, "hashforge-tls-e2e")
	cfg.StratumTLSAddr, cfg.StratumTLSCert, cfg.StratumTLSKey = "127.0.0.1:0", certFile, keyFile
	cfg.StartDifficulty, cfg.MinDifficulty = 1, 0.0001

	// The flags go together.
	for _, bad := range []serveConfig{
		func() serveConfig { c := cfg; c.StratumTLSKey = ""; return c }(),
		func() serveConfig { c := cfg; c.StratumTLSAddr = ""; return c }(),
		func() serveConfig { c := cfg; c.StratumTLSKey = c.StratumTLSCert; return c }(),
	} {
		if err := runServe(ctx, bad, testLogger(slog.LevelInfo), nil); err == nil || !strings.Contains(err.Error(), "--stratum-tls") {
			t.Errorf("serve with tls addr %q cert %q key %q: %v, want an error naming the flags", bad.StratumTLSAddr, bad.StratumTLSCert, bad.StratumTLSKey, err)
		}
	}

	l := startServe(ctx, t, cfg)
	if l.StratumTLS == nil {
		t.Fatal("no stratum+ssl listener reported")
	}
	url := "stratum+ssl://" + l.StratumTLS.String()

	// Without --tls-ca the self-signed certificate is refused, clearly.
	refused := startHashforge(t, "mine", "--url", url, "--user", poolAddr+".untrusted", "--threads", "1", "--quiet")
	refused.waitLog(t, "--tls-ca", time.Minute)
	if log := refused.log.String(); !strings.Contains(log, url) || !strings.Contains(log, "certificate") {
		t.Errorf("refusal does not name the pool and its certificate:\n%s", log)
	}
	refused.stop(t)

	// A session made before the certificate changes.
	old := dialTLSStratum(ctx, t, l.StratumTLS.String(), certFile, poolAddr+".old")
	oldFP := mustFingerprint(t, certFile)

	// The miner over stratum+ssl, trusting the pool's certificate.
	miner := startHashforge(t, "mine", "--url", url, "--tls-ca", certFile, "--user", poolAddr+".tls",
		"--pass", "x,d=0.0001", "--threads", "1", "--quiet")
	var stats struct {
		Accepted uint64 `json:"shares_accepted"`
	}
	for deadline := time.Now().Add(90 * time.Second); stats.Accepted < 30; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d shares accepted over TLS in 90 s:\n%s", stats.Accepted, miner.log.String())
		}
		select {
		case <-miner.exited:
			t.Fatalf("miner exited:\n%s", miner.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		getJSONE2E(ctx, t, "http://"+l.HTTP.String()+"/api/v1/stats", &stats)
	}

	// New files: a new connection gets the new certificate (the files
	// are looked at once a second at most, so wait for it).
	next, nextKey := writePair(t, certDir, "next")
	newFP := mustFingerprint(t, next)
	copyFile(t, nextKey, keyFile)
	copyFile(t, next, certFile)
	for deadline := time.Now().Add(30 * time.Second); ; {
		fp := tlsFingerprintOf(t, l.StratumTLS.String())
		if fp == newFP {
			break
		}
		if fp != oldFP {
			t.Fatalf("served %s, neither the old %s nor the new %s", fp, oldFP, newFP)
		}
		if time.Now().After(deadline) {
			t.Fatal("new certificate not served 30 s after the files changed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The session from before still answers, on the old certificate.
	if res, err := old.Call(ctx, "mining.authorize", []any{poolAddr + ".old2", "x"}); err != nil || string(res) != "true" {
		t.Errorf("session from before the reload: authorize = %s, %v", res, err)
	}
	// The miner's running session carried on too: more shares after.
	before := stats.Accepted
	for deadline := time.Now().Add(60 * time.Second); stats.Accepted < before+10; {
		if time.Now().After(deadline) {
			t.Fatalf("no shares after the reload (%d → %d):\n%s", before, stats.Accepted, miner.log.String())
		}
		time.Sleep(100 * time.Millisecond)
		getJSONE2E(ctx, t, "http://"+l.HTTP.String()+"/api/v1/stats", &stats)
	}
	miner.stop(t)
	old.Close()

	// The ledger: every share the pool accepted is a row (all of them the
	// TLS miner's), each a block on regtest; the node took the blocks.
	getJSONE2E(ctx, t, "http://"+l.HTTP.String()+"/api/v1/stats", &stats)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shares, blockShares, acceptedBlocks int
	for wait := time.Now().Add(30 * time.Second); ; {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.is_block) FROM shares s
			JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name = 'tls'`, poolAddr).Scan(&shares, &blockShares); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE accepted AND verdict = 'accepted') FROM blocks`).Scan(&acceptedBlocks); err != nil {
			t.Fatal(err)
		}
		if uint64(shares) == stats.Accepted && acceptedBlocks == blockShares || time.Now().After(wait) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if uint64(shares) != stats.Accepted || blockShares != shares || acceptedBlocks != shares {
		t.Errorf("ledger: %d share rows (%d blocks), %d accepted block rows; the pool accepted %d", shares, blockShares, acceptedBlocks, stats.Accepted)
	}
	endCount, err := rpc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if endCount-startCount != int64(acceptedBlocks) || acceptedBlocks == 0 {
		t.Errorf("node's chain grew by %d, the ledger has %d accepted blocks", endCount-startCount, acceptedBlocks)
	}
	var lastHash string
	if err := conn.QueryRow(ctx, `SELECT hash FROM blocks WHERE accepted ORDER BY height DESC LIMIT 1`).Scan(&lastHash); err != nil {
		t.Fatal(err)
	}
	if best, err := rpc.GetBestBlockHash(ctx); err != nil || best != lastHash {
		t.Errorf("node's best block %s (%v), the ledger's last %s", best, err, lastHash)
	}
}

// dialTLSStratum subscribes and authorizes a Stratum client over TLS,
// trusting caFile.
func dialTLSStratum(ctx context.Context, t *testing.T, addr, caFile, user string) *stratum.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := stratum.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	go func() {
		for range c.Notifications() {
		}
	}()
	if _, err := c.Call(ctx, "mining.subscribe", []any{"tls-e2e"}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize over TLS = %s, %v", res, err)
	}
	return c
}

// copyFile replaces to with from's bytes, atomically (as certbot's
// renewals do), its time moved ahead so that the change is seen.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(time.Minute)
	if err := os.Chtimes(to+".new", ts, ts); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".new", to); err != nil {
		t.Fatal(err)
	}
}

// TestLoadtestOverTLS: the load generator over stratum+ssl against the
// real pool; every accepted reply is a row.
func TestLoadtestOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	btcd, dbURL, _ := regtestStack(t)
	certFile, keyFile := writePair(t, t.TempDir(), "pool")
	cfg := regtestServe(t, btcd, dbURL, "hashforge-loadtest-tls")
	cfg.HTTPAddr = ""
	cfg.StratumTLSAddr, cfg.StratumTLSCert, cfg.StratumTLSKey = "127.0.0.1:0", certFile, keyFile
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

	out := captureStdout(t, func() error {
		return cmdLoadtest([]string{"--url", "stratum+ssl://" + l.StratumTLS.String(), "--tls-ca", certFile,
			"--miners", "10", "--duration", "3s", "--user", btcd.MiningAddr + ".ltls", "--json"})
	})
	var rep loadtest.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("loadtest printed %q: %v", out, err)
	}
	logReport(t, "accept over tls", rep)
	if rep.Sessions != 10 || rep.ConnectErrors != 0 || rep.Accepted == 0 || rep.Accepted+rep.Rejected+rep.Unanswered != rep.Submitted {
		t.Errorf("over TLS: %d sessions, %d connect errors (%s), %d submitted, %d accepted, %d rejected, %d unanswered",
			rep.Sessions, rep.ConnectErrors, rep.FirstError, rep.Submitted, rep.Accepted, rep.Rejected, rep.Unanswered)
	}
	for reason := range rep.RejectedByReason {
		if !strings.HasPrefix(reason, "21 ") {
			t.Errorf("refused for %q", reason)
		}
	}
	stopSrv()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if rows := shareRows(ctx, t, dbURL, btcd.MiningAddr, "ltls"); rows != rep.Accepted {
		t.Errorf("ledger has %d share rows, the run over TLS counted %d accepted", rows, rep.Accepted)
	}
}
