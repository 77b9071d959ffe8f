package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/btcaddr"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/internal/fixturenode"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// TestFixtureDevStack: `hashforge dev --node fixture` serves mainnet-like
// work from the fixture node: a notify whose merkle branch has a full
// block's 12 entries at mainnet bits, a clean notify on a new previous
// block once the block interval has passed, and shares at the stack's
// difficulty floor accepted and written to the fixture's own database.
// A restart keeps its pool address and node port.
func TestFixtureDevStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := devDataDir(t)
	args := []string{"--node", "fixture", "--fixture-block-interval", "1s", "--miner-threads", "0"}
	run := mustStartDev(t, dir, args...)
	if run.lines["wallet"] != devFixtureWallet {
		t.Errorf("wallet line %q; want %q", run.lines["wallet"], devFixtureWallet)
	}
	if !strings.HasSuffix(strings.SplitN(run.lines["database"], "?", 2)[0], "/"+devFixtureDatabase) {
		t.Errorf("database %s; want the fixture's own, %s", run.lines["database"], devFixtureDatabase)
	}
	nc, err := node.New(run.lines["node-rpc"], "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.CheckNetwork(ctx, &chaincfg.MainNetParams); err != nil {
		t.Errorf("node-rpc is not a mainnet node: %v", err)
	}
	st := readDevState(t, dir)
	if a, err := btcaddr.Decode(st.Fixture.PoolAddress, &chaincfg.MainNetParams); err != nil || !a.IsForNet(&chaincfg.MainNetParams) || st.Fixture.PoolKey == "" {
		t.Errorf("fixture pool address %q (key kept: %v): %v; want a mainnet address with its key", st.Fixture.PoolAddress, st.Fixture.PoolKey != "", err)
	}
	if st.Node != (devRPC{}) || st.PoolAddress != "" {
		t.Errorf("state %+v: the fixture stack started btcd or its wallet", st)
	}

	a, err := address.NewAddressWitnessPubKeyHash(bytes.Repeat([]byte{0x42}, 20), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	user := a.EncodeAddress() + ".load"
	c, err := stratum.Dial(ctx, strings.TrimPrefix(run.lines["stratum"], "stratum+tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := subscribedMiner(ctx, t, c, "fixture-test/1")
	// Below the stack's floor: the session gets the floor.
	if _, err := c.Call(ctx, "mining.suggest_difficulty", []any{1e-12}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize %s: %s %v", user, res, err)
	}

	first := m.next(ctx, false)
	if n := len(first.n.MerkleBranch); n != 12 {
		t.Errorf("notify with %d merkle branch entries; want 12", n)
	}
	if want := fmt.Sprintf("%08x", fixturenode.DefaultBits); first.n.NBits != want {
		t.Errorf("nbits %s; want mainnet's %s", first.n.NBits, want)
	}
	var next testJob
	for next = m.next(ctx, true); next.n.PrevHash == first.n.PrevHash; next = m.next(ctx, true) {
	}
	if len(next.n.MerkleBranch) != 12 || next.n.MerkleBranch[0] == first.n.MerkleBranch[0] {
		t.Errorf("the new block's notify has branch %q…; want 12 entries of new transactions", next.n.MerkleBranch[:min(1, len(next.n.MerkleBranch))])
	}

	// Shares at the floor. One ground on a job the next block made stale
	// is refused as such; the next job's is then tried.
	accepted := 0
	for j := next; accepted < 3; j = *m.job {
		if j.difficulty != devFixtureMinDifficulty {
			t.Fatalf("session difficulty %g; want the floor %g", j.difficulty, devFixtureMinDifficulty)
		}
		en2 := make([]byte, m.en2Size)
		en2[0] = byte(accepted)
		nonce, _ := m.solve(j, en2, beHex32(t, j.n.Version), true)
		err := m.submit(ctx, user, j, en2, nonce, nil)
		var se *stratum.Error
		switch {
		case err == nil:
			accepted++
		case errors.As(err, &se) && se.Code == stratum.CodeJobNotFound:
			m.next(ctx, true)
		default:
			t.Fatalf("share at difficulty %g refused: %v", j.difficulty, err)
		}
	}
	conn, err := pgx.Connect(ctx, run.lines["database"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM shares`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= accepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shares in the fixture database a minute after %d were accepted: %s", n, accepted, run.logTail())
		}
	}
	if err := run.stop(os.Interrupt); err != nil {
		t.Fatalf("hashforge dev --node fixture after Ctrl-C: %v\n%s", err, run.logTail())
	}

	// Restarted: the same pool address and node port.
	run = mustStartDev(t, dir, args...)
	if got := readDevState(t, dir); got.Fixture.PoolAddress != st.Fixture.PoolAddress || got.Fixture.RPC != st.Fixture.RPC {
		t.Errorf("fixture state after a restart %+v; want the kept %+v", got.Fixture, st.Fixture)
	}
	if err := run.stop(os.Interrupt); err != nil {
		t.Fatalf("hashforge dev --node fixture after Ctrl-C: %v\n%s", err, run.logTail())
	}
}

// TestFixtureServeFindsBlock: a block the pool assembles from a fixture
// template (3,000 transactions, witness commitment) passes the fixture's
// submitblock checks: proof of work, merkle root, BIP 34 height, coinbase
// amount and witness commitment. The fixture runs at regtest's bits here,
// the only way a test finds a block; the block becomes its tip and the
// pool moves its miners onto it.
func TestFixtureServeFindsBlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := devtest.Postgres(t)
	fx, cfg := fixtureServe(ctx, t, fixturenode.Options{Bits: 0x207fffff, BlockInterval: time.Hour, Logger: testLogger(slog.LevelDebug)}, dbURL, "/fixture-e2e/", 0x42)
	poolAddr := cfg.PoolAddress
	cfg.ShareInterval = 10 * time.Second
	l := startServe(ctx, t, cfg)
	c, err := stratum.Dial(ctx, l.Stratum.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := subscribedMiner(ctx, t, c, "fixture-test/1")
	user := poolAddr + ".rig"
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s %v", res, err)
	}
	j := m.next(ctx, false)
	if len(j.n.MerkleBranch) != 12 {
		t.Fatalf("merkle branch of %d; want 12", len(j.n.MerkleBranch))
	}
	// A block that is also a share: the harder of the two targets.
	j.target = nbitsTarget(t, j.n.NBits)
	if st := shareTarget(j.difficulty); st.Cmp(j.target) < 0 {
		j.target = st
	}
	en2 := make([]byte, m.en2Size)
	nonce, hash := m.solve(j, en2, beHex32(t, j.n.Version), true)
	if err := m.submit(ctx, user, j, en2, nonce, nil); err != nil {
		t.Fatalf("block share refused: %v", err)
	}
	// The pool submits at once; the fixture takes it and it is the tip.
	for deadline := time.Now().Add(time.Minute); fx.Accepted() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the fixture accepted no block a minute after the block share (see the fixture's refusal in the log with -v)")
		}
	}
	if tip, _ := fx.Tip(); tip.String() != displayHash(hash) {
		t.Errorf("fixture tip %s; want the pool's block %s", tip, displayHash(hash))
	}
	// The pool's next clean job builds on it.
	want, err := pow.NotifyPrevHash(displayHash(hash))
	if err != nil {
		t.Fatal(err)
	}
	for next := m.next(ctx, true); next.n.PrevHash != want; next = m.next(ctx, true) {
	}
}

// fixtureServe starts a fixture node for the test (stopped when it ends)
// and returns it with the serve configuration the fixture tests share:
// mainnet, a pool address of 20 fill bytes, shares at difficulty 1e-9
// that vardiff leaves alone (one share an hour wanted), coinbase tag,
// a spool of the test's own.
func fixtureServe(ctx context.Context, t *testing.T, opts fixturenode.Options, dbURL, tag string, fill byte) (*fixturenode.Node, serveConfig) {
	t.Helper()
	fx, err := fixturenode.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.Stop(context.Background()) })
	a, err := address.NewAddressWitnessPubKeyHash(bytes.Repeat([]byte{fill}, 20), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	return fx, serveConfig{
		Network: "mainnet", NodeURL: "http://" + fx.Host, NodeUser: fx.User, NodePass: fx.Pass,
		PoolAddress: a.EncodeAddress(), DatabaseURL: dbURL, StratumAddr: "127.0.0.1:0",
		StartDifficulty: 1e-9, MinDifficulty: 1e-9, ShareInterval: time.Hour,
		CoinbaseTag: tag, Extranonce2Size: 8, VersionMask: "1fffe000", SpoolDir: t.TempDir(),
	}
}
