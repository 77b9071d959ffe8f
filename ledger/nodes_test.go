package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestNodeLease(t *testing.T) {
	ctx := testCtx(t)
	l, _ := newTestLedger(t)

	if err := l.ClaimNode(ctx, 3, "a:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	// A second live process with the same id is refused, with who holds it.
	err := l.ClaimNode(ctx, 3, "b:2", time.Minute)
	var held *NodeHeldError
	if !errors.As(err, &held) || held.Holder != "a:1" || !strings.Contains(err.Error(), "--node-id") {
		t.Fatalf("second claim: %v", err)
	}
	// Another id is free; the holder may claim its own id again.
	if err := l.ClaimNode(ctx, 4, "b:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.ClaimNode(ctx, 3, "a:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.HeartbeatNode(ctx, 3, "a:1", map[string]int{"sessions": 7}); err != nil {
		t.Fatal(err)
	}
	nodes, err := l.PoolNodes(ctx, time.Minute)
	if err != nil || len(nodes) != 2 || nodes[0].NodeID != 3 || nodes[1].NodeID != 4 {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
	var st map[string]int
	if err := json.Unmarshal(nodes[0].Stats, &st); err != nil || st["sessions"] != 7 {
		t.Fatalf("stats %s %v", nodes[0].Stats, err)
	}

	// A crashed holder's lease expires: its heartbeat is older than the
	// lease, and another process takes the id; the old one learns it lost
	// it at its next heartbeat.
	if _, err := l.pool.Exec(ctx, `UPDATE pool_nodes SET heartbeat = now() - interval '2 minutes' WHERE node_id = 3`); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := l.PoolNodes(ctx, time.Minute); len(nodes) != 1 {
		t.Fatalf("expired node listed: %+v", nodes)
	}
	if err := l.ClaimNode(ctx, 3, "c:3", time.Minute); err != nil {
		t.Fatalf("claim after expiry: %v", err)
	}
	if err := l.HeartbeatNode(ctx, 3, "a:1", nil); !errors.Is(err, ErrNodeLost) {
		t.Fatalf("old holder's heartbeat: %v", err)
	}
	// A clean exit frees the id at once.
	if err := l.ReleaseNode(ctx, 3, "c:3"); err != nil {
		t.Fatal(err)
	}
	if err := l.ClaimNode(ctx, 3, "d:4", time.Minute); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

func TestBlockAnnouncements(t *testing.T) {
	ctx := testCtx(t)
	l, _ := newTestLedger(t)
	got := make(chan BlockNotice, 4)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.ListenBlocks(lctx, 2, slog.New(slog.DiscardHandler), func(n BlockNotice) { got <- n })
	}()
	defer func() { cancel(); <-done }()
	// LISTEN takes effect asynchronously: announce until heard.
	want := BlockNotice{NodeID: 1, Height: 10, Hash: "aa", PrevHash: "bb", Time: 1700000000}
	mine := BlockNotice{NodeID: 2, Height: 11, Hash: "cc", PrevHash: "aa"}
	deadline := time.After(10 * time.Second)
	for heard := false; !heard; {
		if err := l.AnnounceBlock(ctx, mine); err != nil { // its own: never heard
			t.Fatal(err)
		}
		if err := l.AnnounceBlock(ctx, want); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("heard %+v, want %+v", n, want)
			}
			heard = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no announcement heard")
		}
	}
}

func TestPoolSecret(t *testing.T) {
	ctx := testCtx(t)
	l, _ := newTestLedger(t)
	a, err := l.PoolSecret(ctx, "session-resume", 32)
	if err != nil || len(a) != 32 {
		t.Fatalf("%x %v", a, err)
	}
	b, err := l.PoolSecret(ctx, "session-resume", 32)
	if err != nil || string(a) != string(b) {
		t.Fatalf("second read %x, first %x (%v)", b, a, err)
	}
	if c, _ := l.PoolSecret(ctx, "other", 32); string(c) == string(a) {
		t.Fatal("two secrets alike")
	}
}
