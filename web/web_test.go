package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/record"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

// Valid regtest addresses (bech32 P2WPKH); the mainnet one must be refused.
const (
	addrA       = "bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt"
	addrB       = "bcrt1qzyfpx9q4zct3sxg6rvwp68slyqsjygeyuwdjcu"
	mainnetAddr = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
)

// fakePool is the live pool as a test sets it.
type fakePool struct {
	mu     sync.Mutex
	stats  pool.Stats
	online []pool.OnlineWorker
}

func (f *fakePool) Stats() pool.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakePool) Online() []pool.OnlineWorker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pool.OnlineWorker(nil), f.online...)
}

type fakeProcessor struct{ s payout.Stats }

func (f fakeProcessor) Stats() payout.Stats { return f.s }

type fakeBatcher struct{ st ledger.Stats }

func (f fakeBatcher) Stats() ledger.Stats { return f.st }

type testEnv struct {
	srv    *httptest.Server
	web    *Server
	led    *ledger.Ledger
	pool   *fakePool
	events chan pool.Event
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, nil, nil)
}

// newTestEnvWith is newTestEnv with a chance to change the config before
// the server is built (cfg) and the server before it serves (srv).
func newTestEnvWith(t *testing.T, cfg func(*Config), srv func(*Server)) *testEnv {
	t.Helper()
	ctx := context.Background()
	led, err := ledger.Open(ctx, devtest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(led.Close)
	if _, err := led.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fp := &fakePool{stats: pool.Stats{Sessions: 3, AuthorizedWorkers: 2, Accepted: 10, JobHeight: 101,
		NetworkDifficulty: 4.6e-10, Rejected: map[string]uint64{"low difficulty share": 3, "stale job": 1},
		NotifyFanout: pool.Histogram{Bounds: []float64{0.001, 0.01}, Counts: []uint64{1, 3}, Count: 4, Sum: 0.5}}}
	c := Config{Pool: fp, Ledger: led, Payouts: led, Network: &chaincfg.RegressionNetParams,
		Batcher: fakeBatcher{ledger.Stats{BatchesFlushed: 4, SharesWritten: 4000, FlushErrors: 2, QueueLength: 7, LastFlushLatency: 15 * time.Millisecond}},
		Processor: fakeProcessor{payout.Stats{BlocksCredited: 5, BlocksOrphaned: 1, Errors: 2,
			ErrorsByKind: map[string]uint64{payout.ErrKindNode: 2}, LastRun: time.Unix(1_800_000_000, 0)}},
		StratumURL: "stratum+tcp://pool.example:3333", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if cfg != nil {
		cfg(&c)
	}
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if srv != nil {
		srv(w)
	}
	env := &testEnv{web: w, led: led, pool: fp, events: make(chan pool.Event)}
	env.srv = httptest.NewServer(w)
	// Close order matters: the hub closes its websockets, then the HTTP
	// server can finish.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.hub.run(runCtx, env.events); close(done) }()
	t.Cleanup(func() { stop(); <-done; env.srv.Close() })
	return env
}

func get(t *testing.T, url string, wantStatus int, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", url, resp.StatusCode, wantStatus, body)
	}
	if ct := resp.Header.Get("Content-Type"); out != nil && !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: content type %q", url, ct)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: decode %s: %v", url, body, err)
		}
	}
}

// writeShares commits shares through the real batcher and waits for them.
func writeShares(t *testing.T, led *ledger.Ledger, shares []record.Share) {
	t.Helper()
	b := ledger.NewBatcher(led, ledger.BatcherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for _, s := range shares {
		b.AddShare(s, nil)
	}
	for deadline := time.Now().Add(30 * time.Second); b.Stats().SharesWritten < uint64(len(shares)); {
		if time.Now().After(deadline) {
			t.Fatalf("batcher wrote %d of %d shares", b.Stats().SharesWritten, len(shares))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("batcher: %v", err)
	}
}

func TestStatsOnEmptyLedger(t *testing.T) {
	env := newTestEnv(t)
	env.pool.online = []pool.OnlineWorker{{Address: addrA, Worker: "a"}, {Address: addrA, Worker: "b"}, {Address: addrB, Worker: ""}}
	var s map[string]any
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	// The current job builds block 101: the network's tip is 100.
	if s["stratum_url"] != "stratum+tcp://pool.example:3333" || s["workers_online"] != float64(2) || s["network_height"] != float64(100) ||
		s["miners_online"] != float64(2) || s["shares_rejected_total"] != float64(4) || s["last_block"] != nil || s["shares_per_second"] != float64(0) {
		t.Fatalf("stats: %v", s)
	}
	hr, ok := s["hashrate"].(map[string]any)
	if !ok {
		t.Fatalf("hashrate missing: %v", s)
	}
	for _, w := range []string{"10m", "1h", "24h"} {
		// JSON cannot even carry NaN or Inf; a zero is what an idle pool has.
		if hr[w] != float64(0) {
			t.Fatalf("hashrate[%s] = %v on an empty ledger, want 0", w, hr[w])
		}
	}
}

func TestNetworkHeightBeforeFirstJob(t *testing.T) {
	env := newTestEnv(t)
	env.pool.mu.Lock()
	env.pool.stats.JobHeight = 0
	env.pool.mu.Unlock()
	var s map[string]any
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	if s["network_height"] != float64(0) {
		t.Fatalf("network_height %v before the first job, want 0", s["network_height"])
	}
}

// The three hashrates are read together and expire together: once shares
// arrive, no response shows them in one window and not in another.
func TestStatsHashratesAgree(t *testing.T) {
	env := newTestEnv(t)
	var s statsResponse
	get(t, env.srv.URL+"/api/v1/stats", 200, &s) // fills the cache with an idle pool
	if s.Hashrate["10m"] != 0 || s.Hashrate["1h"] != 0 || s.Hashrate["24h"] != 0 {
		t.Fatalf("idle pool: %v", s.Hashrate)
	}
	// Mining starts: every share is within the last 10 minutes, so every
	// window covers the same minute of mining and shows the same rate.
	now := time.Now()
	var shares []record.Share
	for i := range 60 {
		shares = append(shares, record.Share{Time: now.Add(-time.Duration(i) * time.Second), Address: addrA, Worker: "rig",
			JobID: "j", Difficulty: 3, Height: 101})
	}
	writeShares(t, env.led, shares)
	check := func(s statsResponse) {
		t.Helper()
		near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(a, b) }
		if !near(s.Hashrate["10m"], s.Hashrate["1h"]) || !near(s.Hashrate["1h"], s.Hashrate["24h"]) {
			t.Fatalf("hashrates disagree: %v", s.Hashrate)
		}
	}
	// Until the cache expires, the figures are all the old ones.
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	check(s)
	// A found block expires them at once.
	env.events <- pool.Event{Kind: pool.EventBlock, Time: now, Block: &record.Block{Time: now, Height: 101,
		Hash: strings.Repeat("ab", 32), Address: addrA, Accepted: true, Verdict: "accepted"}}
	waitUntil(t, "fresh stats", func() bool {
		get(t, env.srv.URL+"/api/v1/stats", 200, &s)
		check(s)
		return s.Hashrate["10m"] > 0
	})
	// A pool that began mining 59 s ago (one difficulty-3 share a second):
	// its rate over that time, not a tenth of it over 10 minutes. The
	// request comes a little after the shares were stamped, hence the 5 %.
	if want := 3.0 * (1 << 32); math.Abs(s.Hashrate["10m"]-want) > want*0.05 || math.Abs(s.SharesPerSecond-1) > 0.05 {
		t.Fatalf("stats %+v, want 10m hashrate %v and 1 share/s", s, want)
	}
	// And so does the passage of time.
	writeShares(t, env.led, shares[:30])
	env.web.cache.mu.Lock()
	env.web.cache.at = time.Now().Add(-statsTTL)
	env.web.cache.mu.Unlock()
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	check(s)
	if want := 270.0 * 89 / 90 * (1 << 32) / 59; math.Abs(s.Hashrate["10m"]-want) > want*0.05 {
		t.Fatalf("10m hashrate %v after expiry, want %v", s.Hashrate["10m"], want)
	}
}

// trapStore is the real ledger, except that RecentBlocks misbehaves on
// request: it panics at offset 666 and outlives the request's deadline
// at offset 777.
type trapStore struct{ *ledger.Ledger }

func (s trapStore) RecentBlocks(ctx context.Context, limit, offset int) ([]ledger.BlockRow, error) {
	switch offset {
	case 666:
		panic("trap")
	case 777:
		<-ctx.Done()
		return nil, fmt.Errorf("recent blocks: %w", ctx.Err())
	}
	return s.Ledger.RecentBlocks(ctx, limit, offset)
}

// Even a panic and a request timeout answer JSON with their status.
func TestErrorsAreJSON(t *testing.T) {
	env := newTestEnvWith(t,
		func(c *Config) { c.Ledger = trapStore{c.Ledger.(*ledger.Ledger)} },
		func(s *Server) { s.apiTimeout = 200 * time.Millisecond })
	var e map[string]string
	get(t, env.srv.URL+"/api/v1/blocks?offset=666", http.StatusInternalServerError, &e)
	if e["error"] != "internal error" {
		t.Errorf("panic: %v", e)
	}
	e = nil
	get(t, env.srv.URL+"/api/v1/blocks?offset=777", http.StatusGatewayTimeout, &e)
	if e["error"] != "request timed out" {
		t.Errorf("timeout: %v", e)
	}
	// The server is still fine.
	get(t, env.srv.URL+"/api/v1/blocks", http.StatusOK, &map[string]any{})

	// The middlewares answer for handlers that write nothing themselves.
	silent := env.web.timeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	rec := httptest.NewRecorder()
	silent.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
	if rec.Code != http.StatusGatewayTimeout || rec.Header().Get("Content-Type") != "application/json" ||
		json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] != "request timed out" {
		t.Errorf("silent handler past its deadline: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	panicky := env.web.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(errors.New("boom")) }))
	rec = httptest.NewRecorder()
	panicky.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/json" ||
		json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] != "internal error" {
		t.Errorf("panicking handler: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	// A handler that has answered already keeps its answer.
	late := env.web.timeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"n": 1})
		<-r.Context().Done()
	}))
	rec = httptest.NewRecorder()
	late.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"n":1}` {
		t.Errorf("answered handler: %d %s", rec.Code, rec.Body)
	}
}

func TestStatsFromLedger(t *testing.T) {
	env := newTestEnv(t)
	now := time.Now()
	var shares []record.Share
	// 600 difficulty-2 shares in the last 10 minutes, one of 1000 two
	// hours ago (in the 24 h window only).
	for i := range 600 {
		shares = append(shares, record.Share{Time: now.Add(-time.Duration(i) * 900 * time.Millisecond), Address: addrA, Worker: "rig",
			JobID: "j", Difficulty: 2, Height: 101})
	}
	shares = append(shares, record.Share{Time: now.Add(-2 * time.Hour), Address: addrA, Worker: "rig", JobID: "j", Difficulty: 1000, Height: 100})
	writeShares(t, env.led, shares)
	if err := env.led.RecordBlock(context.Background(), record.Block{Time: now, Height: 101, Hash: strings.Repeat("ab", 32),
		Reward: 5_000_000_000, Address: addrA, Worker: "rig", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	var s struct {
		Hashrate        map[string]float64 `json:"hashrate"`
		SharesPerSecond float64            `json:"shares_per_second"`
		LastBlock       *struct {
			Height int64  `json:"height"`
			Hash   string `json:"hash"`
			Status string `json:"status"`
		} `json:"last_block"`
	}
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*1e-9 }
	if want := 1200.0 * (1 << 32) / 600; !near(s.Hashrate["10m"], want) {
		t.Errorf("10m hashrate %v, want %v", s.Hashrate["10m"], want)
	}
	if want := 1200.0 * (1 << 32) / 3600; !near(s.Hashrate["1h"], want) {
		t.Errorf("1h hashrate %v, want %v", s.Hashrate["1h"], want)
	}
	// The pool began two hours ago: the 24 h figure covers those two
	// hours, less one share's worth of the sum (the clock starts when the
	// first was found).
	if want := 2200.0 * 600 / 601 * (1 << 32) / 7200; math.Abs(s.Hashrate["24h"]-want) > want*0.01 {
		t.Errorf("24h hashrate %v, want %v", s.Hashrate["24h"], want)
	}
	if s.SharesPerSecond != 1 {
		t.Errorf("shares/s %v, want 1 (600 in 10 minutes)", s.SharesPerSecond)
	}
	if s.LastBlock == nil || s.LastBlock.Height != 101 || s.LastBlock.Status != "pending" {
		t.Errorf("last block %+v", s.LastBlock)
	}
}

func TestBlocksPagingAndBadInput(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	for h := int64(1); h <= 3; h++ {
		err := env.led.RecordBlock(ctx, record.Block{Time: base.Add(time.Duration(h) * time.Minute), Height: h,
			Hash: strings.Repeat("0", 63) + string(rune('0'+h)), Reward: 5000000000, Address: addrA, Worker: "w",
			Accepted: h != 2, Verdict: map[bool]string{true: "accepted", false: "bad-txnmrklroot"}[h != 2]})
		if err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Blocks []struct {
			Height   int64  `json:"height"`
			Reward   int64  `json:"reward_sat"`
			Accepted bool   `json:"accepted"`
			Status   string `json:"status"`
			Verdict  string `json:"verdict"`
		} `json:"blocks"`
		HasMore bool `json:"has_more"`
	}
	var p page
	get(t, env.srv.URL+"/api/v1/blocks?limit=2", 200, &p)
	if len(p.Blocks) != 2 || p.Blocks[0].Height != 3 || p.Blocks[0].Reward != 5000000000 || !p.HasMore ||
		p.Blocks[1].Accepted || p.Blocks[1].Status != "rejected" || p.Blocks[1].Verdict != "bad-txnmrklroot" {
		t.Fatalf("first page: %+v", p)
	}
	p = page{}
	get(t, env.srv.URL+"/api/v1/blocks?limit=2&offset=2", 200, &p)
	if len(p.Blocks) != 1 || p.Blocks[0].Height != 1 || p.HasMore {
		t.Fatalf("second page: %+v", p)
	}
	for _, q := range []string{"limit=0", "limit=100000", "limit=abc", "offset=-1", "limit=1e3", "offset=99999999999999999999"} {
		var e map[string]string
		get(t, env.srv.URL+"/api/v1/blocks?"+q, 400, &e)
		if e["error"] == "" {
			t.Fatalf("%s: 400 without an error message", q)
		}
	}
	get(t, env.srv.URL+"/api/v1/nope", 404, &map[string]string{})

	// A block the node gave no clear answer for shows as unknown.
	if err := env.led.RecordBlock(ctx, record.Block{Time: base.Add(10 * time.Minute), Height: 4, Hash: strings.Repeat("0", 63) + "4",
		Reward: 5000000000, Address: addrA, Unknown: true, Verdict: "inconclusive"}); err != nil {
		t.Fatal(err)
	}
	p = page{}
	get(t, env.srv.URL+"/api/v1/blocks?limit=1", 200, &p)
	if len(p.Blocks) != 1 || p.Blocks[0].Height != 4 || p.Blocks[0].Accepted || p.Blocks[0].Status != "unknown" ||
		p.Blocks[0].Verdict != "inconclusive" {
		t.Fatalf("unknown block: %+v", p)
	}
	if b := blockFromPool(record.Block{Unknown: true, Verdict: "inconclusive"}); b.Status != "unknown" {
		t.Errorf("live feed status of an unknown block: %q", b.Status)
	}
}

func TestMinerPage(t *testing.T) {
	env := newTestEnv(t)
	now := time.Now()
	var shares []record.Share
	for i := range 30 {
		shares = append(shares,
			record.Share{Time: now.Add(-time.Duration(i) * 10 * time.Second), Address: addrA, Worker: "rig1", JobID: "j", Difficulty: 4, Height: 1},
			record.Share{Time: now.Add(-time.Duration(i) * 10 * time.Second), Address: addrB, Worker: "other", JobID: "j", Difficulty: 1, Height: 1})
	}
	shares = append(shares, record.Share{Time: now.Add(-3 * time.Hour), Address: addrA, Worker: "old", JobID: "j", Difficulty: 1, Height: 1})
	writeShares(t, env.led, shares)
	// rig1 is connected; "fresh" has connected but its shares have not
	// reached the ledger yet.
	env.pool.online = []pool.OnlineWorker{
		{Address: addrA, Worker: "rig1", Connections: 1, Difficulty: 4},
		{Address: addrA, Worker: "fresh", Connections: 2, Difficulty: 0.5},
		{Address: addrB, Worker: "other", Connections: 1, Difficulty: 1},
	}
	// Money: an account and one confirmed payment batch to addrA.
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO accounts (address, immature, mature, paid) VALUES ('` + addrA + `', 100, 200, 300)`,
		`INSERT INTO payments (batch_id, state, txid, total, items, created_at) VALUES
			('018f0000-0000-7000-8000-000000000001', 'confirmed', '` + strings.Repeat("ee", 32) + `', 300, 1, now())`,
		`INSERT INTO payment_items (payment_id, address, amount) SELECT id, '` + addrA + `', 300 FROM payments`,
	} {
		if _, err := env.led.Pool().Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	var m struct {
		Address       string  `json:"address"`
		Hashrate      float64 `json:"hashrate"`
		WorkersOnline int     `json:"workers_online"`
		BucketSeconds int64   `json:"bucket_seconds"`
		SeriesTime    []int64 `json:"series_time"`
		Workers       []struct {
			Name        string     `json:"name"`
			Online      bool       `json:"online"`
			Connections int        `json:"connections"`
			Difficulty  float64    `json:"difficulty"`
			Hashrate    float64    `json:"hashrate"`
			Shares      int64      `json:"shares_10m"`
			FirstSeen   *time.Time `json:"first_seen"`
			Series      []float64  `json:"hashrate_series"`
		} `json:"workers"`
		Balance *struct {
			Immature int64 `json:"immature_sat"`
			Mature   int64 `json:"mature_sat"`
			Paid     int64 `json:"paid_sat"`
		} `json:"balance"`
		Payments []struct {
			State  string `json:"state"`
			TxID   string `json:"txid"`
			Amount int64  `json:"amount_sat"`
		} `json:"payments"`
	}
	get(t, env.srv.URL+"/api/v1/miners/"+addrA+"?window=1h", 200, &m)
	if m.Address != addrA || m.BucketSeconds != 120 || len(m.SeriesTime) != 30 || m.WorkersOnline != 2 {
		t.Fatalf("miner: %+v", m)
	}
	if len(m.Workers) != 3 || m.Workers[0].Name != "fresh" || m.Workers[1].Name != "old" || m.Workers[2].Name != "rig1" {
		t.Fatalf("workers %+v: want fresh, old, rig1 (and not addrB's)", m.Workers)
	}
	fresh, old, rig1 := m.Workers[0], m.Workers[1], m.Workers[2]
	if !fresh.Online || fresh.Connections != 2 || fresh.FirstSeen != nil || fresh.Hashrate != 0 || len(fresh.Series) != 30 {
		t.Errorf("fresh: %+v", fresh)
	}
	if old.Online || old.FirstSeen == nil || old.Hashrate != 0 {
		t.Errorf("old: %+v", old)
	}
	if want := 120.0 * (1 << 32) / 600; !rig1.Online || rig1.Difficulty != 4 || rig1.Shares != 30 || math.Abs(rig1.Hashrate-want) > want*1e-9 {
		t.Errorf("rig1: %+v, want hashrate %v", rig1, want)
	}
	if m.Hashrate != rig1.Hashrate {
		t.Errorf("miner hashrate %v, want the sum of its workers' %v", m.Hashrate, rig1.Hashrate)
	}
	// The shares span 5 minutes; those in the current, partial 2-minute
	// bucket (at most 13 of the 30) are not in the series yet. The rest
	// come back as the difficulty they carry.
	var sum float64
	for _, h := range rig1.Series {
		sum += h * 120 / (1 << 32)
	}
	if math.Abs(sum-math.Round(sum)) > 1e-6 || sum < 4*17 || sum > 4*30 {
		t.Errorf("rig1 series carries difficulty %v, want a whole number in 68..120: %v", sum, rig1.Series)
	}
	if m.Balance == nil || m.Balance.Immature != 100 || m.Balance.Mature != 200 || m.Balance.Paid != 300 {
		t.Errorf("balance %+v", m.Balance)
	}
	if len(m.Payments) != 1 || m.Payments[0].State != "confirmed" || m.Payments[0].Amount != 300 || len(m.Payments[0].TxID) != 64 {
		t.Errorf("payments %+v", m.Payments)
	}

	// A valid address the pool never saw: an empty page, not an error.
	const unseen = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
	var empty map[string]any
	get(t, env.srv.URL+"/api/v1/miners/"+unseen, 200, &empty)
	if ws := empty["workers"].([]any); len(ws) != 0 || len(empty["series_time"].([]any)) != 144 || empty["payments"] == nil {
		t.Errorf("unseen address: %v", empty)
	}

	for _, bad := range []string{mainnetAddr, "notanaddress", addrA + ".rig1", strings.Repeat("q", 200), "bcrt1q%27%3B--", addrA + "%00"} {
		var e map[string]string
		get(t, env.srv.URL+"/api/v1/miners/"+bad, 400, &e)
		if !strings.Contains(e["error"], "regtest address") {
			t.Errorf("%s: error %q", bad, e["error"])
		}
	}
	get(t, env.srv.URL+"/api/v1/miners/"+addrA+"?window=2d", 400, &map[string]string{})
}

func TestPaymentsPaged(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	for i, st := range []string{"confirmed", "failed", "sent"} {
		txid := "'" + strings.Repeat(string(rune('a'+i)), 64) + "'"
		if st == "failed" {
			txid = "NULL"
		}
		_, err := env.led.Pool().Exec(ctx, `INSERT INTO payments (batch_id, state, txid, total, fee, items, reason, created_at)
			VALUES ($1, $2, `+txid+`, $3, 150, 2, $4, now() - $5::interval)`,
			"018f0000-0000-7000-8000-00000000000"+string(rune('1'+i)), st, int64(1000*(i+1)),
			map[bool]string{true: "insufficient funds"}[st == "failed"], time.Duration(3-i)*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Payments []struct {
			State  string     `json:"state"`
			Total  int64      `json:"total_sat"`
			Fee    int64      `json:"fee_sat"`
			Items  int        `json:"items"`
			Reason string     `json:"reason"`
			SentAt *time.Time `json:"sent_at"`
		} `json:"payments"`
		HasMore bool `json:"has_more"`
	}
	var p page
	get(t, env.srv.URL+"/api/v1/payments?limit=2", 200, &p)
	if len(p.Payments) != 2 || !p.HasMore || p.Payments[0].State != "sent" || p.Payments[0].Total != 3000 ||
		p.Payments[1].State != "failed" || p.Payments[1].Reason != "insufficient funds" || p.Payments[0].Fee != 150 || p.Payments[0].Items != 2 {
		t.Fatalf("first page %+v", p)
	}
	p = page{}
	get(t, env.srv.URL+"/api/v1/payments?limit=2&offset=2", 200, &p)
	if len(p.Payments) != 1 || p.HasMore || p.Payments[0].State != "confirmed" {
		t.Fatalf("second page %+v", p)
	}
	get(t, env.srv.URL+"/api/v1/payments?limit=201", 400, &map[string]string{})
}

func TestPoolHashrateSeries(t *testing.T) {
	env := newTestEnv(t)
	var s struct {
		Window        string    `json:"window"`
		BucketSeconds int64     `json:"bucket_seconds"`
		Time          []int64   `json:"time"`
		Hashrate      []float64 `json:"hashrate"`
	}
	get(t, env.srv.URL+"/api/v1/hashrate?window=6h", 200, &s)
	if s.Window != "6h" || s.BucketSeconds != 300 || len(s.Time) != 72 || len(s.Hashrate) != 72 || s.Time[71]-s.Time[0] != 71*300 {
		t.Fatalf("series %+v", s)
	}
	if s.Time[71] > time.Now().Unix() || s.Time[71] < time.Now().Unix()-300 {
		t.Fatalf("last bucket ends at %d, want the last complete bucket before now", s.Time[71])
	}
	get(t, env.srv.URL+"/api/v1/hashrate?window=forever", 400, &map[string]string{})
}

func TestStaticPages(t *testing.T) {
	env := newTestEnv(t)
	for path, want := range map[string]string{
		"/":                           "text/html",
		"/blocks":                     "text/html",
		"/payments":                   "text/html",
		"/miner/" + addrA:             "text/html",
		"/app.js":                     "text/javascript",
		"/vendor/uplot/uPlot.min.css": "text/css",
	} {
		resp, err := http.Get(env.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	// Every page is its own content in the one layout: navigation,
	// scripts, its title and the name app.js dispatches on.
	for path, want := range map[string][]string{
		"/":               {`data-page="overview"`, `<title>hashforge pool</title>`, `id="stratum-url"`},
		"/blocks":         {`data-page="blocks"`, `<title>Blocks · hashforge pool</title>`, `id="blocks"`},
		"/payments":       {`data-page="payments"`, `<title>Payments · hashforge pool</title>`},
		"/miner/" + addrA: {`data-page="miner"`, `<title>Miner · hashforge pool</title>`},
	} {
		_, body := getBody(t, env.srv.URL+path)
		for _, w := range append(want, `<nav>`, `href="/payments"`, `<script src="/app.js"></script>`, `</html>`) {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: page lacks %s", path, w)
			}
		}
	}
	for _, path := range []string{"/index.html", "/blocks.html", "/layout.html", "/vendor/", "/nope.js", "/miner/", "/miner/a/b"} {
		resp, err := http.Get(env.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
