package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

func TestNodeURLFlag(t *testing.T) {
	parse := func(args ...string) serveConfig {
		t.Helper()
		var cfg serveConfig
		fs := newFlagSet("serve", "")
		cfg.register(fs)
		if err := parseFlags(fs, args); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := parse().NodeURL; got != "http://127.0.0.1:8332" {
		t.Errorf("default --node-url %q", got)
	}
	if got := parse("--node-url", "http://a:1").NodeURL; got != "http://a:1" {
		t.Errorf("one --node-url: %q", got)
	}
	got := parse("--node-url", "http://a:1", "--node-url=http://u:p@b:2").NodeURL
	if urls := node.SplitURLs(got); len(urls) != 2 || urls[0] != "http://a:1" || urls[1] != "http://u:p@b:2" {
		t.Errorf("repeated --node-url: %q", got)
	}
	t.Setenv(envName("node-url"), "http://a:1, http://b:2")
	if urls := node.SplitURLs(parse().NodeURL); len(urls) != 2 || urls[1] != "http://b:2" {
		t.Errorf("HASHFORGE_NODE_URL list: %q", urls)
	}
	// The command line wins over the environment, as for every flag.
	if got := parse("--node-url", "http://c:3").NodeURL; got != "http://c:3" {
		t.Errorf("--node-url over the environment: %q", got)
	}
	var cfg serveConfig
	fs := newFlagSet("serve", "")
	cfg.register(fs)
	if err := parseFlags(fs, []string{"--node-url", " , "}); err == nil {
		t.Error("an empty --node-url accepted")
	}
	if got := redactURLs("http://u:secret@a:1,http://b:2"); strings.Contains(got, "secret") || !strings.Contains(got, "b:2") {
		t.Errorf("redactURLs: %q", got)
	}
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLog polls the serve log until it holds s.
func waitLog(ctx context.Context, t *testing.T, logs *lockedBuffer, s string) {
	t.Helper()
	for !strings.Contains(logs.String(), s) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q in the log:\n%s", s, logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestServeNodeFailover is issue 15's scenario end to end: serve with two
// peered btcd (--node-url A --node-url B, each with its own credentials in
// the URL), a Stratum miner finding blocks; the first node stops, the
// miner gets new work from the second and a block found meanwhile reaches
// its chain and the ledger; the first node comes back and the pool returns
// to it.
func TestServeNodeFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	aOpts := devstack.BtcdOptions{Listen: true, DataDir: t.TempDir(), RPCUser: "a", RPCPass: "apass"}
	a := devtest.Btcd(t, aOpts)
	b := devtest.Btcd(t, devstack.BtcdOptions{Listen: true, NoInitialBlock: true, AddPeers: []string{a.P2PHost}})
	dbURL := devtest.Postgres(t)
	ca, err := node.New(a.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := node.New(b.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitBest := func(c *node.Client, want string) {
		t.Helper()
		for {
			if best, err := c.GetBestBlockHash(ctx); err == nil && best == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("node %s never reached block %s", c.Endpoint(), want)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	best, err := ca.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitBest(cb, best)

	cfg := regtestServe(t, a, dbURL, "failover")
	// Credentials in the URLs override the (wrong) defaults for all.
	cfg.NodeURL = a.RPCURL() + "," + b.RPCURL()
	cfg.NodeUser, cfg.NodePass = "nobody", "wrong"
	// Still above regtest's network difficulty (every share is a block),
	// and a few dozen hashes each: the test's miner must never go quiet
	// long, even under -race (see the report on stratum write deadlines).
	cfg.StartDifficulty, cfg.MinDifficulty = 1e-8, 1e-8
	cfg.nodeTuning = node.SetOptions{ProbeInterval: 100 * time.Millisecond, ReturnAfter: time.Second}
	logs := &lockedBuffer{}
	l := startServeLog(ctx, t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", logs)
		}
	})

	c, err := stratum.Dial(ctx, l.Stratum.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := subscribedMiner(ctx, t, c, "failover-test/1.0")
	user := a.MiningAddr + ".failover"
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s %v", res, err)
	}
	var found []string
	mine := func(j testJob, tag byte) string {
		t.Helper()
		en2 := make([]byte, m.en2Size)
		en2[0] = tag
		nonce, hash := m.solve(j, en2, beHex32(t, j.n.Version), true)
		if err := m.submit(ctx, user, j, en2, nonce, nil); err != nil {
			t.Fatalf("share %d refused: %v", tag, err)
		}
		found = append(found, displayHash(hash))
		return displayHash(hash)
	}

	// nextOn is the next clean job on block tip: after a block the pool
	// sends an empty job on it and then its node's template, both clean,
	// so older clean jobs may still be queued.
	nextOn := func(tip string) testJob {
		t.Helper()
		want, err := pow.NotifyPrevHash(tip)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if j := m.next(ctx, true); j.n.PrevHash == want {
				return j
			}
		}
	}

	job := m.next(ctx, false)
	hash1 := mine(job, 1)
	waitBest(ca, hash1)
	waitBest(cb, hash1)
	job = nextOn(hash1)

	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A block found while the pool learns the first node is gone: it goes
	// to both, the second takes it.
	hash2 := mine(job, 2)
	waitBest(cb, hash2)
	// Work on it: the pool's empty job on its own block, then the second
	// node's template.
	job3 := nextOn(hash2)
	waitLog(ctx, t, logs, "the node stopped answering")
	hash3 := mine(job3, 3)
	waitBest(cb, hash3)

	// The first node returns at its address, catches up from its peer, and
	// after ReturnAfter the pool takes its work from it again.
	aOpts.Port, aOpts.P2PPort, aOpts.NoInitialBlock = portOf(t, a.RPCHost), portOf(t, a.P2PHost), true
	aOpts.AddPeers = []string{b.P2PHost}
	devtest.Btcd(t, aOpts)
	waitBest(ca, hash3)
	waitLog(ctx, t, logs, "higher priority")
	job4 := nextOn(hash3)
	hash4 := mine(job4, 4)
	waitBest(ca, hash4)
	waitBest(cb, hash4)

	// Every block, the ones found around the switches too, is recorded
	// accepted.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM blocks WHERE accepted AND hash = ANY($1)`, found).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == len(found) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d blocks recorded accepted", n, len(found))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
