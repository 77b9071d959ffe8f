package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

// devLines are the stdout lines of `hashforge dev` that scripts read.
var devLines = []string{"stratum", "dashboard", "node-rpc", "database", "wallet", "stratum-tls", "stratum-tls-cert", "stratum-tls-sha256", "admin", "stratum2"}

// devRun is a `hashforge dev` process: the test binary run as hashforge
// (runAsMainEnv), so it can be interrupted and killed like the real one.
type devRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  map[string]string
	log    string // its stderr
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startDev runs `hashforge dev --data-dir dir` on free ports until it has
// printed its lines. An error says why it exited before, with its log.
func startDev(t *testing.T, dir string, args ...string) (*devRun, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"dev", "--data-dir", dir, "--stratum-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...)
	d := &devRun{t: t, cmd: exec.Command(exe, args...),
		log: filepath.Join(t.TempDir(), "dev.log"), exited: make(chan struct{})}
	d.cmd.Env = append(os.Environ(), runAsMainEnv+"=1")
	// A test binary that dies takes its dev stack along.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd.Stderr = logf
	out := &devStdout{lines: map[string]string{}, ready: make(chan struct{})}
	d.cmd.Stdout = out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop(os.Interrupt)
		if len(out.other) > 0 {
			t.Errorf("hashforge dev printed %q on stdout, which holds only its lines for scripts", out.other)
		}
	})
	select {
	case <-out.ready:
		d.lines = out.snapshot()
	case <-d.exited:
		return nil, fmt.Errorf("hashforge dev exited before it was ready (%v): %s", d.err, d.logTail())
	case <-time.After(5 * time.Minute):
		d.stop(syscall.SIGKILL)
		return nil, fmt.Errorf("hashforge dev not ready after 5 minutes: %s", d.logTail())
	}
	return d, nil
}

// devStdout reads the "name: value" lines of hashforge dev's stdout;
// ready is closed once all of devLines are in.
type devStdout struct {
	mu    sync.Mutex
	buf   []byte
	lines map[string]string
	other []string // anything else (there must be nothing)
	ready chan struct{}
}

func (o *devStdout) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	for {
		line, rest, ok := bytes.Cut(o.buf, []byte("\n"))
		if !ok {
			return len(p), nil
		}
		o.buf = rest
		k, v, ok := strings.Cut(string(line), ": ")
		if !ok || !slices.Contains(devLines, k) {
			o.other = append(o.other, string(line))
			continue
		}
		o.lines[k] = v
		if len(o.lines) == len(devLines) {
			select {
			case <-o.ready:
			default:
				close(o.ready)
			}
		}
	}
}

func (o *devStdout) snapshot() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.lines)
}

// mustStartDev is startDev where the stack must come up (a failure under
// CI, a skip elsewhere).
func mustStartDev(t *testing.T, dir string, args ...string) *devRun {
	t.Helper()
	d, err := startDev(t, dir, args...)
	devtest.Require(t, "start hashforge dev", err)
	return d
}

func (d *devRun) logTail() string {
	data, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// stop sends sig and waits for the process to exit; its Wait error.
func (d *devRun) stop(sig os.Signal) error {
	select {
	case <-d.exited:
		return d.err
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("hashforge dev still running 90 s after %v: %s", sig, d.logTail())
	}
	return d.err
}

// devBlock is a block the dev stack recorded.
type devBlock struct {
	height int64
	hash   string
	count  int // accepted blocks in the database when it was newest
}

// newestBlock waits until the database holds more than after accepted
// blocks and returns the newest.
func (d *devRun) newestBlock(ctx context.Context, after int) devBlock {
	d.t.Helper()
	conn, err := pgx.Connect(ctx, d.lines["database"])
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var b devBlock
		err := conn.QueryRow(ctx, `SELECT count(*) OVER (), height, hash FROM blocks WHERE accepted ORDER BY height DESC LIMIT 1`).
			Scan(&b.count, &b.height, &b.hash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			d.t.Fatal(err)
		}
		if b.count > after {
			return b
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no more than %d blocks in the dev database after 2 minutes: %s", after, d.logTail())
		}
	}
}

// hasBlock checks that both the database and the node's chain have b.
func (d *devRun) hasBlock(ctx context.Context, b devBlock) {
	d.t.Helper()
	conn, err := pgx.Connect(ctx, d.lines["database"])
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM blocks WHERE accepted AND hash = $1`, b.hash).Scan(&n); err != nil || n != 1 {
		d.t.Errorf("the database has block %s %d times (%v), want once", b.hash, n, err)
	}
	nc, err := node.New(d.lines["node-rpc"], "", "")
	if err != nil {
		d.t.Fatal(err)
	}
	if h, err := nc.GetBlockHash(ctx, b.height); err != nil || h != b.hash {
		d.t.Errorf("the node has %s at height %d (%v), want %s", h, b.height, err, b.hash)
	}
}

func readDevState(t *testing.T, dir string) devState {
	t.Helper()
	st, ok, err := loadDevState(dir)
	if err != nil || !ok {
		t.Fatalf("dev state: %v (kept %v)", err, ok)
	}
	return st
}

// devDataDir is a data dir inside a 0700 folder (t.TempDir's), as in
// root's home: as root the postgres user cannot reach it. Its cluster is
// removed when the test ends, after every dev process has stopped.
func devDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() {
		if err := devstack.RemovePostgres(context.Background(), filepath.Join(dir, "postgres"), nil); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// TestDevKeepsData: `hashforge dev` keeps its chain, database, pool
// address, credentials and free ports across a Ctrl-C and a kill, refuses
// a database its chain no longer has, and --fresh starts over.
func TestDevKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := devDataDir(t)
	parent, err := os.Stat(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}

	run := mustStartDev(t, dir)
	// A second stack on the same data dir would stop the first's servers
	// as leftovers: refused.
	if _, err := startDev(t, dir); err == nil || !strings.Contains(err.Error(), errDevDirInUse.Error()) {
		t.Fatalf("a second hashforge dev on the same data dir: %v; want it refused", err)
	}
	first := run.newestBlock(ctx, 0)
	st := readDevState(t, dir)
	tlsFP := checkDevTLS(ctx, t, run, dir)
	if err := run.stop(os.Interrupt); err != nil {
		t.Fatalf("hashforge dev after Ctrl-C: %v\n%s", err, run.logTail())
	}
	if now, err := os.Stat(filepath.Dir(dir)); err != nil || now.Mode() != parent.Mode() {
		t.Errorf("the data dir's parent went from %v to %v (%v): its permissions must not change", parent.Mode(), now.Mode(), err)
	}

	// Restarted after Ctrl-C: the same chain, database, addresses,
	// credentials, and the same ports, free again.
	run = mustStartDev(t, dir)
	for _, k := range []string{"node-rpc", "wallet", "database"} {
		if run.lines[k] != keptLine(t, k, st) {
			t.Errorf("%s: %s after the restart, want the kept %s", k, run.lines[k], keptLine(t, k, st))
		}
	}
	run.hasBlock(ctx, first)
	if got := readDevState(t, dir); got != st {
		t.Errorf("state after the restart %+v, want the kept %+v", got, st)
	}
	if fp := checkDevTLS(ctx, t, run, dir); fp != tlsFP {
		t.Errorf("stratum+ssl certificate %s after the restart, want the kept %s", fp, tlsFP)
	}
	second := run.newestBlock(ctx, first.count)

	// Killed: PostgreSQL outlives it (pg_ctl detached it), btcd and
	// btcwallet get SIGTERM. The next start stops what is left and takes
	// the same ports again.
	if err := run.stop(syscall.SIGKILL); err == nil {
		t.Fatal("hashforge dev exited cleanly after SIGKILL")
	}
	run = mustStartDev(t, dir)
	for _, k := range []string{"node-rpc", "wallet", "database"} {
		if run.lines[k] != keptLine(t, k, st) {
			t.Errorf("%s: %s after a kill, want the kept %s", k, run.lines[k], keptLine(t, k, st))
		}
	}
	if got := readDevState(t, dir); got != st {
		t.Errorf("state after a kill %+v, want the kept %+v", got, st)
	}
	run.hasBlock(ctx, second)
	if err := run.stop(os.Interrupt); err != nil {
		t.Fatalf("hashforge dev after Ctrl-C: %v\n%s", err, run.logTail())
	}

	// The chain deleted by hand: the kept database records blocks the
	// new chain does not have.
	if err := os.RemoveAll(filepath.Join(dir, "btcd", "data")); err != nil {
		t.Fatal(err)
	}
	if _, err := startDev(t, dir); err == nil || !strings.Contains(err.Error(), errDevChainMismatch.Error()) ||
		!strings.Contains(err.Error(), "--fresh") {
		t.Fatalf("start on a reset chain: %v; want the mismatch refused with advice to use --fresh", err)
	}

	// --fresh starts over: a new wallet, credentials and database.
	run = mustStartDev(t, dir, "--fresh")
	fresh := readDevState(t, dir)
	if fp := checkDevTLS(ctx, t, run, dir); fp == tlsFP {
		t.Errorf("stratum+ssl certificate kept across --fresh")
	}
	if fresh.PoolAddress == st.PoolAddress || fresh.MinerKey == st.MinerKey || fresh.Node.Pass == st.Node.Pass {
		t.Errorf("state after --fresh %+v, want new addresses and credentials (kept was %+v)", fresh, st)
	}
	conn, err := pgx.Connect(ctx, run.lines["database"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM blocks WHERE hash = ANY($1)`, []string{first.hash, second.hash}).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d blocks of the old chain in the database after --fresh (%v)", n, err)
	}
	if err := run.stop(os.Interrupt); err != nil {
		t.Fatalf("hashforge dev --fresh after Ctrl-C: %v\n%s", err, run.logTail())
	}
}

// checkDevTLS holds the dev stack's stratum-tls lines to what it serves:
// the certificate file in the data dir, its fingerprint, and a Stratum
// session over TLS that trusts that file and nothing else. It returns the
// fingerprint.
func checkDevTLS(ctx context.Context, t *testing.T, run *devRun, dir string) string {
	t.Helper()
	addr, ok := strings.CutPrefix(run.lines["stratum-tls"], "stratum+ssl://")
	if !ok {
		t.Fatalf("stratum-tls: %q, want stratum+ssl://HOST:PORT", run.lines["stratum-tls"])
	}
	certFile := run.lines["stratum-tls-cert"]
	if certFile != filepath.Join(dir, devTLSDir, "stratum.crt") {
		t.Errorf("stratum-tls-cert: %q, want the data dir's", certFile)
	}
	fp, err := tlsreload.Fingerprint(certFile)
	if err != nil || fp != run.lines["stratum-tls-sha256"] {
		t.Fatalf("stratum-tls-sha256: %q, the file's is %q (%v)", run.lines["stratum-tls-sha256"], fp, err)
	}
	c := dialTLSStratum(ctx, t, addr, certFile, readDevState(t, dir).MinerAddress+".tls")
	c.Close()
	// The admin line is the operator's API: the (empty) ban list.
	resp, err := http.Get(run.lines["admin"] + "api/v1/bans")
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "{\"bans\":[]}\n" {
		t.Errorf("admin %s: GET api/v1/bans: %d %s", run.lines["admin"], resp.StatusCode, body)
	}
	// The stratum2 line is a Stratum V2 URL whose authority key the
	// port's certificate verifies against, and a channel opens there.
	v2 := dialV2(ctx, t, run.lines["stratum2"])
	v2.send(&stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: readDevState(t, dir).MinerAddress + ".v2"})
	if _, ok := v2.next().(*stratum2.OpenExtendedMiningChannelSuccess); !ok {
		t.Errorf("stratum2 %s: no channel", run.lines["stratum2"])
	}
	v2.c.Close()
	if served := tlsFingerprintOf(t, addr); served != fp {
		t.Errorf("stratum+ssl port serves %s, the line says %s", served, fp)
	}
	return fp
}

// keptLine is the URL line k of a dev stack with state st.
func keptLine(t *testing.T, k string, st devState) string {
	t.Helper()
	rpcURL := func(r devRPC) string {
		return (&url.URL{Scheme: "http", User: url.UserPassword(r.User, r.Pass), Host: fmt.Sprintf("127.0.0.1:%d", r.Port)}).String()
	}
	switch k {
	case "node-rpc":
		return rpcURL(st.Node)
	case "wallet":
		return rpcURL(st.Wallet)
	case "database":
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", st.PostgresPort, devDatabase)
	}
	t.Fatalf("no line %q", k)
	return ""
}

// TestDevPaysMiners: the dev stack's wallet pays a miner for the blocks
// it found, and the payment confirms, on the Payments page's API and in
// `hashforge payout status`. The test mines through the pool itself and
// matures the blocks with the node's generate, so its time does not
// depend on the bundled miner's block rate.
func TestDevPaysMiners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	run := mustStartDev(t, devDataDir(t), "--miner-threads", "0", "--payout-interval", "1s")
	nc, err := node.New(run.lines["node-rpc"], "", "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := address.NewAddressPubKeyHash(bytes.Repeat([]byte{0x42}, 20), &chaincfg.SimNetParams)
	if err != nil {
		t.Fatal(err)
	}
	minerAddr := a.EncodeAddress()
	user := minerAddr + ".rig"

	c, err := stratum.Dial(ctx, strings.TrimPrefix(run.lines["stratum"], "stratum+tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := subscribedMiner(ctx, t, c, "dev-test/1")
	// The pool's least difficulty: quick to solve here, should the
	// session's difficulty be above the network's.
	if _, err := c.Call(ctx, "mining.suggest_difficulty", []any{1e-12}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s %v", res, err)
	}
	// Three blocks, each on the job that follows the last one.
	prev := ""
	for found := 0; found < 3; {
		j := m.next(ctx, false)
		if j.n.PrevHash == prev {
			continue
		}
		// A block that is also a share: the harder of the two targets.
		j.target = nbitsTarget(t, j.n.NBits)
		if st := shareTarget(j.difficulty); st.Cmp(j.target) < 0 {
			j.target = st
		}
		en2 := make([]byte, m.en2Size)
		nonce, _ := m.solve(j, en2, beHex32(t, j.n.Version), true)
		if err := m.submit(ctx, user, j, en2, nonce, nil); err != nil {
			t.Fatalf("block %d refused: %v", found+1, err)
		}
		prev = j.n.PrevHash
		found++
	}
	run.newestBlock(ctx, 2)

	// Mature the first (the dev stack pays at 101 confirmations; the
	// wallet spends coinbases at 100, so the second is its reserve for
	// the fee), then mine until the payment confirms.
	if _, err := nc.Generate(ctx, 98); err != nil {
		t.Fatal(err)
	}
	var paid apiPayment
	for deadline := time.Now().Add(2 * time.Minute); paid.State != "confirmed"; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no confirmed payment after 2 minutes (last %+v): %s", paid, run.logTail())
		}
		var page struct {
			Payments []apiPayment `json:"payments"`
		}
		getJSON(t, strings.TrimSuffix(run.lines["dashboard"], "/")+"/api/v1/payments", &page)
		for _, p := range page.Payments {
			if p.State == "sent" || p.State == "confirmed" {
				paid = p
				break
			}
		}
		if paid.State == "sent" {
			if _, err := nc.Generate(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if paid.TxID == "" || paid.Total < 50_0000_0000 || paid.Items != 1 || paid.ConfirmedAt == nil {
		t.Errorf("confirmed payment %+v: want the miner's 50 BTC, with its txid", paid)
	}

	// The wallet line reaches the wallet that sent it.
	w, err := walletrpc.New(run.lines["wallet"], "", "", walletrpc.Options{Account: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if tx, err := w.Transaction(ctx, paid.TxID); err != nil || tx.Confirms < 1 {
		t.Errorf("the wallet's view of payment %s: %+v, %v; want it confirmed", paid.TxID, tx, err)
	}

	out := string(captureStdout(t, func() error {
		return cmdPayout([]string{"status", "--database-url", run.lines["database"]})
	}))
	var balance, batch []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == minerAddr:
			balance = f
		case len(f) > 0 && f[0] == paid.BatchID:
			batch = f
		}
	}
	if len(balance) != 4 || balance[3] == "0" || len(batch) < 6 || batch[1] != "confirmed" || batch[5] != paid.TxID {
		t.Errorf("payout status shows the miner %q and the batch %q; want a paid balance and the confirmed batch:\n%s", balance, batch, out)
	}
}

// apiPayment is a row of the Payments page's API (/api/v1/payments).
type apiPayment struct {
	BatchID     string     `json:"batch_id"`
	State       string     `json:"state"`
	TxID        string     `json:"txid"`
	Total       int64      `json:"total_sat"`
	Items       int        `json:"items"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
}

// nbitsTarget expands a job's nbits (hex) into the network target.
func nbitsTarget(t *testing.T, nbits string) *big.Int {
	t.Helper()
	bits := beHex32(t, nbits)
	return new(big.Int).Lsh(big.NewInt(int64(bits&0xffffff)), 8*(uint(bits>>24)-3))
}
