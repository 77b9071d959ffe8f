package web

import (
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/stratum"
)

// StratumGuard is what keeps the Stratum ports usable under attack: the
// Gate's connection caps and the ban table, as serve wires them.
type StratumGuard interface {
	GateStats() stratum.GateStats
	BanConfig() ban.Config
	Bans(now time.Time) []ban.Ban
	// BansIssued counts bans since start.
	BansIssued() uint64
	LiftBan(k netip.Prefix) bool
	// SessionRates are each session's request and error paces (per
	// second, bursts of twice that).
	SessionRates() (requests, errors int)
}

var (
	descStratumMaxConns = prometheus.NewDesc("hashforge_stratum_max_connections",
		"Configured cap on Stratum sessions (every port), by scope: total (--stratum-max-conns) or per_ip (--stratum-max-conns-per-ip); 0 is no cap.", []string{"scope"}, nil)
	descStratumConns = prometheus.NewDesc("hashforge_stratum_connections",
		"Open Stratum sessions (every port), by state: authorized or unauthorized (these give way first when a cap is reached).", []string{"state"}, nil)
	descStratumIPs = prometheus.NewDesc("hashforge_stratum_client_ips",
		"Client IPv4 addresses and IPv6 /64s with open Stratum sessions.", nil, nil)
	descStratumRefused = prometheus.NewDesc("hashforge_stratum_connections_refused_total",
		"Stratum connections closed at accept: total or per_ip (a cap full of authorized sessions), banned (the address is banned).", []string{"reason"}, nil)
	descStratumEvicted = prometheus.NewDesc("hashforge_stratum_evicted_total",
		"Unauthorized Stratum sessions closed to make room for a new connection.", nil, nil)
	descBansActive = prometheus.NewDesc("hashforge_bans_active",
		"Client addresses (IPv4, IPv6 /64) banned now.", nil, nil)
	descBansIssued = prometheus.NewDesc("hashforge_bans_total",
		"Bans issued since start.", nil, nil)
	descSessionRate = prometheus.NewDesc("hashforge_stratum_session_rate_limit",
		"Configured per-session paces, per second (bursts of twice that): requests (--max-requests-per-second) and errors (--max-errors-per-second).", []string{"kind"}, nil)
	descBanLimit = prometheus.NewDesc("hashforge_ban_limit",
		"Configured ban limits: window_seconds, min_shares, invalid_ratio, min_lines, malformed_ratio, auth_failures, duration_seconds (negative: banning off).", []string{"limit"}, nil)
)

var guardDescs = []*prometheus.Desc{descStratumMaxConns, descStratumConns, descStratumIPs, descStratumRefused,
	descStratumEvicted, descBansActive, descBansIssued, descBanLimit, descSessionRate}

func collectGuard(g StratumGuard, counter, gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	st := g.GateStats()
	gauge(descStratumMaxConns, float64(st.Limits.MaxSessions), "total")
	gauge(descStratumMaxConns, float64(st.Limits.MaxSessionsPerIP), "per_ip")
	gauge(descStratumConns, float64(st.Open-st.Unauthorized), "authorized")
	gauge(descStratumConns, float64(st.Unauthorized), "unauthorized")
	gauge(descStratumIPs, float64(st.IPs))
	counter(descStratumRefused, float64(st.RefusedTotal), "total")
	counter(descStratumRefused, float64(st.RefusedPerIP), "per_ip")
	counter(descStratumRefused, float64(st.RefusedBanned), "banned")
	counter(descStratumEvicted, float64(st.Evicted))
	gauge(descBansActive, float64(len(g.Bans(time.Now()))))
	counter(descBansIssued, float64(g.BansIssued()))
	req, errs := g.SessionRates()
	gauge(descSessionRate, float64(req), "requests")
	gauge(descSessionRate, float64(errs), "errors")
	c := g.BanConfig()
	gauge(descBanLimit, c.Window.Seconds(), "window_seconds")
	gauge(descBanLimit, float64(c.MinShares), "min_shares")
	gauge(descBanLimit, c.MaxInvalidRatio, "invalid_ratio")
	gauge(descBanLimit, float64(c.MinLines), "min_lines")
	gauge(descBanLimit, c.MaxMalformedRatio, "malformed_ratio")
	gauge(descBanLimit, float64(c.MaxAuthFailures), "auth_failures")
	gauge(descBanLimit, c.Duration.Seconds(), "duration_seconds")
}

// guardJSON is the Stratum side of /api/v1/stats' limits.
type guardJSON struct {
	StratumMaxConns      int     `json:"stratum_max_conns"`
	StratumMaxConnsPerIP int     `json:"stratum_max_conns_per_ip"`
	StratumMaxRequests   int     `json:"stratum_max_requests_per_second"`
	StratumMaxErrors     int     `json:"stratum_max_errors_per_second"`
	BanWindow            float64 `json:"ban_window_seconds"`
	BanMinShares         int     `json:"ban_min_shares"`
	BanInvalidRatio      float64 `json:"ban_invalid_ratio"`
	BanMinLines          int     `json:"ban_min_lines"`
	BanMalformedRatio    float64 `json:"ban_malformed_ratio"`
	BanAuthFailures      int     `json:"ban_auth_failures"`
	BanDuration          float64 `json:"ban_duration_seconds"`
	BansActive           int     `json:"bans_active"`
}

func guardLimits(g StratumGuard) *guardJSON {
	if g == nil {
		return nil
	}
	l, c := g.GateStats().Limits, g.BanConfig()
	req, errs := g.SessionRates()
	return &guardJSON{StratumMaxConns: l.MaxSessions, StratumMaxConnsPerIP: l.MaxSessionsPerIP,
		StratumMaxRequests: req, StratumMaxErrors: errs,
		BanWindow: c.Window.Seconds(), BanMinShares: c.MinShares, BanInvalidRatio: c.MaxInvalidRatio,
		BanMinLines: c.MinLines, BanMalformedRatio: c.MaxMalformedRatio, BanAuthFailures: c.MaxAuthFailures,
		BanDuration: c.Duration.Seconds(), BansActive: len(g.Bans(time.Now()))}
}

// banJSON is one ban in the admin API.
type banJSON struct {
	Addr   string    `json:"addr"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

// AdminHandler is the operator's API, for a listener on a local address
// only (serve refuses any other): the bans with their reasons and
// addresses (which the public API never shows), lifting one, and the Go
// profiler.
//
//	GET    /api/v1/bans         the bans in force, oldest first
//	DELETE /api/v1/bans/{addr}  lift the ban on an IPv4 address or IPv6 /64
//	GET    /debug/pprof/...     net/http/pprof
func AdminHandler(g StratumGuard) http.Handler {
	r := chi.NewRouter()
	r.Get("/api/v1/bans", func(w http.ResponseWriter, req *http.Request) {
		list := g.Bans(time.Now())
		out := make([]banJSON, 0, len(list))
		for _, b := range list {
			out = append(out, banJSON{Addr: ban.FormatKey(b.Addr), Reason: b.Reason, Since: b.Since.UTC(), Until: b.Until.UTC()})
		}
		writeJSON(w, http.StatusOK, map[string]any{"bans": out})
	})
	r.Delete("/api/v1/bans/*", func(w http.ResponseWriter, req *http.Request) {
		k, ok := ban.ParseKey(chi.URLParam(req, "*"))
		if !ok {
			writeError(w, http.StatusBadRequest, "not an IP address or IPv6 /64")
			return
		}
		if !g.LiftBan(k) {
			writeError(w, http.StatusNotFound, "no ban on "+ban.FormatKey(k))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"lifted": ban.FormatKey(k)})
	})
	r.HandleFunc("/debug/pprof/*", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return r
}
