package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/internal/fixturenode"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/loadtest"
	"github.com/hashforge/hashforge/worker"
)

// TestTwoNodesOneDatabase runs two pool nodes (in-process `serve`, ids 1
// and 2) on one PostgreSQL and one template source: a third process with a
// taken id is refused with a clear message; sessions on both nodes get
// extranonce1 values no other session has, each starting with its node's
// id; share rows say which node accepted them. Then node 1 stops under
// load as on SIGTERM with --reconnect-to node 2: the bundled miner follows
// the client.reconnect and goes on at node 2, and every share the load
// generator heard accepted by node 1 is a row.
func TestTwoNodesOneDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dbURL := devtest.Postgres(t)
	_, base := fixtureServe(ctx, t, fixturenode.Options{BlockInterval: time.Hour, Logger: testLogger(slog.LevelInfo)}, dbURL, "/two-nodes/", 0x44)
	poolAddr := base.PoolAddress
	log := testLogger(slog.LevelInfo)

	cfg2 := base
	cfg2.NodeID, cfg2.SpoolDir = 2, t.TempDir()
	l2 := startServeLog(ctx, t, cfg2, log)

	cfg1 := base
	cfg1.NodeID, cfg1.SpoolDir = 1, t.TempDir()
	cfg1.ReconnectTo, cfg1.ShutdownGrace = l2.Stratum.String(), 20*time.Second
	ctx1, stop1 := context.WithCancel(ctx)
	defer stop1()
	ready1 := make(chan listeners, 1)
	done1 := make(chan error, 1)
	go func() { done1 <- runServe(ctx1, cfg1, log, func(l listeners) { ready1 <- l }) }()
	var l1 listeners
	select {
	case l1 = <-ready1:
	case err := <-done1:
		t.Fatalf("node 1: %v", err)
	}

	// A second process with node id 1 is refused, naming the flag.
	dup := base
	dup.NodeID, dup.SpoolDir = 1, t.TempDir()
	err := runServe(ctx, dup, log, func(listeners) { t.Error("a second node 1 listened") })
	var held *ledger.NodeHeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "--node-id") {
		t.Fatalf("second node 1: %v", err)
	}

	// The bundled miner on node 1, load on both.
	miner, err := worker.New(worker.Config{URLs: []string{"stratum+tcp://" + l1.Stratum.String()}, User: poolAddr + ".rig",
		Threads: 1, Output: os.Stderr, Logger: log.With("component", "miner")})
	if err != nil {
		t.Fatal(err)
	}
	minerCtx, stopMiner := context.WithCancel(ctx)
	minerDone := make(chan error, 1)
	go func() { minerDone <- miner.Run(minerCtx) }()
	defer func() { stopMiner(); <-minerDone }()
	waitRows(ctx, t, dbURL, `SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.name = 'rig' AND s.node_id = 1`)

	load := func(l listeners, worker string) chan loadtest.Report {
		out := make(chan loadtest.Report, 1)
		go func() {
			rep, err := loadtest.Run(ctx, loadtest.Config{URL: "stratum+tcp://" + l.Stratum.String(), Miners: 25, Duration: 6 * time.Second,
				Rate: 20, User: poolAddr + "." + worker, Mode: loadtest.ModeAccept, DrainTimeout: 5 * time.Second})
			if err != nil {
				t.Error(err)
			}
			out <- rep
		}()
		return out
	}
	load1, load2 := load(l1, "n1"), load(l2, "n2")
	// Node 1 goes down under load (what SIGTERM does to serve).
	time.Sleep(3 * time.Second)
	stop1()
	select {
	case err := <-done1:
		if err != nil {
			t.Fatalf("node 1 stopped with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("node 1 did not stop within a minute")
	}
	rep1, rep2 := <-load1, <-load2
	logReport(t, "node 1", rep1)
	logReport(t, "node 2", rep2)
	if rep1.Accepted == 0 || rep2.Accepted == 0 {
		t.Fatalf("accepted: node 1 %d, node 2 %d", rep1.Accepted, rep2.Accepted)
	}

	// The miner followed client.reconnect to node 2.
	waitRows(ctx, t, dbURL, `SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.name = 'rig' AND s.node_id = 2`)

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Node 1 is gone: every share it answered "accepted" is a row.
	if n := count(`SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.name LIKE 'n1%' AND s.node_id = 1`); n != rep1.Accepted {
		t.Errorf("node 1: %d rows, %d accepted replies", n, rep1.Accepted)
	}
	// No extranonce1 on two nodes or two sessions, each led by its node id.
	if n := count(`SELECT count(*) FROM (SELECT extranonce1 FROM shares GROUP BY extranonce1 HAVING count(DISTINCT node_id) > 1) d`); n != 0 {
		t.Errorf("%d extranonce1 values on both nodes", n)
	}
	if n := count(`SELECT count(*) FROM shares WHERE substr(extranonce1, 1, 2) <> lpad(to_hex(node_id::int), 2, '0')`); n != 0 {
		t.Errorf("%d shares whose extranonce1 does not start with their node's id", n)
	}
	if n := count(`SELECT count(DISTINCT extranonce1) FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.name LIKE 'n%'`); n != 50 {
		t.Errorf("%d distinct extranonce1 over the 50 load sessions", n)
	}
	// Node 1 left the pool: its lease row is gone, node 2's is live.
	nodes, err := ledgerNodes(ctx, dbURL)
	if err != nil || len(nodes) != 1 || nodes[0].NodeID != 2 {
		t.Errorf("live nodes %+v %v", nodes, err)
	}
}

func waitRows(ctx context.Context, t *testing.T, dbURL, q string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var n int64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows after a minute: %s", q)
		}
	}
}

func ledgerNodes(ctx context.Context, dbURL string) ([]ledger.PoolNode, error) {
	led, err := ledger.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer led.Close()
	return led.PoolNodes(ctx, time.Minute)
}
