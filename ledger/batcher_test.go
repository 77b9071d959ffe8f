package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashforge/hashforge/record"
)

// runBatcher starts b.Run and returns a stop function that cancels it and
// returns Run's error.
func runBatcher(t *testing.T, b *Batcher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Batcher.Run did not return within a minute of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond; it is a liveness bound, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func makeShares(n, workers int, job string) []record.Share {
	base := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	out := make([]record.Share, n)
	for i := range out {
		out[i] = record.Share{
			Time:        base.Add(time.Duration(i) * time.Microsecond),
			Address:     fmt.Sprintf("bcrt1qaddr%d", i%workers%3),
			Worker:      fmt.Sprintf("rig%d", i%workers),
			JobID:       fmt.Sprintf("%s-%d", job, i),
			Difficulty:  float64(1 + i%7),
			ActualDiff:  float64(10 + i),
			Height:      200 + int64(i%2),
			RemoteAddr:  "10.0.0.1:3333",
			ExtraNonce1: "deadbeef",
		}
	}
	return out
}

func countShares(t *testing.T, l *Ledger, jobPrefix string) (rows, distinct int) {
	t.Helper()
	err := l.Pool().QueryRow(testCtx(t),
		"SELECT count(*), count(DISTINCT job_id) FROM shares WHERE job_id LIKE $1 || '-%'", jobPrefix).Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

func TestBatcherWritesEveryShare(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	b := NewBatcher(l, BatcherOptions{MaxBatch: 300, FlushInterval: 20 * time.Millisecond, SpoolDir: t.TempDir()})
	stop := runBatcher(t, b)

	const n, workers = 2500, 10
	shares := makeShares(n, workers, "w")
	shares[7].IsBlock, shares[7].BlockHash = true, "00000000000000000001aa"
	shares[8].RemoteAddr, shares[8].ExtraNonce1 = "", ""
	shares[9].Worker = "bad\x00name\xff" // from the wire: not storable as is
	shares[10].Difficulty = math.Inf(1)
	var wg sync.WaitGroup
	var acked sync.WaitGroup
	acked.Add(n)
	var nacks atomic.Int64
	for p := range 4 { // several producers, as the Stratum sessions are
		wg.Go(func() {
			for i := p; i < n; i += 4 {
				b.AddShare(shares[i], func(err error) {
					if err != nil {
						nacks.Add(1)
					}
					acked.Done()
				})
			}
		})
	}
	wg.Wait()
	acked.Wait() // every share acknowledged exactly once (a second Done panics)
	if nacks.Load() != 0 {
		t.Fatalf("%d shares refused with the spool and database up", nacks.Load())
	}
	waitFor(t, "all shares written", func() bool { return b.Stats().SharesWritten == n })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	if rows, distinct := countShares(t, l, "w"); rows != n || distinct != n {
		t.Fatalf("shares table: %d rows, %d distinct, want %d each", rows, distinct, n)
	}
	if got, err := l.ShareCount(ctx); err != nil || got != n {
		t.Fatalf("ShareCount = %d, %v; want %d", got, err, n)
	}

	// Values survive the trip, worker ids point at the right workers.
	for _, i := range []int{0, 7, 8, 1234} {
		s := shares[i]
		var (
			addr, name, job          string
			tm                       time.Time
			diff, actual             float64
			height                   int64
			isBlock                  bool
			hash, remote, extranonce *string
		)
		err := l.Pool().QueryRow(ctx, `
			SELECT w.address, w.name, s.job_id, s.time, s.difficulty, s.actual_difficulty, s.height,
			       s.is_block, s.block_hash, s.remote_addr, s.extranonce1
			FROM shares s JOIN workers w ON w.id = s.worker_id WHERE s.job_id = $1`, s.JobID).
			Scan(&addr, &name, &job, &tm, &diff, &actual, &height, &isBlock, &hash, &remote, &extranonce)
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
		if addr != s.Address || name != s.Worker || !tm.Equal(s.Time) || diff != s.Difficulty ||
			actual != s.ActualDiff || height != s.Height || isBlock != s.IsBlock {
			t.Errorf("share %d stored as %s.%s %v d=%v ad=%v h=%d block=%v; sent %+v", i, addr, name, tm, diff, actual, height, isBlock, s)
		}
		if (hash != nil) != (s.BlockHash != "") || (remote != nil) != (s.RemoteAddr != "") || (extranonce != nil) != (s.ExtraNonce1 != "") {
			t.Errorf("share %d: optional columns hash=%v remote=%v en1=%v, sent %+v", i, hash, remote, extranonce, s)
		}
	}
	var inf float64
	if err := l.Pool().QueryRow(ctx, "SELECT difficulty FROM shares WHERE job_id = $1", shares[10].JobID).Scan(&inf); err != nil || inf != 0 {
		t.Errorf("infinite difficulty stored as %v (err %v), want 0", inf, err)
	}

	var nWorkers int
	if err := l.Pool().QueryRow(ctx, "SELECT count(*) FROM workers").Scan(&nWorkers); err != nil || nWorkers != workers+1 {
		t.Fatalf("workers table has %d rows (err %v), want %d", nWorkers, err, workers+1)
	}
	var lastSeen time.Time
	if err := l.Pool().QueryRow(ctx, "SELECT last_seen FROM workers WHERE address = $1 AND name = $2",
		shares[n-1].Address, shares[n-1].Worker).Scan(&lastSeen); err != nil ||
		lastSeen.After(shares[n-1].Time) || shares[n-1].Time.Sub(lastSeen) > lastSeenResolution {
		t.Errorf("last_seen = %v (err %v), want within %v before the worker's last share at %v",
			lastSeen, err, lastSeenResolution, shares[n-1].Time)
	}
	st := b.Stats()
	if st.BatchesFlushed == 0 || st.SharesSpooled != n || st.SharesLost != 0 || st.SharesRefused != 0 ||
		st.LastFlushLatency <= 0 || st.LastSyncLatency <= 0 || st.LogBacklogBytes != 0 || st.Refusing != "" {
		t.Errorf("stats = %+v", st)
	}
}

func TestBatcherDrainsQueueOnStop(t *testing.T) {
	l, _ := newTestLedger(t)
	// A long interval and a batch bigger than the input: only the final
	// drain at shutdown can write these shares.
	b := NewBatcher(l, BatcherOptions{MaxBatch: 10_000, FlushInterval: time.Hour})
	const n = 1500
	for _, s := range makeShares(n, 5, "d") {
		b.AddShare(s, nil) // before Run: they wait in the queue
	}
	stop := runBatcher(t, b)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rows, _ := countShares(t, l, "d"); rows != n {
		t.Fatalf("%d shares written, want %d", rows, n)
	}
}

// proxy forwards TCP to PostgreSQL and can simulate an outage: down cuts
// every open connection and makes new ones fail at once.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, databaseURL string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// proxiedLedger is a Ledger that reaches the database through a proxy
// the test can take down.
func proxiedLedger(t *testing.T, databaseURL string) (*proxy, *Ledger) {
	t.Helper()
	px, proxied := startProxy(t, databaseURL)
	pl, err := Open(testCtx(t), proxied)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	return px, pl
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBatcherSpoolsDuringOutageAndReplaysOnce(t *testing.T) {
	l, url := newTestLedger(t)
	px, pl := proxiedLedger(t, url)

	dir := t.TempDir()
	b := NewBatcher(pl, BatcherOptions{MaxBatch: 100, FlushInterval: 10 * time.Millisecond, SpoolDir: dir})
	stop := runBatcher(t, b)

	shares := makeShares(1000, 7, "o")
	for _, s := range shares[:200] {
		b.AddShare(s, nil)
	}
	waitFor(t, "first shares written", func() bool { return b.Stats().SharesWritten == 200 })

	px.setDown(true)
	for _, s := range shares[200:800] {
		b.AddShare(s, nil)
	}
	// Spooling does not wait for the database: the shares can be safe in
	// the spool before a write to the database has failed and said so.
	waitFor(t, "shares kept in the spool, the database seen down", func() bool {
		st := b.Stats()
		return st.SharesSpooled == 800 && !st.DatabaseUp
	})
	if st := b.Stats(); st.LogBacklogBytes == 0 || st.SharesWritten != 200 || st.Refusing != "" {
		t.Fatalf("during the outage: %+v", st)
	}

	px.setDown(false)
	for _, s := range shares[800:] {
		b.AddShare(s, nil)
	}
	waitFor(t, "spool applied", func() bool {
		st := b.Stats()
		return st.SharesWritten == uint64(len(shares)) && st.LogBacklogBytes == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rows, distinct := countShares(t, l, "o"); rows != len(shares) || distinct != len(shares) {
		t.Fatalf("after the outage: %d rows, %d distinct; want %d each", rows, distinct, len(shares))
	}
	if st := b.Stats(); st.FlushErrors == 0 || st.SharesLost != 0 || st.SharesRefused != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBatcherSpoolsWhenDatabaseNeverAnswersAndNextProcessReplays(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	dir := t.TempDir()

	// Process one: its database is a closed port for its whole life.
	deadPool, err := newPoolNoPing(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	dead := &Ledger{pool: deadPool}
	t.Cleanup(dead.Close)
	b1 := NewBatcher(dead, BatcherOptions{MaxBatch: 50, FlushInterval: 10 * time.Millisecond, SpoolDir: dir})
	stop1 := runBatcher(t, b1)
	shares := makeShares(420, 4, "r")
	for _, s := range shares[:400] {
		b1.AddShare(s, nil)
	}
	if err := stop1(); err != nil {
		t.Fatalf("Run with the database away: %v", err)
	}
	// Shares accepted after Run returned still go to disk.
	for _, s := range shares[400:] {
		b1.AddShare(s, nil)
	}
	if st := b1.Stats(); st.SharesWritten != 0 || st.SharesLost != 0 || st.SharesSpooled != 420 || st.SharesRefused != 0 {
		t.Fatalf("process one stats = %+v", st)
	}

	// Process two, with the database back, replays at start.
	b2 := NewBatcher(l, BatcherOptions{SpoolDir: dir})
	stop2 := runBatcher(t, b2)
	waitFor(t, "spool replayed", func() bool { return b2.Stats().SharesWritten == 420 })
	if err := stop2(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rows, distinct := countShares(t, l, "r"); rows != len(shares) || distinct != len(shares) {
		t.Fatalf("replayed %d rows, %d distinct; want %d each", rows, distinct, len(shares))
	}
}

// TestLegacySpoolReplaysByID: a version-1 segment an older hashforge
// left (JSON batches with ids) is replayed once at start, skipping a batch
// already committed and a torn tail.
func TestLegacySpoolReplaysByID(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	dir := t.TempDir()

	committed := testBatch(30, "x1")
	pending := testBatch(40, "x2")
	torn := testBatch(50, "x3")

	// The crash this simulates: committed made it to the database, but the
	// process died before deleting its spool segment, in the middle of
	// appending the next record.
	w := NewBatcher(l, BatcherOptions{})
	if written, err := w.writeBatch(ctx, committed); err != nil || !written {
		t.Fatalf("writeBatch: %v, %v", written, err)
	}
	var seg []byte
	for _, bt := range []batch{committed, pending} {
		rec, err := encodeRecord(bt)
		if err != nil {
			t.Fatal(err)
		}
		seg = append(seg, rec...)
	}
	rec, _ := encodeRecord(torn)
	seg = append(seg, rec[:len(rec)/2]...)
	if err := os.WriteFile(filepath.Join(dir, "0000000000000003"+segmentSuffix), seg, 0o600); err != nil {
		t.Fatal(err)
	}

	b := NewBatcher(l, BatcherOptions{SpoolDir: dir})
	stop := runBatcher(t, b)
	waitFor(t, "segment replayed", func() bool { return len(spoolFiles(t, dir)) == 0 })
	// The write-ahead log continues after the old segments.
	b.AddShare(record.Share{Address: "a", Worker: "w", JobID: "after", Difficulty: 1}, nil)
	waitFor(t, "new share applied", func() bool { return b.Stats().SharesWritten == 41 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	var n1, n2, n3 int
	err := l.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE job_id = 'x1'), count(*) FILTER (WHERE job_id = 'x2'),
		count(*) FILTER (WHERE job_id = 'x3') FROM shares`).Scan(&n1, &n2, &n3)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != 30 || n2 != 40 || n3 != 0 {
		t.Fatalf("shares per batch: committed %d (want 30), pending %d (want 40), torn %d (want 0)", n1, n2, n3)
	}
	if st := b.Stats(); st.BatchesSkipped != 1 || st.BatchesReplayed != 1 {
		t.Fatalf("stats = %+v; want 1 skipped, 1 replayed", st)
	}
	if got, err := l.ShareCount(ctx); err != nil || got != 71 {
		t.Fatalf("ShareCount = %d, %v; want 71", got, err)
	}
}

// keepAll adds shares and waits until each is acknowledged; it returns
// how many were refused.
func keepAll(t *testing.T, b *Batcher, shares []record.Share) (refused int) {
	t.Helper()
	var wg sync.WaitGroup
	var n atomic.Int64
	wg.Add(len(shares))
	for _, s := range shares {
		b.AddShare(s, func(err error) {
			if errors.Is(err, ErrNotKept) {
				n.Add(1)
			} else if err != nil {
				t.Errorf("done: %v", err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	return int(n.Load())
}

func TestPermanentlyRefusedBatchIsSetAside(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	// A constraint the data cannot meet stands in for any data error.
	if _, err := l.Pool().Exec(ctx, "ALTER TABLE shares ADD CONSTRAINT no_big_heights CHECK (height < 1000)"); err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(l, BatcherOptions{FlushInterval: 10 * time.Millisecond, SpoolDir: dir})
	stop := runBatcher(t, b)
	bad := makeShares(2, 1, "bad")
	for i := range bad {
		bad[i].Height = 5000
	}
	before, after := makeShares(3, 1, "good1"), makeShares(4, 1, "good2")
	keepAll(t, b, before)
	keepAll(t, b, bad) // a group commit of their own: one log record
	keepAll(t, b, after)
	waitFor(t, "good shares written", func() bool { return b.Stats().SharesWritten == 7 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := b.Stats(); st.BatchesRejected != 1 || st.SharesLost != 0 {
		t.Fatalf("stats = %+v; want 1 rejected batch", st)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, rejectedPrefix+"*")); len(m) != 1 {
		t.Fatalf("quarantine files: %v, want one", m)
	}
	if rows, _ := countShares(t, l, "good1"); rows != 3 {
		t.Fatalf("good1: %d rows, want 3", rows)
	}
	if rows, _ := countShares(t, l, "good2"); rows != 4 {
		t.Fatalf("good2: %d rows, want 4", rows)
	}
}

// TestWithoutSpoolSharesAreRefusedWhileDatabaseAway: with nothing on disk
// to keep shares, a share is acknowledged once committed, and refused
// (ErrNotKept) while the database is away; it is kept again when it is
// back, by itself.
func TestWithoutSpoolSharesAreRefusedWhileDatabaseAway(t *testing.T) {
	l, url := newTestLedger(t)
	px, pl := proxiedLedger(t, url)
	b := NewBatcher(pl, BatcherOptions{})
	stop := runBatcher(t, b)

	if n := keepAll(t, b, makeShares(50, 3, "up1")); n != 0 {
		t.Fatalf("%d refused with the database up", n)
	}
	if rows, _ := countShares(t, l, "up1"); rows != 50 {
		t.Fatalf("acknowledged before committed: %d rows", rows)
	}
	px.setDown(true)
	if n := keepAll(t, b, makeShares(20, 3, "down")); n != 20 {
		t.Fatalf("%d of 20 refused with the database away, want all", n)
	}
	if st := b.Stats(); st.Refusing == "" || st.SharesRefused != 20 || st.DatabaseUp {
		t.Fatalf("while refusing: %+v", st)
	}
	px.setDown(false)
	waitFor(t, "shares kept again", func() bool { return keepAll(t, b, makeShares(1, 1, "probe")) == 0 })
	if n := keepAll(t, b, makeShares(30, 3, "up2")); n != 0 {
		t.Fatalf("%d refused after the database came back", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rows, _ := countShares(t, l, "down"); rows != 0 {
		t.Fatalf("%d refused shares stored", rows)
	}
	if rows, _ := countShares(t, l, "up2"); rows != 30 {
		t.Fatalf("up2: %d rows, want 30", rows)
	}
	if st := b.Stats(); st.Refusing != "" {
		t.Fatalf("still refusing: %+v", st)
	}
}

// TestUnwritableSpool: a spool that fails (here its next segment cannot
// be created) hands shares to the database directly; with the database
// away too, shares are refused; both recover by themselves.
func TestUnwritableSpool(t *testing.T) {
	l, url := newTestLedger(t)
	px, pl := proxiedLedger(t, url)
	dir := t.TempDir()
	// A directory where the first segment file must go: creating it fails
	// as a full or read-only disk would, whoever runs the test.
	block := filepath.Join(dir, "0000000000000001"+segmentSuffix)
	if err := os.Mkdir(block, 0o700); err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(pl, BatcherOptions{SpoolDir: dir})
	stop := runBatcher(t, b)

	if n := keepAll(t, b, makeShares(10, 2, "direct")); n != 0 {
		t.Fatalf("%d refused with the database up and the spool failing", n)
	}
	if rows, _ := countShares(t, l, "direct"); rows != 10 {
		t.Fatalf("direct: %d rows, want 10 (acknowledged means committed)", rows)
	}
	if st := b.Stats(); st.SpoolUp || st.Refusing != "" {
		t.Fatalf("spool failing: %+v", st)
	}

	px.setDown(true)
	waitFor(t, "refusing", func() bool { return keepAll(t, b, makeShares(1, 1, "x")) == 1 })
	if st := b.Stats(); st.Refusing == "" {
		t.Fatalf("refusing but stats say %+v", st)
	}

	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "spool back", func() bool { return keepAll(t, b, makeShares(1, 1, "y")) == 0 })
	if n := keepAll(t, b, makeShares(25, 2, "spooled")); n != 0 {
		t.Fatalf("%d refused with the spool back", n)
	}
	px.setDown(false)
	waitFor(t, "spooled shares applied", func() bool {
		rows, _ := countShares(t, l, "spooled")
		return rows == 25
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestWorkerLastSeenAdvances(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	b := NewBatcher(l, BatcherOptions{})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	lastSeen := func() time.Time {
		t.Helper()
		var ls time.Time
		if err := l.Pool().QueryRow(ctx, "SELECT last_seen FROM workers WHERE address = 'a' AND name = 'w'").Scan(&ls); err != nil {
			t.Fatal(err)
		}
		return ls
	}
	for i, step := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 0},
		{lastSeenResolution / 2, 0}, // within the resolution: no write
		{lastSeenResolution + time.Second, lastSeenResolution + time.Second},
	} {
		s := record.Share{Time: t0.Add(step.at), Address: "a", Worker: "w", JobID: "j", Difficulty: 1}
		if _, err := b.writeBatch(ctx, batch{ID: newBatchID(time.Now()), Shares: []record.Share{s}}); err != nil {
			t.Fatal(err)
		}
		if got := lastSeen(); !got.Equal(t0.Add(step.want)) {
			t.Fatalf("step %d: last_seen = %v, want %v", i, got, t0.Add(step.want))
		}
	}
}

func TestNoShareLostWhenStopRacesWithAddShare(t *testing.T) {
	l, _ := newTestLedger(t)
	dir := t.TempDir()
	b := NewBatcher(l, BatcherOptions{MaxBatch: 64, FlushInterval: 5 * time.Millisecond, QueueSize: 128, SpoolDir: dir})
	stop := runBatcher(t, b)

	shares := makeShares(3000, 9, "race")
	var wg sync.WaitGroup
	const producers = 4
	for p := range producers {
		wg.Go(func() {
			for i := p; i < len(shares); i += producers {
				b.AddShare(shares[i], nil)
			}
		})
	}
	waitFor(t, "some shares written", func() bool { return b.Stats().SharesWritten > 500 })
	if err := stop(); err != nil { // producers are still adding
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	if st := b.Stats(); st.SharesLost != 0 {
		t.Fatalf("stats = %+v", st)
	}

	// The next process replays what arrived after the first one stopped.
	next := NewBatcher(l, BatcherOptions{SpoolDir: dir})
	stopNext := runBatcher(t, next)
	waitFor(t, "spool replayed", func() bool {
		rows, _ := countShares(t, l, "race")
		return rows >= len(shares)
	})
	if err := stopNext(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rows, distinct := countShares(t, l, "race"); rows != len(shares) || distinct != len(shares) {
		t.Fatalf("%d rows, %d distinct; want %d each", rows, distinct, len(shares))
	}
}

func TestReplaySetsDamagedSegmentAside(t *testing.T) {
	l, _ := newTestLedger(t)
	dir := t.TempDir()
	before, _ := encodeRecord(testBatch(5, "c1"))
	damaged, _ := encodeRecord(testBatch(5, "c2"))
	damaged[recordHeaderLen+1] ^= 0xff
	after, _ := encodeRecord(testBatch(5, "c3"))
	seg := filepath.Join(dir, "0000000000000007"+segmentSuffix)
	if err := os.WriteFile(seg, append(append(before, damaged...), after...), 0o600); err != nil {
		t.Fatal(err)
	}

	b := NewBatcher(l, BatcherOptions{SpoolDir: dir})
	stop := runBatcher(t, b)
	waitFor(t, "segment handled", func() bool { return len(spoolFiles(t, dir)) == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m, _ := filepath.Glob(seg + ".*" + corruptSuffix); len(m) != 1 {
		t.Fatalf("damaged segment kept as %v, want one *.corrupt file", m)
	}
	var n int
	if err := l.Pool().QueryRow(testCtx(t), "SELECT count(*) FROM shares WHERE job_id = 'c1'").Scan(&n); err != nil || n != 5 {
		t.Fatalf("records before the damage: %d shares stored (err %v), want 5", n, err)
	}
}
