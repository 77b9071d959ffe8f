package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/record"
)

func dialFeed(t *testing.T, env *testEnv, query string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(env.srv.URL, "http") + "/api/v1/ws" + query
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	// The hub registers the client after the upgrade returns; wait, so an
	// event sent next is not missed.
	waitUntil(t, "client registered", func() bool { return env.web.hub.count() > 0 })
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type feedMsg struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func readMsg(t *testing.T, c *websocket.Conn) feedMsg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m feedMsg
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("read feed: %v", err)
	}
	return m
}

// readType skips stats ticks, which may arrive at any moment.
func readType(t *testing.T, c *websocket.Conn) feedMsg {
	t.Helper()
	for {
		if m := readMsg(t, c); m.Type != "stats" {
			return m
		}
	}
}

func TestLiveFeedRelaysEvents(t *testing.T) {
	env := newTestEnv(t)
	mine := dialFeed(t, env, "?address="+addrA)
	waitUntil(t, "one client", func() bool { return env.web.hub.count() == 1 })
	other := dialFeed(t, env, "")
	waitUntil(t, "two clients", func() bool { return env.web.hub.count() == 2 })

	now := time.Now()
	env.events <- pool.Event{Kind: pool.EventWorkerUp, Time: now, Worker: &pool.WorkerEvent{Address: addrA, Worker: "rig1", Remote: "192.0.2.7:4000"}}
	env.events <- pool.Event{Kind: pool.EventWorkerUp, Time: now, Worker: &pool.WorkerEvent{Address: addrB, Worker: "x", Remote: "192.0.2.8:4000"}}
	env.events <- pool.Event{Kind: pool.EventJob, Time: now, Job: &pool.JobEvent{ID: "ab01", Height: 102, Clean: true, Transactions: 3, Sessions: 2, FanOut: 1500 * time.Microsecond}}
	block := record.Block{Time: now, Height: 102, Hash: strings.Repeat("cd", 32), Reward: 5_000_000_000, Address: addrA, Worker: "rig1", Accepted: true, Verdict: "accepted"}
	env.events <- pool.Event{Kind: pool.EventBlock, Time: now, Block: &block}

	// The address client sees its own worker event (and no one else's),
	// then the job and the block.
	m := readType(t, mine)
	var we map[string]any
	json.Unmarshal(m.Data, &we)
	if m.Type != "worker" || we["event"] != "up" || we["address"] != addrA || we["worker"] != "rig1" {
		t.Fatalf("first message %s %s", m.Type, m.Data)
	}
	if strings.Contains(string(m.Data), "192.0.2.7") {
		t.Fatalf("worker event leaks the miner's IP address: %s", m.Data)
	}
	if m := readType(t, mine); m.Type != "job" || !strings.Contains(string(m.Data), `"fanout_ms":1.5`) || !strings.Contains(string(m.Data), `"height":102`) {
		t.Fatalf("second message %s %s", m.Type, m.Data)
	}
	m = readType(t, mine)
	var b blockJSON
	if err := json.Unmarshal(m.Data, &b); err != nil || m.Type != "block" || b.Hash != block.Hash || b.Status != "pending" || b.Reward != 5_000_000_000 {
		t.Fatalf("third message %s %s", m.Type, m.Data)
	}
	// The overview client gets no worker events at all.
	if m := readType(t, other); m.Type != "job" {
		t.Fatalf("overview client's first message %s %s, want the job", m.Type, m.Data)
	}

	// Event-fed metrics moved.
	metrics := scrape(t, env)
	for _, want := range []string{
		`hashforge_blocks_submitted_total{verdict="accepted"} 1`,
		`hashforge_blocks_submitted_total{verdict="unknown"} 0`,
		`hashforge_job_fanout_seconds_count 1`,
		`hashforge_ws_clients 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestLiveFeedStatsTick(t *testing.T) {
	env := newTestEnvWith(t, nil, func(s *Server) { s.hub.timing.statsEvery = 100 * time.Millisecond })
	c := dialFeed(t, env, "")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m struct {
		Type string        `json:"type"`
		Data statsResponse `json:"data"`
	}
	if err := c.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "stats" || m.Data.NetworkHeight != 100 || m.Data.StratumURL != "stratum+tcp://pool.example:3333" || m.Data.Hashrate["24h"] != 0 {
		t.Fatalf("stats tick %+v", m)
	}
}

// A client that never reads is dropped without holding up anyone else:
// the event after its drop reaches a healthy client as soon as the ones
// before it. The slow client's writes and close frame are given an hour,
// so a hub that waited for either would stall the feed for that long.
func TestLiveFeedSlowClientDoesNotDelayOthers(t *testing.T) {
	env := newTestEnvWith(t, nil, func(s *Server) {
		s.hub.timing.writeWait = time.Hour
		s.hub.timing.closeWait = time.Hour
	})
	healthy := dialFeed(t, env, "")
	waitUntil(t, "one client", func() bool { return env.web.hub.count() == 1 })
	dialFeed(t, env, "") // never read
	waitUntil(t, "two clients", func() bool { return env.web.hub.count() == 2 })

	// Big messages fill the slow client's socket buffers sooner.
	verdict := strings.Repeat("x", 16<<10)
	send := func(i int) string {
		t.Helper()
		hash := fmt.Sprintf("%064x", i)
		b := record.Block{Time: time.Now(), Height: int64(i), Hash: hash, Address: addrA, Verdict: verdict}
		select {
		case env.events <- pool.Event{Kind: pool.EventBlock, Time: b.Time, Block: &b}:
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d: the hub stopped taking events: it is waiting on a client", i)
		}
		return hash
	}
	// In lockstep with the healthy client, so that it never has more
	// than one message queued and only the slow one falls behind.
	receive := func(want string) {
		t.Helper()
		m := readType(t, healthy)
		var b blockJSON
		if err := json.Unmarshal(m.Data, &b); err != nil || m.Type != "block" || b.Hash != want {
			t.Fatalf("healthy client got %s %.80s, want block %s", m.Type, m.Data, want)
		}
	}
	i := 0
	for ; env.web.hub.count() == 2; i++ {
		if i > 100_000 {
			t.Fatal("the slow client was never dropped")
		}
		receive(send(i))
	}
	// The slow client is out of the map; its close frame is still
	// waiting (for an hour) on its own goroutine. The feed goes on.
	for j := range 3 {
		receive(send(i + j))
	}
	t.Logf("slow client dropped after %d events", i)
	if m := scrape(t, env); !strings.Contains(m, "hashforge_ws_dropped_total 1") {
		t.Errorf("dropped counter not 1:\n%s", grepLines(m, "hashforge_ws"))
	}
}

// A client that reads but answers no ping is dropped after pongWait; one
// that answers stays.
func TestLiveFeedDropsClientWithoutPongs(t *testing.T) {
	const pingPeriod, pongWait = 20 * time.Millisecond, 300 * time.Millisecond
	env := newTestEnvWith(t, nil, func(s *Server) {
		s.hub.timing.pingPeriod = pingPeriod
		s.hub.timing.pongWait = pongWait
	})
	deaf := dialFeed(t, env, "")
	waitUntil(t, "one client", func() bool { return env.web.hub.count() == 1 })
	polite := dialFeed(t, env, "")
	waitUntil(t, "two clients", func() bool { return env.web.hub.count() == 2 })

	// Ping handlers run inside reads, so both clients keep reading.
	var deafPings, politePings atomic.Int64
	deaf.SetPingHandler(func(string) error { deafPings.Add(1); return nil })
	polite.SetPingHandler(func(data string) error {
		politePings.Add(1)
		return polite.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	readAll := func(c *websocket.Conn) <-chan error {
		done := make(chan error, 1)
		go func() {
			for {
				c.SetReadDeadline(time.Now().Add(time.Minute))
				if _, _, err := c.ReadMessage(); err != nil {
					done <- err
					return
				}
			}
		}()
		return done
	}
	deafDone, politeDone := readAll(deaf), readAll(polite)

	select {
	case err := <-deafDone:
		t.Logf("deaf client cut off after %d pings: %v", deafPings.Load(), err)
	case err := <-politeDone:
		t.Fatalf("the client answering pings was dropped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the client answering no pings was never dropped")
	}
	if deafPings.Load() == 0 {
		t.Fatal("the deaf client was dropped before any ping: not for want of pongs")
	}
	waitUntil(t, "the deaf client out of the hub", func() bool { return env.web.hub.count() == 1 })
	// The polite one lives on for many more pings than a pongWait holds.
	seen := politePings.Load()
	waitUntil(t, "pings to the polite client", func() bool {
		select {
		case err := <-politeDone:
			t.Fatalf("the client answering pings was dropped: %v", err)
		default:
		}
		return politePings.Load() >= seen+3*int64(pongWait/pingPeriod)
	})
	if n := env.web.hub.count(); n != 1 {
		t.Fatalf("%d clients, want the polite one", n)
	}
}

// A client that stops reading is dropped once its queue is full, and the
// events keep flowing: the hub never waits for it.
func TestLiveFeedDropsSlowClient(t *testing.T) {
	env := newTestEnv(t)
	dialFeed(t, env, "") // never read
	block := record.Block{Time: time.Now(), Height: 1, Hash: strings.Repeat("ef", 32), Address: addrA,
		Verdict: strings.Repeat("x", 2000)} // big messages fill the socket buffers sooner
	start := time.Now()
	const sent = 20000
	for range sent {
		select {
		case env.events <- pool.Event{Kind: pool.EventBlock, Time: block.Time, Block: &block}:
		case <-time.After(5 * time.Second):
			t.Fatal("the hub stopped taking events: it is waiting on a client")
		}
	}
	waitUntil(t, "slow client dropped", func() bool { return env.web.hub.count() == 0 })
	t.Logf("%d events relayed in %v", sent, time.Since(start))
	if m := scrape(t, env); !strings.Contains(m, "hashforge_ws_dropped_total 1") {
		t.Errorf("dropped counter not 1:\n%s", grepLines(m, "hashforge_ws"))
	}
}

func TestLiveFeedRefusesBadInput(t *testing.T) {
	env := newTestEnv(t)
	for _, q := range []string{"?address=" + mainnetAddr, "?address=garbage", "?workers=some"} {
		url := "ws" + strings.TrimPrefix(env.srv.URL, "http") + "/api/v1/ws" + q
		_, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: err %v, response %v; want 400", q, err, resp)
		}
	}
	// Another site's page cannot open the feed with a visitor's browser.
	hdr := http.Header{"Origin": {"https://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(env.srv.URL, "http")+"/api/v1/ws", hdr)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin upgrade: err %v, response %v; want 403", err, resp)
	}
}

func scrape(t *testing.T, env *testEnv) string {
	t.Helper()
	resp, err := http.Get(env.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricsFromSnapshots(t *testing.T) {
	env := newTestEnv(t)
	if _, err := env.led.Pool().Exec(t.Context(), `INSERT INTO payments (batch_id, state, txid, total, items)
		VALUES ('018f0000-0000-7000-8000-0000000000aa', 'sent', 'ff', 10, 1)`); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, env)
	for _, want := range []string{
		`hashforge_shares_total{reason="",result="accepted"} 10`,
		`hashforge_shares_total{reason="low difficulty share",result="rejected"} 3`,
		`hashforge_shares_total{reason="stale job",result="rejected"} 1`,
		`hashforge_sessions 3`,
		`hashforge_workers 2`,
		`hashforge_notify_fanout_seconds_bucket{le="0.01"} 3`,
		`hashforge_notify_fanout_seconds_count 4`,
		`hashforge_job_height 101`,
		`hashforge_ledger_batches_total{outcome="flushed"} 4`,
		`hashforge_ledger_shares_written_total 4000`,
		`hashforge_ledger_queue_length 7`,
		`hashforge_ledger_last_flush_seconds 0.015`,
		`hashforge_database_errors_total{source="ledger_writer"} 2`,
		`hashforge_database_errors_total{source="web"} 0`,
		`hashforge_payout_batches{state="sent"} 1`,
		`hashforge_payout_batches{state="failed"} 0`,
		`hashforge_payout_batches{state="dropped"} 0`,
		`hashforge_payout_errors_total{kind="` + payout.ErrKindNode + `"} 2`,
		`hashforge_payout_blocks_total{event="credited"} 5`,
		`hashforge_payout_blocks_total{event="orphaned"} 1`,
		`hashforge_payout_blocks_total{event="found_in_chain"} 0`,
		`hashforge_payout_runs_failed_total 2`,
		`hashforge_payout_last_run_timestamp_seconds{outcome="any"} 1.8e+09`,
		`hashforge_blocks_submitted_total{verdict="rejected"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(m, "hashforge_"))
	}
}

func TestRejectReasonLabelsAreBounded(t *testing.T) {
	env := newTestEnv(t)
	rej := map[string]uint64{}
	for i := range 100 {
		rej[strings.Repeat("r", i+1)] = 1
	}
	env.pool.mu.Lock()
	env.pool.stats.Rejected = rej
	env.pool.mu.Unlock()
	m := scrape(t, env)
	if n := strings.Count(m, `result="rejected"}`); n != maxReasonLabels {
		t.Fatalf("%d rejected series, want %d", n, maxReasonLabels)
	}
	if !strings.Contains(m, `hashforge_shares_total{reason="other",result="rejected"} 69`) {
		t.Fatalf("the reasons past the cap are not summed as other:\n%s", grepLines(m, "hashforge_shares_total"))
	}
}

// The share batcher's flush hook feeds the batch histograms.
func TestLedgerBatchHistograms(t *testing.T) {
	env := newTestEnv(t)
	b := ledger.NewBatcher(env.led, ledger.BatcherOptions{OnFlush: env.web.ObserveFlush})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	now := time.Now()
	for i := range 5 {
		b.AddShare(record.Share{Time: now.Add(-time.Duration(i) * time.Second), Address: addrA, Worker: "rig", JobID: "j", Difficulty: 1, Height: 1}, nil)
	}
	waitUntil(t, "shares written", func() bool { return b.Stats().SharesWritten == 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	env.web.ObserveFlush(7, 3*time.Second, errors.New("connection refused"))
	var nilServer *Server
	nilServer.ObserveFlush(1, time.Millisecond, nil) // no dashboard: no-op

	m := scrape(t, env)
	flushed := b.Stats().BatchesFlushed
	for _, want := range []string{
		`hashforge_ledger_batch_size_sum 5`,
		fmt.Sprintf(`hashforge_ledger_batch_size_count %d`, flushed),
		fmt.Sprintf(`hashforge_ledger_flush_seconds_count{outcome="ok"} %d`, flushed),
		`hashforge_ledger_flush_seconds_count{outcome="error"} 1`,
		`hashforge_ledger_flush_seconds_bucket{outcome="error",le="2.048"} 0`,
		`hashforge_ledger_flush_seconds_bucket{outcome="error",le="4.096"} 1`,
		// The snapshot metrics are still there.
		`hashforge_ledger_last_flush_seconds `,
		`hashforge_ledger_batches_total{outcome="flushed"} `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(m, "hashforge_ledger"))
	}
}
