package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/stratum2"
	"github.com/hashforge/hashforge/worker"
)

// mineV2Shares is how many accepted shares each miner of
// TestMineStratumV2EndToEnd mines; on regtest each is a block.
const mineV2Shares = 20

// mineV2Alone is how many more the V2 miner mines after the V1 miner
// stopped: blocks no other miner races, so they extend btcd's main chain.
const mineV2Alone = 3

// TestMineStratumV2EndToEnd runs the bundled miner over Stratum V2 (the
// stratum2+tcp URL the pool prints) and a V1 miner beside it against the
// real serve on btcd regtest and PostgreSQL: both find blocks btcd
// accepts, and the V2 miner's shares are ledger rows under its
// worker name. A URL with another authority key is refused with an error
// that says why.
func TestMineStratumV2EndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	btcd, dbURL, rpc, l := v2Stack(ctx, t, "hashforge-mine-sv2", 3)

	newMiner := func(url, user, pass string, log *slog.Logger) *worker.Miner {
		m, err := worker.New(worker.Config{URLs: []string{url}, User: user, Pass: pass, Threads: 1, Device: "cpu",
			Quiet: true, Output: io.Discard, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	v2 := newMiner(l.StratumV2, btcd.MiningAddr+".v2miner", "", testLogger(slog.LevelInfo))
	v1 := newMiner("stratum+tcp://"+l.Stratum.String(), btcd.MiningAddr+".v1miner", "x,d=0.0001", testLogger(slog.LevelInfo))
	// Each miner has its own context: the V1 miner stops first and the V2
	// miner then mines alone, so the chain's tip is the V2 miner's block
	// whoever won the races while both mined.
	v2Ctx, stopV2 := context.WithCancel(ctx)
	v1Ctx, stopV1 := context.WithCancel(ctx)
	defer stopV2()
	defer stopV1()
	v2Done, v1Done := make(chan error, 1), make(chan error, 1)
	go func() { v2Done <- v2.Run(v2Ctx) }()
	go func() { v1Done <- v1.Run(v1Ctx) }()
	waitAccepted := func(what string, done func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("in 2 minutes (%s): V2 miner %+v, V1 miner %+v", what, v2.Stats(), v1.Stats())
			}
			select {
			case err := <-v2Done:
				t.Fatalf("the V2 miner stopped early: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitAccepted("both mining", func() bool {
		return v2.Stats().Accepted >= mineV2Shares && v1.Stats().Accepted >= mineV2Shares
	})
	stopV1()
	if err := <-v1Done; err != nil {
		t.Fatalf("V1 miner: %v", err)
	}
	alone := v2.Stats().Accepted + mineV2Alone
	waitAccepted("V2 alone", func() bool { return v2.Stats().Accepted >= alone })
	stopV2()
	if err := <-v2Done; err != nil {
		t.Fatalf("V2 miner: %v", err)
	}
	for name, m := range map[string]*worker.Miner{"V2": v2, "V1": v1} {
		s := m.Stats()
		t.Logf("%s miner: %d accepted, %d stale, %d discarded", name, s.Accepted, s.Stale, s.Discarded)
		// Stale is the one refusal a miner cannot avoid: a block share sent
		// just as the pool moved to the next block.
		if s.Rejected != 0 || s.HWErrors != 0 || s.Lost != 0 {
			t.Errorf("%s miner: %d rejected, %d hardware errors, %d lost; want 0", name, s.Rejected, s.HWErrors, s.Lost)
		}
	}

	// Every accepted share is a row of its worker, and on regtest a block
	// in btcd's main chain. Shares are written in batches: poll.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(name string) (shares, blocks int) {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.is_block) FROM shares s
			JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name = $2 AND s.node_id = 3`,
			btcd.MiningAddr, name).Scan(&shares, &blocks); err != nil {
			t.Fatal(err)
		}
		return
	}
	for wait := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s2, b2 := count("v2miner")
		s1, b1 := count("v1miner")
		if uint64(s2) == v2.Stats().Accepted && b2 == s2 && uint64(s1) == v1.Stats().Accepted && b1 == s1 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("ledger: v2miner %d shares (%d blocks) for %d accepted, v1miner %d (%d) for %d",
				s2, b2, v2.Stats().Accepted, s1, b1, v1.Stats().Accepted)
		}
	}
	rows, err := conn.Query(ctx, `SELECT s.block_hash FROM shares s JOIN workers w ON w.id = s.worker_id
		WHERE w.address = $1 AND w.name = 'v2miner' AND s.is_block`, btcd.MiningAddr)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Two miners on one pool find blocks at the same height now and then:
	// btcd keeps the one it saw first and puts the other on a side chain
	// (getblockheader answers only for the main chain), so which of the
	// shared-time blocks are in the main chain is a race. Every V2 block
	// must be one btcd accepted at submitblock, and the ones mined alone,
	// with nobody to race, are in the main chain: btcd's tip is one.
	isV2 := make(map[string]bool, len(hashes))
	inMain := 0
	for _, h := range hashes {
		isV2[h] = true
		var accepted bool
		var verdict string
		if err := conn.QueryRow(ctx, `SELECT accepted, verdict FROM blocks WHERE hash = $1`, h).Scan(&accepted, &verdict); err != nil ||
			!accepted || verdict != "accepted" {
			t.Fatalf("V2 miner's block %s: accepted %v, verdict %q (%v); want a block btcd accepted", h, accepted, verdict, err)
		}
		var hdr struct {
			Confirmations int64 `json:"confirmations"`
		}
		if rpc.Call(ctx, "getblockheader", []any{h, true}, &hdr) == nil && hdr.Confirmations >= 1 {
			inMain++
		}
	}
	var tip string
	if err := rpc.Call(ctx, "getbestblockhash", nil, &tip); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of the V2 miner's %d blocks are in btcd's main chain", inMain, len(hashes))
	if !isV2[tip] || inMain < mineV2Alone-1 {
		t.Fatalf("btcd's tip %s is the V2 miner's: %v; %d of its %d blocks in the main chain, want at least %d (mined alone)",
			tip, isV2[tip], inMain, len(hashes), mineV2Alone-1)
	}

	// Another authority key in the URL: the miner says the certificate is
	// not signed by it, naming the URL, and never opens a channel.
	u, err := stratum2.ParseURL(l.StratumV2)
	if err != nil {
		t.Fatal(err)
	}
	other, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	u.Authority = stratum2.AuthorityPubKeyOf(other)
	log := &certLog{want: "certificate is not signed by the authority key in the URL", seen: make(chan string, 1)}
	bad := newMiner(u.String(), btcd.MiningAddr+".wrongkey", "", slog.New(slog.NewTextHandler(log, nil)))
	badCtx, stopBad := context.WithCancel(ctx)
	badDone := make(chan error, 1)
	go func() { badDone <- bad.Run(badCtx) }()
	select {
	case line := <-log.seen:
		if !strings.Contains(line, u.Addr) {
			t.Errorf("the error does not name the pool: %s", line)
		}
	case <-ctx.Done():
		t.Fatal("no error for a URL with another authority key")
	}
	stopBad()
	if err := <-badDone; err != nil {
		t.Fatal(err)
	}
	if s := bad.Stats(); s.Submitted != 0 {
		t.Errorf("miner with a wrong key submitted %d shares", s.Submitted)
	}
}

// certLog hands the log so far to seen once it contains want.
type certLog struct {
	want string
	seen chan string
	once sync.Once
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *certLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), []byte(w.want)) {
		w.once.Do(func() { w.seen <- w.buf.String() })
	}
	return len(p), nil
}

// TestMineStratumV2StandardChannel: `hashforge mine --sv2-standard-channel`
// against the real serve on btcd regtest and PostgreSQL mines header-only
// work (the pool's merkle roots) on a standard channel: its shares are
// accepted, rows under its worker, and blocks btcd accepts.
func TestMineStratumV2StandardChannel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	btcd, dbURL, rpc, l := v2Stack(ctx, t, "hashforge-mine-sv2-std", 4)
	opened := &certLog{want: "standard=true", seen: make(chan string, 1)}
	m, err := worker.New(worker.Config{URLs: []string{l.StratumV2}, User: btcd.MiningAddr + ".v2std", Threads: 1,
		Device: "cpu", V2Standard: true, Quiet: true, Output: io.Discard, Logger: slog.New(slog.NewTextHandler(opened, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	for deadline := time.Now().Add(2 * time.Minute); m.Stats().Accepted < 5; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("in 2 minutes: %+v", m.Stats())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := m.Stats()
	if s.Rejected != 0 || s.HWErrors != 0 || s.Lost != 0 {
		t.Fatalf("standard channel miner: %+v; want none rejected, lost or in error", s)
	}
	select {
	case <-opened.seen:
	default:
		t.Fatal("the miner did not open a standard channel")
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, blocks int
	for wait := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.is_block) FROM shares s
			JOIN workers w ON w.id = s.worker_id WHERE w.name = 'v2std' AND s.node_id = 4`).Scan(&rows, &blocks); err != nil {
			t.Fatal(err)
		}
		if uint64(rows) == s.Accepted && blocks == rows {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("ledger: %d rows (%d blocks) for %d accepted", rows, blocks, s.Accepted)
		}
	}
	// Mining alone, its last block is btcd's tip.
	var tip string
	if err := rpc.Call(ctx, "getbestblockhash", nil, &tip); err != nil {
		t.Fatal(err)
	}
	var accepted bool
	if err := conn.QueryRow(ctx, `SELECT accepted FROM blocks WHERE hash = $1 AND node_id = 4`, tip).Scan(&accepted); err != nil || !accepted {
		t.Fatalf("btcd's tip %s is not the standard channel miner's accepted block (%v)", tip, err)
	}
}
