package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/worker"
)

// minerE2EShares is how many accepted shares TestMinerEndToEnd mines. On
// regtest the network target is easier than the miner's d=0.0001, so every
// accepted share is a block, and the miner waits for the next job after
// each: the pace is the pool's block → template → notify turnaround.
const minerE2EShares = 300

// TestMinerEndToEnd runs the bundled miner (one CPU thread) against `serve`
// on btcd regtest and PostgreSQL until it has a few hundred accepted shares,
// then checks the miner, the pool, the ledger and the node agree on every one.
func TestMinerEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	btcd, dbURL, rpc := regtestStack(t)
	poolAddr := btcd.MiningAddr
	startCount, err := rpc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}

	cfg := regtestServe(t, btcd, dbURL, "hashforge-miner-e2e")
	// The miner fixes its difficulty with d= in its password (vardiff
	// would slow it to a share per --share-interval): 0.0001 is far above
	// regtest's 4.66e-10, so every share is a block, and one thread finds
	// dozens a second.
	cfg.StartDifficulty, cfg.MinDifficulty, cfg.NodeID = 1, 0.0001, 3
	l := startServe(ctx, t, cfg)

	miner, err := worker.New(worker.Config{
		URLs:    []string{"stratum+tcp://" + l.Stratum.String()},
		User:    poolAddr + ".e2e",
		Pass:    "x,d=0.0001",
		Threads: 1,
		Device:  "cpu",
		Quiet:   true,
		Output:  io.Discard,
		Logger:  testLogger(slog.LevelInfo),
	})
	if err != nil {
		t.Fatal(err)
	}
	minerCtx, stopMiner := context.WithCancel(ctx)
	mined := make(chan error, 1)
	start := time.Now()
	go func() { mined <- miner.Run(minerCtx) }()
	deadline := time.Now().Add(90 * time.Second)
	for miner.Stats().Accepted < minerE2EShares {
		if time.Now().After(deadline) {
			stopMiner()
			<-mined
			t.Fatalf("only %d shares accepted in 90 s: %+v", miner.Stats().Accepted, miner.Stats())
		}
		select {
		case err := <-mined:
			t.Fatalf("miner stopped early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopMiner()
	if err := <-mined; err != nil {
		t.Fatalf("miner: %v", err)
	}
	ms := miner.Stats()
	t.Logf("miner: %d accepted, %d stale, %d discarded, %d rejected in %v",
		ms.Accepted, ms.Stale, ms.Discarded, ms.Rejected, time.Since(start).Round(time.Millisecond))

	// The miner: every share it sent was answered, none refused as bad.
	// Stale (21) is the one refusal a miner cannot avoid: a share found on
	// a block the pool has just solved, sent before the new job arrived.
	if ms.Rejected != 0 || ms.HWErrors != 0 || ms.Lost != 0 {
		t.Errorf("miner: %d rejected, %d hardware errors, %d lost; want 0", ms.Rejected, ms.HWErrors, ms.Lost)
	}

	// The pool agrees, share for share: what it accepted is what the miner
	// heard accepted, and its only refusals are those stale ones.
	var stats struct {
		Accepted    uint64            `json:"shares_accepted"`
		Rejected    map[string]uint64 `json:"shares_rejected"`
		BlocksFound uint64            `json:"blocks_found"`
	}
	getJSONE2E(ctx, t, "http://"+l.HTTP.String()+"/api/v1/stats", &stats)
	if stats.Accepted != ms.Accepted {
		t.Errorf("pool accepted %d shares, miner heard %d", stats.Accepted, ms.Accepted)
	}
	for reason, n := range stats.Rejected {
		if reason != "stale job" && n != 0 {
			t.Errorf("pool rejected %d shares as %q", n, reason)
		}
	}
	if stats.Rejected["stale job"] != ms.Stale {
		t.Errorf("pool counts %d stale shares, the miner %d", stats.Rejected["stale job"], ms.Stale)
	}

	// The ledger: one share row per accepted share, each a block, and one
	// accepted block row per block share. Block rows are written in the
	// background and shares in batches: poll.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shares, blockShares, blocks, acceptedBlocks int
	for wait := time.Now().Add(30 * time.Second); ; {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.is_block) FROM shares s
			JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name = 'e2e'`, poolAddr).Scan(&shares, &blockShares); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE accepted AND verdict = 'accepted') FROM blocks`).Scan(&blocks, &acceptedBlocks); err != nil {
			t.Fatal(err)
		}
		if uint64(shares) == ms.Accepted && blocks == blockShares || time.Now().After(wait) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if uint64(shares) != ms.Accepted || blockShares != shares {
		t.Errorf("ledger has %d shares (%d blocks) for %d accepted; on regtest every share is a block", shares, blockShares, ms.Accepted)
	}
	if blocks != acceptedBlocks || uint64(acceptedBlocks) != stats.BlocksFound || acceptedBlocks != blockShares {
		t.Errorf("ledger has %d block rows, %d accepted; pool found %d; %d block shares", blocks, acceptedBlocks, stats.BlocksFound, blockShares)
	}

	// The node: its chain grew by exactly the accepted blocks, each of them
	// in the main chain at its height, the last one the tip.
	endCount, err := rpc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if endCount-startCount != int64(acceptedBlocks) {
		t.Errorf("node's block count rose by %d (%d → %d), the ledger has %d accepted blocks",
			endCount-startCount, startCount, endCount, acceptedBlocks)
	}
	rows, err := conn.Query(ctx, `SELECT height, hash FROM blocks WHERE accepted ORDER BY height, id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		height int64
		hash   string
	}
	var chain []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.height, &r.hash); err != nil {
			t.Fatal(err)
		}
		chain = append(chain, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i, r := range chain {
		if r.height != startCount+1+int64(i) {
			t.Fatalf("block row %d at height %d, want %d (heights must run without gaps or repeats)", i, r.height, startCount+1+int64(i))
		}
		if h, err := rpc.GetBlockHash(ctx, r.height); err != nil || h != r.hash {
			t.Fatalf("main chain at %d is %s (%v), the ledger says %s", r.height, h, err, r.hash)
		}
	}
	best, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) == 0 || best != chain[len(chain)-1].hash {
		t.Fatalf("node's best block %s is not the ledger's last block", best)
	}
}

func getJSONE2E(ctx context.Context, t *testing.T, url string, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w", url, err))
	}
}
