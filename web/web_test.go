package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

type fixedPool pool.Stats

func (f fixedPool) Stats() pool.Stats { return pool.Stats(f) }

func newTestServer(t *testing.T) (*httptest.Server, *ledger.Ledger) {
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
	h := New(Config{Pool: fixedPool{Sessions: 3, AuthorizedWorkers: 2, Accepted: 10, JobHeight: 101}, Ledger: led, StratumURL: "stratum+tcp://pool.example:3333"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, led
}

func get(t *testing.T, url string, wantStatus int, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d", url, resp.StatusCode, wantStatus)
	}
	if ct := resp.Header.Get("Content-Type"); out != nil && !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: content type %q", url, ct)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
}

func TestStatsOnEmptyLedger(t *testing.T) {
	srv, _ := newTestServer(t)
	var s map[string]any
	get(t, srv.URL+"/api/v1/stats", 200, &s)
	if s["stratum_url"] != "stratum+tcp://pool.example:3333" || s["workers_online"] != float64(2) || s["network_height"] != float64(101) {
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

func TestBlocksPagingAndBadInput(t *testing.T) {
	srv, led := newTestServer(t)
	ctx := context.Background()
	for h := int64(1); h <= 3; h++ {
		err := led.RecordBlock(ctx, pool.Block{Time: time.Now(), Height: h, Hash: strings.Repeat("0", 63) + string(rune('0'+h)),
			Reward: 5000000000, Address: "bcrt1qexample", Worker: "w", Accepted: true, Verdict: "accepted"})
		if err != nil {
			t.Fatal(err)
		}
	}
	var page struct {
		Blocks []struct {
			Height int64 `json:"height"`
			Reward int64 `json:"reward_sat"`
		} `json:"blocks"`
	}
	get(t, srv.URL+"/api/v1/blocks?limit=2", 200, &page)
	if len(page.Blocks) != 2 || page.Blocks[0].Height != 3 || page.Blocks[0].Reward != 5000000000 {
		t.Fatalf("first page: %+v", page.Blocks)
	}
	get(t, srv.URL+"/api/v1/blocks?limit=2&offset=2", 200, &page)
	if len(page.Blocks) != 1 || page.Blocks[0].Height != 1 {
		t.Fatalf("second page: %+v", page.Blocks)
	}
	for _, q := range []string{"limit=0", "limit=100000", "limit=abc", "offset=-1", "limit=1e3"} {
		var e map[string]string
		get(t, srv.URL+"/api/v1/blocks?"+q, 400, &e)
		if e["error"] == "" {
			t.Fatalf("%s: 400 without an error message", q)
		}
	}
	get(t, srv.URL+"/api/v1/nope", 404, &map[string]string{})
}

func TestDashboardServed(t *testing.T) {
	srv, _ := newTestServer(t)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
