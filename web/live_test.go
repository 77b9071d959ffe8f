package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hashforge/hashforge/pool"
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
	block := pool.Block{Time: now, Height: 102, Hash: strings.Repeat("cd", 32), Reward: 5_000_000_000, Address: addrA, Worker: "rig1", Accepted: true, Verdict: "accepted"}
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
		`hashforge_blocks_submitted_total{verdict="error"} 0`,
		`hashforge_job_fanout_seconds_count 1`,
		`hashforge_ws_clients 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestLiveFeedStatsTick(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a stats tick")
	}
	env := newTestEnv(t)
	c := dialFeed(t, env, "")
	c.SetReadDeadline(time.Now().Add(statsEvery + 10*time.Second))
	var m struct {
		Type string        `json:"type"`
		Data statsResponse `json:"data"`
	}
	if err := c.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "stats" || m.Data.NetworkHeight != 101 || m.Data.StratumURL != "stratum+tcp://pool.example:3333" || m.Data.Hashrate["24h"] != 0 {
		t.Fatalf("stats tick %+v", m)
	}
}

// A client that stops reading is dropped once its queue is full, and the
// events keep flowing: the hub never waits for it.
func TestLiveFeedDropsSlowClient(t *testing.T) {
	env := newTestEnv(t)
	dialFeed(t, env, "") // never read
	block := pool.Block{Time: time.Now(), Height: 1, Hash: strings.Repeat("ef", 32), Address: addrA,
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
		`hashforge_job_height 101`,
		`hashforge_ledger_batches_total{outcome="flushed"} 4`,
		`hashforge_ledger_shares_written_total 4000`,
		`hashforge_ledger_queue_length 7`,
		`hashforge_ledger_last_flush_seconds 0.015`,
		`hashforge_database_errors_total{source="ledger_writer"} 2`,
		`hashforge_database_errors_total{source="web"} 0`,
		`hashforge_payout_batches{state="sent"} 1`,
		`hashforge_payout_batches{state="failed"} 0`,
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
