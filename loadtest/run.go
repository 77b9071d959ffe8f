package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/hashforge/hashforge/internal/cpuclock"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report is what a run measured. JSON keys are a contract with scripts
// and tests; ReportHelp says what each one means.
type Report struct {
	URL               string           `json:"url"`
	Mode              Mode             `json:"mode"`
	Miners            int              `json:"miners"`
	Sessions          int              `json:"sessions"`
	ConnectErrors     int              `json:"connect_errors"`
	FirstError        string           `json:"first_error,omitempty"`
	Disconnects       int              `json:"disconnects"`
	DurationSec       float64          `json:"duration_sec"`
	Submitted         int64            `json:"submitted"`
	Accepted          int64            `json:"accepted"`
	Rejected          int64            `json:"rejected"`
	RejectedByReason  map[string]int64 `json:"rejected_by_reason"`
	Unanswered        int64            `json:"unanswered"`
	BadMessages       int64            `json:"bad_messages"`
	SharesPerSec      float64          `json:"shares_per_sec"`
	ReplyP50Ms        float64          `json:"reply_p50_ms"`
	ReplyP99Ms        float64          `json:"reply_p99_ms"`
	ReplyMaxMs        float64          `json:"reply_max_ms"`
	Jobs              int              `json:"jobs"`
	NotifyP50Ms       float64          `json:"notify_p50_ms"`
	NotifyP99Ms       float64          `json:"notify_p99_ms"`
	NotifyMaxSpreadMs float64          `json:"notify_max_spread_ms"`
	CPUSelfSec        float64          `json:"cpu_self_sec"`
	CPUPoolSec        *float64         `json:"cpu_pool_sec"`
}

// ReportHelp describes the report, for --help.
const ReportHelp = `
The report (text, or one JSON object with --json):
  sessions              sessions that subscribed and were authorized
  connect_errors        sessions that failed to dial, subscribe or authorize (first_error: the first reason)
  disconnects           authorized sessions the pool closed before the end
  duration_sec          the run, from the first dial to the end of submitting (replies in flight are then
                        awaited for up to --drain-timeout, 5 s)
  submitted             mining.submit lines written
  accepted              replies {"result": true, "error": null}
  rejected              every other reply to a submit; rejected_by_reason counts them by "CODE message"
  unanswered            submits without a reply when the run closed its connections
  shares_per_sec        accepted / duration_sec
  reply_p50_ms, reply_p99_ms, reply_max_ms
                        submit written → its reply read, over every answered submit
  jobs                  distinct job ids broadcast (mining.notify) during the run
  notify_p50_ms, notify_p99_ms
                        notify spread: for each job id, each session's arrival time minus the
                        first session's arrival of that job (the first session counts, at 0);
                        percentiles over all those deltas. A session's first job (the answer to
                        its authorize) and a job sent again after a retarget are left out.
  notify_max_spread_ms  the largest such delta: the slowest broadcast, first to last session
  cpu_self_sec          user+system CPU of this process over the run (getrusage); with the pool
                        in the same process (tests), it includes the pool's
  cpu_pool_sec          the pool's user+system CPU over the run, from /proc/PID/stat (--pool-pid)
Latencies are kept in log-linear histograms: within 0.4 % of the exact value, the maximum exact.
`

var errNoSession = errors.New("loadtest: no session was authorized")

// otherReasons collects refusals past the distinct reasons a miner keeps.
const otherReasons = "other reasons"

// run is what the miners of one Run share.
type run struct {
	cfg          Config
	hostport     string
	tls          *tls.Config // nil: plain TCP
	start        time.Time
	drainEnd     time.Time
	connectSlots chan struct{}
	templates    templateCache
}

// onGrid rounds t up to the run's pacing grid (Config.PaceGrid).
func (r *run) onGrid(t time.Time) time.Time {
	g := r.cfg.PaceGrid
	if g <= 0 {
		return t
	}
	d := t.Sub(r.start)
	return r.start.Add((d + g - 1) / g * g)
}

// now is the time since the run began in ns, on the monotonic clock.
func (r *run) now() int64 { return int64(time.Since(r.start)) }

// Run opens cfg.Miners sessions to the pool and drives them for
// cfg.Duration, then waits (up to cfg.DrainTimeout) for replies to what it
// submitted, closes every connection and reports. A report comes back with
// an error too when no session got authorized: its first_error says why.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	hostport, useTLS, err := stripScheme(cfg.URL)
	if err != nil {
		return Report{}, err
	}
	var tlsCfg *tls.Config
	if useTLS {
		if tlsCfg = cfg.TLS.Clone(); tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tlsCfg.ServerName == "" {
			host, _, err := net.SplitHostPort(hostport)
			if err != nil {
				return Report{}, fmt.Errorf("loadtest: URL %q: %w", cfg.URL, err)
			}
			tlsCfg.ServerName = host
		}
		// One session cache for every miner: the generator measures the
		// pool's share path, and full handshakes by the thousand would
		// be its own CPU, not the pool's, anyway.
		if tlsCfg.ClientSessionCache == nil {
			tlsCfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
	}
	var poolCPU0 time.Duration
	if cfg.PoolPID > 0 {
		if poolCPU0, err = processCPU(cfg.PoolPID); err != nil {
			return Report{}, fmt.Errorf("loadtest: pool CPU: %w", err)
		}
	}
	selfCPU0 := cpuclock.Self()
	r := &run{cfg: cfg, hostport: hostport, tls: tlsCfg, start: time.Now(), connectSlots: make(chan struct{}, cfg.ConnectConcurrency)}
	runEnd := r.start.Add(cfg.Duration)
	r.drainEnd = runEnd.Add(cfg.DrainTimeout)
	runCtx, cancel := context.WithDeadline(ctx, runEnd)
	defer cancel()
	cfg.Logger.Info("load test starting", "url", cfg.URL, "mode", cfg.Mode, "miners", cfg.Miners,
		"duration", cfg.Duration, "rate", cfg.Rate, "window", cfg.Window)

	miners := make([]*miner, cfg.Miners)
	var wg sync.WaitGroup
	for i := range miners {
		m := newMiner(r, i)
		miners[i] = m
		wg.Go(func() { m.run(ctx, runCtx) })
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	if end := runEnd.Sub(r.start); elapsed > end {
		elapsed = end // the drain is not part of the measured rate
	}

	rep := report(cfg, miners, elapsed)
	rep.CPUSelfSec = (cpuclock.Self() - selfCPU0).Seconds()
	if cfg.PoolPID > 0 {
		if c, err := processCPU(cfg.PoolPID); err == nil {
			s := (c - poolCPU0).Seconds()
			rep.CPUPoolSec = &s
		} else {
			cfg.Logger.Warn("pool CPU at the end of the run", "pid", cfg.PoolPID, "err", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("loadtest: %w", err)
	}
	if rep.Sessions == 0 {
		return rep, fmt.Errorf("%w: %s", errNoSession, rep.FirstError)
	}
	return rep, nil
}

// report adds up what the miners saw.
func report(cfg Config, miners []*miner, elapsed time.Duration) Report {
	rep := Report{URL: cfg.URL, Mode: cfg.Mode, Miners: cfg.Miners, DurationSec: elapsed.Seconds(),
		RejectedByReason: map[string]int64{}}
	var replies histogram
	first := map[string]int64{}
	logged := 0
	for _, m := range miners {
		if m.connectErr != nil {
			rep.ConnectErrors++
			if rep.FirstError == "" {
				rep.FirstError = m.connectErr.Error()
			}
			if logged++; logged <= 5 {
				cfg.Logger.Warn("session failed", "miner", m.idx, "err", m.connectErr)
			}
			continue
		}
		rep.Sessions++
		if m.disconnect != nil {
			rep.Disconnects++
			if logged++; logged <= 5 {
				cfg.Logger.Warn("pool closed a session", "miner", m.idx, "err", m.disconnect)
			}
		}
		rep.Submitted += m.submitted
		rep.Accepted += m.accepted
		rep.Rejected += m.rejected
		rep.Unanswered += m.unanswered
		rep.BadMessages += m.badMessages
		for _, r := range m.reasons {
			rep.RejectedByReason[r.key] += r.n
		}
		if m.otherReasons > 0 {
			rep.RejectedByReason[otherReasons] += m.otherReasons
		}
		if m.replies != nil {
			replies.merge(m.replies)
		}
		for _, a := range m.arrivals {
			if f, ok := first[a.job]; !ok || a.at < f {
				first[a.job] = a.at
			}
		}
	}
	var spread histogram
	for _, m := range miners {
		for _, a := range m.arrivals {
			spread.add(time.Duration(a.at - first[a.job]))
		}
	}
	if elapsed > 0 {
		rep.SharesPerSec = float64(rep.Accepted) / elapsed.Seconds()
	}
	rep.ReplyP50Ms, rep.ReplyP99Ms, rep.ReplyMaxMs = ms(replies.quantile(0.5)), ms(replies.quantile(0.99)), ms(time.Duration(replies.max))
	rep.Jobs = len(first)
	rep.NotifyP50Ms, rep.NotifyP99Ms, rep.NotifyMaxSpreadMs = ms(spread.quantile(0.5)), ms(spread.quantile(0.99)), ms(time.Duration(spread.max))
	return rep
}

// stripScheme returns the pool's host:port and whether it speaks TLS
// (stratum+ssl).
func stripScheme(url string) (hostport string, useTLS bool, err error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url, false, nil
	}
	switch scheme {
	case "stratum+tcp", "tcp":
		return rest, false, nil
	case "stratum+ssl", "stratum+tls", "ssl", "tls":
		return rest, true, nil
	}
	return "", false, fmt.Errorf("loadtest: URL %q: only stratum+tcp:// and stratum+ssl:// are supported", url)
}

// WriteText prints the report for a person, one measurement a line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(k string, format string, args ...any) {
		fmt.Fprintf(&b, "%-22s "+format+"\n", append([]any{k}, args...)...)
	}
	p("url", "%s", r.URL)
	p("mode", "%s", r.Mode)
	p("sessions", "%d of %d miners (connect errors %d, disconnects %d)", r.Sessions, r.Miners, r.ConnectErrors, r.Disconnects)
	if r.FirstError != "" {
		p("first_error", "%s", r.FirstError)
	}
	p("duration_sec", "%.3f", r.DurationSec)
	p("submitted", "%d", r.Submitted)
	p("accepted", "%d (%.1f shares/s)", r.Accepted, r.SharesPerSec)
	p("rejected", "%d", r.Rejected)
	for _, k := range slices.Sorted(maps.Keys(r.RejectedByReason)) {
		p("", "  %d  %s", r.RejectedByReason[k], k)
	}
	p("unanswered", "%d", r.Unanswered)
	if r.BadMessages > 0 {
		p("bad_messages", "%d", r.BadMessages)
	}
	p("reply_ms", "p50 %.3f  p99 %.3f  max %.3f", r.ReplyP50Ms, r.ReplyP99Ms, r.ReplyMaxMs)
	p("notify_spread_ms", "p50 %.3f  p99 %.3f  max %.3f  (%d jobs)", r.NotifyP50Ms, r.NotifyP99Ms, r.NotifyMaxSpreadMs, r.Jobs)
	p("cpu_self_sec", "%.3f", r.CPUSelfSec)
	if r.CPUPoolSec != nil {
		p("cpu_pool_sec", "%.3f", *r.CPUPoolSec)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
