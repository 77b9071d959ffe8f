package web

import (
	"context"
	"github.com/chromedp/chromedp"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/pool"
)

// TestStatsShowWholePool: with two pool nodes on one database, either
// node's stats add the other's heartbeat figures to its own live ones and
// list both.
func TestStatsShowWholePool(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) { c.NodeID = 2 }, nil)
	env.web.cfg.Nodes = env.led
	env.pool.mu.Lock()
	env.pool.online = []pool.OnlineWorker{{Address: "a1", Worker: "w"}, {Address: "a2", Worker: "w"}}
	env.pool.mu.Unlock()
	ctx := context.Background()
	if err := env.led.ClaimNode(ctx, 1, "other:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := env.led.HeartbeatNode(ctx, 1, "other:1", pool.NodeStats{Sessions: 5, WorkersOnline: 4, MinersOnline: 3, BlocksFound: 1}); err != nil {
		t.Fatal(err)
	}
	// This node's own row holds stale figures: the answer uses live ones.
	if err := env.led.ClaimNode(ctx, 2, "this:2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := env.led.HeartbeatNode(ctx, 2, "this:2", pool.NodeStats{Sessions: 999}); err != nil {
		t.Fatal(err)
	}
	var s statsResponse
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	if s.NodeID != 2 || len(s.Nodes) != 2 || s.Nodes[0].NodeID != 1 || s.Nodes[0].This || !s.Nodes[1].This {
		t.Fatalf("nodes %+v", s.Nodes)
	}
	if s.Nodes[1].Sessions != 3 || s.Nodes[0].Sessions != 5 {
		t.Fatalf("per node sessions %d, %d", s.Nodes[0].Sessions, s.Nodes[1].Sessions)
	}
	if s.Sessions != 3+5 || s.WorkersOnline != 2+4 || s.MinersOnline != 2+3 || s.BlocksFound != 1 {
		t.Fatalf("pool-wide: %d sessions, %d workers, %d miners, %d blocks", s.Sessions, s.WorkersOnline, s.MinersOnline, s.BlocksFound)
	}
	// /metrics too, per node.
	body := scrape(t, env)
	for _, want := range []string{`hashforge_pool_nodes 2`, `hashforge_pool_sessions{node="1"} 5`, `hashforge_pool_sessions{node="2"} 3`,
		`hashforge_pool_miners_online{node="2"} 2`, `hashforge_pool_workers_online{node="1"} 4`, `hashforge_pool_node_heartbeat_age_seconds{node="2"} 0`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDashboardShowsPoolNodes: in a real browser, the dashboard of one of
// two pool nodes shows the whole pool's workers and a row per node.
func TestDashboardShowsPoolNodes(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) { c.NodeID = 2 }, nil)
	env.web.cfg.Nodes = env.led
	ctx := context.Background()
	if err := env.led.ClaimNode(ctx, 1, "other:1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := env.led.HeartbeatNode(ctx, 1, "other:1", pool.NodeStats{Sessions: 5, WorkersOnline: 4, MinersOnline: 3}); err != nil {
		t.Fatal(err)
	}
	addr := serveReal(t, env)
	bctx := startChromium(t)
	c, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatal(err)
	}
	waitIn(t, bctx, "the pool nodes", `!document.getElementById("nodes-section").hidden && document.querySelectorAll("#nodes tr").length === 2`)
	waitIn(t, bctx, "the pool's workers", `document.getElementById("workers").textContent === "6"`)
	if got := evalIn[string](t, bctx, `document.querySelector("#nodes tr.this td").textContent`); got != "2 (this one)" {
		t.Fatalf("this node's row starts %q", got)
	}
}
