package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/internal/fdlimit"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/web"
)

// guardConfig is what keeps the Stratum ports usable under attack
// (docs/decisions.md, "Hostile miners").
type guardConfig struct {
	MaxConns      int
	MaxConnsPerIP int
	Ban           ban.Config
	AdminAddr     string
}

func (g *guardConfig) register(fs *flag.FlagSet) {
	d := ban.Defaults
	fs.IntVar(&g.MaxConns, "stratum-max-conns", 0, "open Stratum sessions, every port together; past it the oldest unauthorized session gives way, or the connection is refused; 0: what the open-file limit leaves after its reserve and the HTTP share")
	fs.IntVar(&g.MaxConnsPerIP, "stratum-max-conns-per-ip", 1024, "open Stratum sessions per client IPv4 address or IPv6 /64 (a farm behind one NAT address needs one per machine, a farm proxy one); 0: no cap")
	fs.DurationVar(&g.Ban.Window, "ban-window", d.Window, "span over which each client address's invalid shares, malformed lines and failed authorizations are counted")
	fs.IntVar(&g.Ban.MinShares, "ban-min-shares", d.MinShares, "shares an address must have sent in the window before its invalid-share ratio can ban it")
	fs.Float64Var(&g.Ban.MaxInvalidRatio, "ban-invalid-ratio", d.MaxInvalidRatio, "share (0..1] of an address's shares that may fail the checks (stale and duplicate shares do not count as failing)")
	fs.IntVar(&g.Ban.MinLines, "ban-min-lines", d.MinLines, "lines an address must have sent in the window before its malformed-line ratio can ban it")
	fs.Float64Var(&g.Ban.MaxMalformedRatio, "ban-malformed-ratio", d.MaxMalformedRatio, "share (0..1] of an address's lines that may be malformed")
	fs.IntVar(&g.Ban.MaxAuthFailures, "ban-auth-failures", d.MaxAuthFailures, "failed authorizations in the window that ban an address")
	fs.DurationVar(&g.Ban.Duration, "ban-duration", d.Duration, "how long a ban lasts (lifted earlier by a restart or the admin API); negative: never ban")
	fs.StringVar(&g.AdminAddr, "admin-addr", "", "operator API on a loopback address (bans: GET /api/v1/bans, DELETE /api/v1/bans/ADDR; Go profiler: /debug/pprof/); empty: off")
}

func (g *guardConfig) validate() error {
	if g.MaxConns < 0 || g.MaxConnsPerIP < 0 {
		return errors.New("--stratum-max-conns and --stratum-max-conns-per-ip must be 0 (default/none) or positive")
	}
	if err := g.Ban.Validate(); err != nil {
		return fmt.Errorf("ban flags: %w", err)
	}
	if g.AdminAddr != "" {
		if err := loopbackOnly(g.AdminAddr); err != nil {
			return fmt.Errorf("--admin-addr %q: %w", g.AdminAddr, err)
		}
	}
	return nil
}

// loopbackOnly refuses a listen address reachable from other machines:
// the admin API lifts bans and profiles the process, and has no login.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return errors.New("must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): the admin API has no login")
	}
	return nil
}

// fdBudget raises the open-file limit as far as the process may and
// shares it out: a reserve for the node, database and spool first, then
// the HTTP and Stratum caps (a configured cap larger than its share is
// cut down to it).
func fdBudget(g *guardConfig, httpLimits *web.Limits, log *slog.Logger) (fdlimit.Budget, error) {
	limit, err := fdlimit.Raise()
	if err != nil {
		return fdlimit.Budget{}, fmt.Errorf("open-file limit: %w", err)
	}
	*httpLimits = httpLimits.OrDefaults() // what web.New would take
	b := fdlimit.Share(limit, g.MaxConns, httpLimits.MaxConns)
	if g.MaxConns != 0 && g.MaxConns > b.Stratum {
		log.Warn("--stratum-max-conns cut down to fit the open-file limit", "configured", g.MaxConns, "cap", b.Stratum)
	}
	if httpLimits.MaxConns == 0 || httpLimits.MaxConns > b.HTTP {
		if httpLimits.MaxConns != 0 {
			log.Warn("--http-max-conns cut down to fit the open-file limit", "configured", httpLimits.MaxConns, "cap", b.HTTP)
		}
		httpLimits.MaxConns = b.HTTP
	}
	g.MaxConns = b.Stratum
	log.Info("open files shared out", "limit", b.Limit, "reserve", b.Reserve, "stratum_max_conns", b.Stratum,
		"stratum_max_conns_per_ip", g.MaxConnsPerIP, "http_max_conns", httpLimits.MaxConns)
	return b, nil
}

// stratumGuard is the Gate every Stratum port shares and the ban table
// that feeds it, as web.StratumGuard.
type stratumGuard struct {
	gate                *stratum.Gate
	bans                *ban.Table
	issued              atomic.Uint64
	maxRequests, maxErr int
}

func newStratumGuard(g guardConfig, maxRequests, maxErrors int, log *slog.Logger) *stratumGuard {
	sg := &stratumGuard{maxRequests: maxRequests, maxErr: maxErrors,
		gate: stratum.NewGate(stratum.GateLimits{MaxSessions: g.MaxConns, MaxSessionsPerIP: g.MaxConnsPerIP}),
		bans: ban.New(g.Ban),
	}
	sg.gate.Banned = func(k netip.Prefix) bool {
		_, banned := sg.bans.Banned(k, time.Now())
		return banned
	}
	sg.bans.OnBan = func(b ban.Ban) {
		sg.issued.Add(1)
		n := sg.gate.CloseKey(b.Addr, stratum.ErrBanned)
		log.Warn("client address banned", "addr", b.Addr.String(), "reason", b.Reason,
			"until", b.Until.UTC().Format(time.RFC3339), "sessions_closed", n)
	}
	c := sg.bans.Config()
	log.Info("bans", "window", c.Window, "min_shares", c.MinShares, "invalid_ratio", c.MaxInvalidRatio,
		"min_lines", c.MinLines, "malformed_ratio", c.MaxMalformedRatio, "auth_failures", c.MaxAuthFailures,
		"duration", c.Duration)
	return sg
}

func (g *stratumGuard) GateStats() stratum.GateStats { return g.gate.Stats() }
func (g *stratumGuard) BanConfig() ban.Config        { return g.bans.Config() }
func (g *stratumGuard) Bans(now time.Time) []ban.Ban { return g.bans.List(now) }
func (g *stratumGuard) BansIssued() uint64           { return g.issued.Load() }
func (g *stratumGuard) LiftBan(k netip.Prefix) bool  { return g.bans.Lift(k) }
func (g *stratumGuard) SessionRates() (int, int)     { return g.maxRequests, g.maxErr }

// serveAdmin serves the operator API on ln until ctx ends.
func serveAdmin(ctx context.Context, ln net.Listener, g *stratumGuard, log *slog.Logger) error {
	srv := &http.Server{Handler: web.AdminHandler(g), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	log.Info("admin API listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin API: %w", err)
	}
	return nil
}
