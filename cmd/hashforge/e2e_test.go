package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/stratum"
)

// runAsMainEnv makes the test binary run as hashforge itself (see
// startDev): commands that must be signalled or killed run in their own
// process without a build step.
const runAsMainEnv = "HASHFORGE_TEST_RUN_AS_MAIN"

// testNofileEnv, set beside runAsMainEnv, lowers the process's open-file
// limit (soft and hard) before main runs: a pool on a small machine.
const testNofileEnv = "HASHFORGE_TEST_NOFILE"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMainEnv) == "1" {
		if n, err := strconv.ParseUint(os.Getenv(testNofileEnv), 10, 64); err == nil {
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintln(os.Stderr, "setrlimit:", err)
				os.Exit(2)
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(devtest.Main(m))
}

// testJob is what the test's own Stratum client knows of a mining.notify;
// headers are built here independently of the pool package, so a bug in the
// pool's assembly cannot hide behind the same bug in the test.
type testJob struct {
	n          stratum.NotifyParams
	difficulty float64
	// target, when set, is what solve aims at instead of difficulty's.
	target *big.Int
}

func dsha256(b []byte) [32]byte {
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func beHex32(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatalf("bad uint32 hex %q: %v", s, err)
	}
	return uint32(v)
}

// header builds the 80-byte header for a submit the way a miner does.
func (j testJob) header(t *testing.T, en1, en2 []byte, ntime, nonce, version uint32) []byte {
	t.Helper()
	cb := append(append(append(mustHex(t, j.n.Coinb1), en1...), en2...), mustHex(t, j.n.Coinb2)...)
	root := dsha256(cb)
	for _, b := range j.n.MerkleBranch {
		root = dsha256(append(root[:], mustHex(t, b)...))
	}
	// notify prevhash: the internal-order hash with each 4-byte word reversed.
	ph := mustHex(t, j.n.PrevHash)
	for i := 0; i < 32; i += 4 {
		ph[i], ph[i+1], ph[i+2], ph[i+3] = ph[i+3], ph[i+2], ph[i+1], ph[i]
	}
	h := make([]byte, 80)
	binary.LittleEndian.PutUint32(h[0:], version)
	copy(h[4:36], ph)
	copy(h[36:68], root[:])
	binary.LittleEndian.PutUint32(h[68:], ntime)
	binary.LittleEndian.PutUint32(h[72:], beHex32(t, j.n.NBits))
	binary.LittleEndian.PutUint32(h[76:], nonce)
	return h
}

// hashInt reads a sha256d result as the little-endian integer Bitcoin compares.
func hashInt(h [32]byte) *big.Int {
	r := make([]byte, 32)
	for i := range h {
		r[31-i] = h[i]
	}
	return new(big.Int).SetBytes(r)
}

func shareTarget(diff float64) *big.Int {
	diff1, _ := new(big.Int).SetString("00000000ffff0000000000000000000000000000000000000000000000000000", 16)
	t, _ := new(big.Float).Quo(new(big.Float).SetInt(diff1), big.NewFloat(diff)).Int(nil)
	return t
}

func displayHash(h [32]byte) string {
	r := make([]byte, 32)
	for i := range h {
		r[31-i] = h[i]
	}
	return hex.EncodeToString(r)
}

type testMiner struct {
	t       *testing.T
	c       *stratum.Client
	en1     []byte
	en2Size int
	diff    float64
	job     *testJob
}

// subscribedMiner subscribes on c (as agent) and returns the test's
// miner for that session.
func subscribedMiner(ctx context.Context, t *testing.T, c *stratum.Client, agent string) *testMiner {
	t.Helper()
	res, err := c.Call(ctx, "mining.subscribe", []any{agent})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	return &testMiner{t: t, c: c, en1: mustHex(t, sub.Extranonce1), en2Size: sub.Extranonce2Size}
}

// next waits for the next mining.notify (applying set_difficulty on the way).
func (m *testMiner) next(ctx context.Context, wantClean bool) testJob {
	m.t.Helper()
	for {
		select {
		case n, ok := <-m.c.Notifications():
			if !ok {
				m.t.Fatalf("connection closed: %v", m.c.Err())
			}
			switch n.Method {
			case "mining.set_difficulty":
				var p []float64
				if err := json.Unmarshal(n.Params.(json.RawMessage), &p); err != nil || len(p) != 1 {
					m.t.Fatalf("bad set_difficulty %s: %v", n.Params, err)
				}
				m.diff = p[0]
			case "mining.notify":
				var p stratum.NotifyParams
				if err := json.Unmarshal(n.Params.(json.RawMessage), &p); err != nil {
					m.t.Fatalf("bad notify %s: %v", n.Params, err)
				}
				if m.diff == 0 {
					m.t.Fatalf("mining.notify before any mining.set_difficulty")
				}
				j := testJob{n: p, difficulty: m.diff}
				m.job = &j
				if wantClean && !p.CleanJobs {
					continue
				}
				return j
			}
		case <-ctx.Done():
			m.t.Fatalf("waiting for mining.notify: %v", ctx.Err())
		}
	}
}

// solve finds a nonce whose hash meets (want=true) or misses (want=false)
// the job's share target. A miss also misses the network target: a block
// is never a low-difficulty share.
func (m *testMiner) solve(j testJob, en2 []byte, version uint32, want bool) (nonce uint32, hash [32]byte) {
	target := j.target
	if target == nil {
		target = shareTarget(j.difficulty)
	}
	if net := nbitsTarget(m.t, j.n.NBits); !want && net.Cmp(target) > 0 {
		target = net
	}
	ntime := beHex32(m.t, j.n.NTime)
	for nonce = 0; nonce < 1<<24; nonce++ {
		h := dsha256(j.header(m.t, m.en1, en2, ntime, nonce, version))
		if (hashInt(h).Cmp(target) <= 0) == want {
			return nonce, h
		}
	}
	m.t.Fatalf("no nonce found (want meet=%v) at difficulty %g", want, j.difficulty)
	return 0, hash
}

func (m *testMiner) submit(ctx context.Context, user string, j testJob, en2 []byte, nonce uint32, version *uint32) error {
	params := []any{user, j.n.JobID, hex.EncodeToString(en2), j.n.NTime, hex.EncodeToString(binary.BigEndian.AppendUint32(nil, nonce))}
	if version != nil {
		params = append(params, hex.EncodeToString(binary.BigEndian.AppendUint32(nil, *version)))
	}
	res, err := m.c.Call(ctx, "mining.submit", params)
	if err != nil {
		return err
	}
	if string(res) != "true" {
		return errors.New("submit result " + string(res))
	}
	return nil
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	var se *stratum.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: want stratum error %d, got %v", what, code, err)
	}
	if se.Code != code {
		t.Fatalf("%s: want code %d, got %d (%s)", what, code, se.Code, se.Message)
	}
}

// testLogger logs to stderr under -v, nowhere otherwise.
func testLogger(level slog.Level) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// regtestStack starts what every end-to-end test mines against: btcd in
// regtest and a private PostgreSQL, with a node client for the checks.
func regtestStack(t *testing.T) (*devstack.Btcd, string, *node.Client) {
	t.Helper()
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "regtest"})
	dbURL := devtest.Postgres(t)
	rpc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return btcd, dbURL, rpc
}

// regtestServe is the serve configuration the end-to-end tests share: the
// devstack node and database, listeners on free loopback ports, and
// difficulties each test then sets to what it needs.
func regtestServe(t *testing.T, btcd *devstack.Btcd, dbURL, tag string) serveConfig {
	return serveConfig{
		Network: "regtest", NodeURL: "http://" + btcd.RPCHost, NodeUser: btcd.RPCUser, NodePass: btcd.RPCPass,
		PoolAddress: btcd.MiningAddr, DatabaseURL: dbURL, StratumAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ShareInterval: 10 * time.Second, CoinbaseTag: "/" + tag + "/", Extranonce2Size: 8, VersionMask: "1fffe000",
		SpoolDir: t.TempDir(),
	}
}

// startServe runs `serve` with cfg until the test ends (when it must return
// nil) and returns its listeners.
func startServe(ctx context.Context, t *testing.T, cfg serveConfig) listeners {
	t.Helper()
	return startServeLog(ctx, t, cfg, testLogger(slog.LevelDebug))
}

// startServeLog is startServe logging to log.
func startServeLog(ctx context.Context, t *testing.T, cfg serveConfig, log *slog.Logger) listeners {
	t.Helper()
	srvCtx, stopSrv := context.WithCancel(ctx)
	ready := make(chan listeners, 1)
	served := make(chan error, 1)
	go func() { served <- runServe(srvCtx, cfg, log, func(l listeners) { ready <- l }) }()
	var l listeners
	select {
	case l = <-ready:
	case err := <-served:
		stopSrv()
		t.Fatalf("serve exited early: %v", err)
	}
	t.Cleanup(func() {
		stopSrv()
		if err := <-served; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	return l
}

// TestServeEndToEnd runs `serve` against a real btcd regtest node and a real
// PostgreSQL, and mines through it with a Stratum client written for the test.
func TestServeEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	btcd, dbURL, rpc := regtestStack(t)
	poolAddr := btcd.MiningAddr

	cfg := regtestServe(t, btcd, dbURL, "hashforge-e2e")
	// Above regtest's network difficulty (no ceiling there): every share
	// is also a block, and the test's own hashing finds one quickly.
	cfg.StartDifficulty, cfg.MinDifficulty, cfg.NodeID = 0.0001, 0.0001, 7
	l := startServe(ctx, t, cfg)

	c, err := stratum.Dial(ctx, l.Stratum.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := &testMiner{t: t, c: c}

	// ASIC order: configure before subscribe.
	res, err := c.Call(ctx, "mining.configure", []any{[]string{"version-rolling"}, map[string]any{"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2}})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	var conf map[string]any
	if err := json.Unmarshal(res, &conf); err != nil || conf["version-rolling"] != true || conf["version-rolling.mask"] != "1fffe000" {
		t.Fatalf("configure result %s: want version rolling granted with mask 1fffe000", res)
	}

	// A share before subscribe is refused with 25.
	_, err = c.Call(ctx, "mining.submit", []any{poolAddr + ".w", "00", "0000000000000000", "00000000", "00000000"})
	wantCode(t, "submit before subscribe", err, stratum.CodeNotSubscribed)

	res, err = c.Call(ctx, "mining.subscribe", []any{"hashforge-e2e/1.0"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	m.en1, m.en2Size = mustHex(t, sub.Extranonce1), sub.Extranonce2Size
	if len(m.en1) != 4 || m.en1[0] != 7 || m.en2Size != 8 {
		t.Fatalf("subscribe gave extranonce1 %x (want 4 bytes starting with node id 07) and size %d (want 8)", m.en1, m.en2Size)
	}

	_, err = c.Call(ctx, "mining.authorize", []any{"notanaddress.w", "x"})
	wantCode(t, "authorize with a bad address", err, stratum.CodeUnauthorized)
	user := poolAddr + ".e2e"
	if res, err = c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s %v", res, err)
	}
	// set_difficulty and the job arrive without the miner saying anything more.
	job := m.next(ctx, false)

	// Unknown job → 21.
	en2 := make([]byte, m.en2Size)
	err = m.submit(ctx, user, testJob{n: stratum.NotifyParams{JobID: "deadbeef", NTime: job.n.NTime}}, en2, 0, nil)
	wantCode(t, "unknown job", err, stratum.CodeJobNotFound)

	// Wrong extranonce2 size → 20.
	err = m.submit(ctx, user, job, en2[:3], 0, nil)
	wantCode(t, "short extranonce2", err, stratum.CodeOther)

	version := beHex32(t, job.n.Version)
	// Low difficulty → 23.
	nonce, _ := m.solve(job, en2, version, false)
	err = m.submit(ctx, user, job, en2, nonce, nil)
	wantCode(t, "low difficulty", err, stratum.CodeLowDifficulty)

	// Another pool node listening on the database hears of the block.
	heard := make(chan ledger.BlockNotice, 16)
	{
		led, err := ledger.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		lctx, stopListen := context.WithCancel(ctx)
		listened := make(chan struct{})
		go func() {
			defer close(listened)
			led.ListenBlocks(lctx, 99, testLogger(slog.LevelInfo), func(n ledger.BlockNotice) { heard <- n })
		}()
		defer func() { stopListen(); <-listened; led.Close() }()
		// Listening once a probe of its own is heard.
		for probed := false; !probed; {
			if err := led.AnnounceBlock(ctx, ledger.BlockNotice{NodeID: 98, Hash: "probe"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-heard:
				probed = true
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	tipBefore, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A valid share. On regtest the network target is easier than the
	// session's, so it is a block too.
	nonce, hash := m.solve(job, en2, version, true)
	if err := m.submit(ctx, user, job, en2, nonce, nil); err != nil {
		t.Fatalf("valid share refused: %v", err)
	}
	blockHash := displayHash(hash)
	// The same share again → 22, even though it solved a block.
	err = m.submit(ctx, user, job, en2, nonce, nil)
	wantCode(t, "duplicate", err, stratum.CodeDuplicate)

	best, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if best != blockHash {
		t.Fatalf("node's best block %s, want our share's hash %s", best, blockHash)
	}
	select {
	case n := <-heard:
		height, err := rpc.GetBlockCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.NodeID != 7 || n.Hash != blockHash || n.Height != height || n.PrevHash != tipBefore || n.Time == 0 {
			t.Errorf("announcement %+v; want node 7's block %s at height %d on %s", n, blockHash, height, tipBefore)
		}
	case <-time.After(30 * time.Second):
		t.Error("the block was not announced to the other pool nodes")
	}

	// The pool moves to the new tip with a clean job; mine a version-rolled
	// share on it.
	job2 := m.next(ctx, true)
	if job2.n.PrevHash == job.n.PrevHash {
		t.Fatalf("clean job kept the old prevhash")
	}
	// A new share on the first job, now that the tip moved past it: stale
	// (21), however good its hash.
	staleEn2 := make([]byte, m.en2Size)
	staleEn2[7] = 2
	nonce, _ = m.solve(job, staleEn2, version, true)
	err = m.submit(ctx, user, job, staleEn2, nonce, nil)
	wantCode(t, "share on the first job after the tip moved", err, stratum.CodeJobNotFound)
	rolled := beHex32(t, job2.n.Version)&^0x1fffe000 | 0x00a4e000
	bits := rolled & 0x1fffe000
	en2[7] = 1
	nonce, hash2 := m.solve(job2, en2, rolled, true)
	if err := m.submit(ctx, user, job2, en2, nonce, &bits); err != nil {
		t.Fatalf("version-rolled share refused: %v", err)
	}
	// Bits outside the granted mask → refused, even on a winning hash.
	bad := uint32(0x00000001)
	err = m.submit(ctx, user, job2, en2, nonce, &bad)
	wantCode(t, "version bits outside the mask", err, stratum.CodeOther)

	best, err = rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if best != displayHash(hash2) {
		t.Fatalf("node's best block %s after the version-rolled block, want %s", best, displayHash(hash2))
	}

	// Both accepted shares and both blocks reach PostgreSQL (the batcher
	// flushes every 200 ms; poll, don't sleep a fixed time).
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shares, blocks int
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name = 'e2e' AND s.is_block`, poolAddr).Scan(&shares); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM blocks WHERE accepted AND hash = ANY($1)`, []string{blockHash, displayHash(hash2)}).Scan(&blocks); err != nil {
			t.Fatal(err)
		}
		if shares == 2 && blocks == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if shares != 2 || blocks != 2 {
		t.Fatalf("database has %d block shares and %d accepted blocks, want 2 and 2", shares, blocks)
	}

	// Every column of the two share rows, against what the test itself
	// knows: the difficulty it was told, the difficulty of the hash it
	// found, the height the node put the block at, the job it mined.
	type wantShare struct {
		job        testJob
		hash       [32]byte
		versionBit bool
	}
	for _, w := range []wantShare{{job, mustHash(t, blockHash), false}, {job2, hash2, true}} {
		bh := displayHash(w.hash)
		info, err := rpc.GetBlockInfo(ctx, bh)
		if err != nil {
			t.Fatal(err)
		}
		var (
			jobID                    string
			diff, actual, netDiff    float64
			height                   int64
			isBlock                  bool
			remote, en1, storedBlock string
		)
		err = conn.QueryRow(ctx, `SELECT s.job_id, s.difficulty, s.actual_difficulty, s.network_difficulty, s.height, s.is_block,
				coalesce(s.remote_addr, ''), coalesce(s.extranonce1, ''), coalesce(s.block_hash, '')
			FROM shares s JOIN workers w ON w.id = s.worker_id
			WHERE w.address = $1 AND w.name = 'e2e' AND s.block_hash = $2`, poolAddr, bh).
			Scan(&jobID, &diff, &actual, &netDiff, &height, &isBlock, &remote, &en1, &storedBlock)
		if err != nil {
			t.Fatalf("share row of block %s: %v", bh, err)
		}
		wantActual, _ := new(big.Float).Quo(new(big.Float).SetInt(shareTarget(1)), new(big.Float).SetInt(hashInt(w.hash))).Float64()
		switch {
		case jobID != w.job.n.JobID:
			t.Errorf("share %s: job_id %q, want %q", bh, jobID, w.job.n.JobID)
		case diff != w.job.difficulty:
			t.Errorf("share %s: difficulty %g, want the %g the pool set", bh, diff, w.job.difficulty)
		case !approxEqual(actual, wantActual):
			t.Errorf("share %s: actual_difficulty %g, want %g", bh, actual, wantActual)
		case actual < diff:
			t.Errorf("share %s: actual_difficulty %g below its difficulty %g", bh, actual, diff)
		case height != info.Height:
			t.Errorf("share %s: height %d, the node has the block at %d", bh, height, info.Height)
		case !isBlock || storedBlock != bh:
			t.Errorf("share %s: is_block %v block_hash %q", bh, isBlock, storedBlock)
		case en1 != hex.EncodeToString(m.en1) || remote == "":
			t.Errorf("share %s: extranonce1 %q remote %q", bh, en1, remote)
		case !approxEqual(netDiff, nbitsDifficulty(t, w.job.n.NBits)):
			t.Errorf("share %s: network_difficulty %g, want %g", bh, netDiff, nbitsDifficulty(t, w.job.n.NBits))
		}

		// The block row: the node's verdict and the coinbase value (no
		// transactions on this young chain: the 50 BTC subsidy).
		var (
			bHeight, reward      int64
			accepted             bool
			verdict, status      string
			finder, finderWorker string
		)
		err = conn.QueryRow(ctx, `SELECT height, reward, accepted, verdict, status, finder_address, finder_worker FROM blocks WHERE hash = $1`, bh).
			Scan(&bHeight, &reward, &accepted, &verdict, &status, &finder, &finderWorker)
		if err != nil {
			t.Fatalf("block row %s: %v", bh, err)
		}
		if !accepted || verdict != "accepted" || status != "pending" || reward != 50_0000_0000 || bHeight != info.Height ||
			finder != poolAddr || finderWorker != "e2e" {
			t.Errorf("block row %s: height %d reward %d accepted %v verdict %q status %q finder %s.%s; want height %d, 5000000000 sat, accepted, pending, %s.e2e",
				bh, bHeight, reward, accepted, verdict, status, finder, finderWorker, info.Height, poolAddr)
		}
	}
	// The stale and refused submissions left no rows.
	var all int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM shares`).Scan(&all); err != nil || all != 2 {
		t.Errorf("%d share rows in all (%v), want the 2 accepted", all, err)
	}

	// serve refuses a node on another chain than --network, and says so.
	wrongNet := cfg
	wrongNet.Network, wrongNet.PoolAddress = "mainnet", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
	wrongNet.StratumAddr, wrongNet.HTTPAddr, wrongNet.SpoolDir = "127.0.0.1:0", "", t.TempDir()
	err = runServe(ctx, wrongNet, testLogger(slog.LevelDebug), func(listeners) { t.Error("serve listened with a node on the wrong chain") })
	if err == nil || !strings.Contains(err.Error(), "regtest") || !strings.Contains(err.Error(), "mainnet") {
		t.Errorf("serve --network mainnet with a regtest node: %v", err)
	}
}

// nbitsDifficulty is the network difficulty nbits (notify hex) stands for.
func nbitsDifficulty(t *testing.T, nbits string) float64 {
	t.Helper()
	d, _ := new(big.Float).Quo(new(big.Float).SetInt(shareTarget(1)), new(big.Float).SetInt(nbitsTarget(t, nbits))).Float64()
	return d
}

func mustHash(t *testing.T, display string) [32]byte {
	t.Helper()
	b := mustHex(t, display)
	var h [32]byte
	for i := range h {
		h[i] = b[31-i]
	}
	return h
}

func approxEqual(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
