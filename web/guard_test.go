package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/stratum"
)

// testGuard is serve's guard in small: a real Gate and a real ban table.
type testGuard struct {
	gate   *stratum.Gate
	bans   *ban.Table
	issued atomic.Uint64
}

func newTestGuard() *testGuard {
	g := &testGuard{gate: stratum.NewGate(stratum.GateLimits{MaxSessions: 100, MaxSessionsPerIP: 10}), bans: ban.New(ban.Config{})}
	g.bans.OnBan = func(ban.Ban) { g.issued.Add(1) }
	return g
}

func (g *testGuard) GateStats() stratum.GateStats { return g.gate.Stats() }
func (g *testGuard) BanConfig() ban.Config        { return g.bans.Config() }
func (g *testGuard) Bans(now time.Time) []ban.Ban { return g.bans.List(now) }
func (g *testGuard) BansIssued() uint64           { return g.issued.Load() }
func (g *testGuard) LiftBan(k netip.Prefix) bool  { return g.bans.Lift(k) }
func (g *testGuard) SessionRates() (int, int)     { return 10000, 100 }

func (g *testGuard) ban(t *testing.T, addr string) {
	t.Helper()
	k, ok := ban.Key(addr)
	if !ok {
		t.Fatal(addr)
	}
	for range ban.Defaults.MaxAuthFailures {
		g.bans.AuthFailure(k, time.Now())
	}
	if _, banned := g.bans.Banned(k, time.Now()); !banned {
		t.Fatalf("%s not banned", addr)
	}
}

func TestGuardExposed(t *testing.T) {
	g := newTestGuard()
	g.ban(t, "127.0.0.2:4000")
	env := newTestEnvWith(t, func(c *Config) { c.Guard = g }, nil)
	body := scrape(t, env)
	for _, want := range []string{
		`hashforge_stratum_max_connections{scope="total"} 100`,
		`hashforge_stratum_max_connections{scope="per_ip"} 10`,
		`hashforge_stratum_connections{state="unauthorized"} 0`,
		`hashforge_stratum_connections_refused_total{reason="banned"} 0`,
		`hashforge_stratum_evicted_total 0`,
		`hashforge_bans_active 1`,
		`hashforge_bans_total 1`,
		`hashforge_ban_limit{limit="min_shares"} 50`,
		`hashforge_ban_limit{limit="duration_seconds"} 600`,
		`hashforge_stratum_session_rate_limit{kind="errors"} 100`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var s struct{ Limits map[string]float64 }
	get(t, env.srv.URL+"/api/v1/stats", 200, &s)
	for k, v := range map[string]float64{"stratum_max_conns": 100, "stratum_max_conns_per_ip": 10, "ban_window_seconds": 60,
		"ban_invalid_ratio": 0.5, "ban_auth_failures": 20, "bans_active": 1, "stratum_max_requests_per_second": 10000} {
		if got, ok := s.Limits[k]; !ok || got != v {
			t.Errorf("stats limits[%s] = %v, want %v", k, got, v)
		}
	}
	// The public API never names a banned address.
	raw := getRaw(t, env.srv.URL+"/api/v1/stats")
	if strings.Contains(raw, "127.0.0.2") {
		t.Error("the public API shows a banned address")
	}
}

func getRaw(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestAdminHandler(t *testing.T) {
	g := newTestGuard()
	g.ban(t, "127.0.0.2:4000")
	g.ban(t, "[2001:db8::1]:4000")
	srv := httptest.NewServer(AdminHandler(g))
	defer srv.Close()

	var list struct {
		Bans []struct{ Addr, Reason string }
	}
	get(t, srv.URL+"/api/v1/bans", 200, &list)
	if len(list.Bans) != 2 || list.Bans[0].Addr != "127.0.0.2" || list.Bans[1].Addr != "2001:db8::/64" ||
		!strings.Contains(list.Bans[0].Reason, "authorization") {
		t.Fatalf("bans %+v", list.Bans)
	}
	del := func(addr string) int {
		req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/v1/bans/"+addr, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		addr string
		want int
	}{
		{"127.0.0.2", 200}, {"127.0.0.2", 404}, {"not-an-ip", 400}, {"10.0.0.0/8", 400},
		{"2001:db8::/64", 200}, {"2001:db8::", 404},
	} {
		if got := del(c.addr); got != c.want {
			t.Errorf("DELETE %s: %d, want %d", c.addr, got, c.want)
		}
	}
	get(t, srv.URL+"/api/v1/bans", 200, &list)
	if len(list.Bans) != 0 {
		t.Fatalf("bans after lifting %+v", list.Bans)
	}
	if resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pprof: %v %v", resp, err)
	}
}
