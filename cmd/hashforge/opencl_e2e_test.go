//go:build opencl

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/worker"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOpenCLMinerFindsBlock runs the pool against a regtest btcd and the
// bundled miner with the OpenCL device alone (PoCL on machines without a
// GPU): the block it finds must be the node's new tip.
func TestOpenCLMinerFindsBlock(t *testing.T) {
	devtest.OpenCL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	btcd, dbURL, rpc := regtestStack(t)
	startTip, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// On regtest every share at this difficulty is also a block (the
	// network target is far easier), and PoCL finds one in well under a
	// second.
	cfg := regtestServe(t, btcd, dbURL, "hashforge-opencl-e2e")
	cfg.HTTPAddr, cfg.NodeID = "", 3
	cfg.StartDifficulty, cfg.MinDifficulty = 0.0001, 0.0001
	var poolLog syncBuffer
	var logOut io.Writer = &poolLog
	if testing.Verbose() {
		logOut = io.MultiWriter(&poolLog, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := startServeLog(ctx, t, cfg, log)

	m, err := worker.New(worker.Config{
		URLs:   []string{"stratum+tcp://" + l.Stratum.String()},
		User:   btcd.MiningAddr + ".opencl",
		Device: "opencl:0",
		Quiet:  true,
		Output: io.Discard,
		Logger: log.With("component", "miner"),
	})
	if err != nil {
		t.Fatalf("miner with --device opencl:0: %v", err)
	}
	minerCtx, stopMiner := context.WithCancel(ctx)
	mined := make(chan error, 1)
	go func() { mined <- m.Run(minerCtx) }()
	defer func() {
		stopMiner()
		if err := <-mined; err != nil {
			t.Errorf("miner returned %v", err)
		}
	}()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// Wait for the pool to record an accepted block, then check the node
	// agrees it is the tip (or that the tip builds on one of ours, if the
	// miner found several in the meantime).
	var blocks []string
	for {
		rows, err := conn.Query(ctx, `SELECT hash FROM blocks WHERE accepted ORDER BY height`)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no block accepted before the deadline; miner stats %+v\npool log:\n%s", m.Stats(), poolLog.String())
		case err := <-mined:
			t.Fatalf("miner stopped before finding a block: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	stopMiner()
	if err := <-mined; err != nil {
		t.Errorf("miner returned %v", err)
	}
	mined <- nil // for the deferred stop

	tip, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tip == startTip {
		t.Fatalf("node tip unchanged at %s although the pool recorded blocks %v", tip, blocks)
	}
	// Blocks found after the query above are recorded too; re-read them.
	rows, err := conn.Query(ctx, `SELECT hash FROM blocks WHERE accepted`)
	if err != nil {
		t.Fatal(err)
	}
	if blocks, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range blocks {
		found = found || b == tip
	}
	if !found {
		t.Fatalf("node's tip %s is not one of the blocks the pool recorded %v", tip, blocks)
	}
	if !strings.Contains(poolLog.String(), "block accepted by node") {
		t.Fatalf("pool never logged \"block accepted by node\":\n%s", poolLog.String())
	}

	st := m.Stats()
	if len(st.Devices) != 1 || st.Devices[0].Name != "opencl:0" || st.Devices[0].Hashes == 0 {
		t.Fatalf("want the OpenCL device alone to have hashed, got %+v", st.Devices)
	}
	if st.Accepted == 0 || st.HWErrors != 0 {
		t.Fatalf("miner stats: %d accepted, %d hardware errors; want ≥ 1 and 0", st.Accepted, st.HWErrors)
	}
	t.Logf("OpenCL miner: %d blocks accepted, tip %s, %d hashes", len(blocks), tip, st.Hashes)
}
