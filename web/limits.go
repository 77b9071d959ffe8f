package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/connlimit"
)

// Limits bound what HTTP clients can hold of the server. Caps of 0 are no
// cap; timeouts of 0 are none. The zero Limits in a Config means
// DefaultLimits.
type Limits struct {
	// MaxConns and MaxConnsPerIP cap open HTTP connections, websockets
	// included (an IPv6 client is its /64). Past them a connection is
	// closed as soon as it is accepted: file descriptors are what the
	// Stratum listener, the node and the database need too.
	MaxConns, MaxConnsPerIP int
	// The http.Server's timeouts. WriteTimeout must outlast an API request
	// (APIRequestTimeout) and a scrape; websockets are not subject to any
	// of them once upgraded (they have their own ping deadlines).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	// MaxFeeds and MaxFeedsPerIP cap open live feeds. A dashboard refused
	// one polls the API every FeedPollInterval instead, and says so.
	MaxFeeds, MaxFeedsPerIP int
	FeedPollInterval        time.Duration
}

// DefaultLimits suit a public dashboard on a machine whose file
// descriptor limit is well above MaxConns plus the Stratum sessions.
func DefaultLimits() Limits {
	return Limits{
		MaxConns:          2048,
		MaxConnsPerIP:     64,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxFeeds:          1024,
		MaxFeedsPerIP:     8,
		FeedPollInterval:  10 * time.Second,
	}
}

// APIRequestTimeout bounds each API request; the server's WriteTimeout
// must be longer, or a slow answer is cut off instead of becoming a 504.
const APIRequestTimeout = defaultAPITimeout

// OrDefaults is l, or DefaultLimits for the zero Limits (a Config that
// sets none).
func (l Limits) OrDefaults() Limits {
	if l == (Limits{}) {
		return DefaultLimits()
	}
	return l
}

// LogAttrs are the limits as log attributes, for the line that says at
// start what the server enforces.
func (l Limits) LogAttrs() []any {
	return []any{"max_conns", l.MaxConns, "max_conns_per_ip", l.MaxConnsPerIP,
		"read_header_timeout", l.ReadHeaderTimeout, "read_timeout", l.ReadTimeout,
		"write_timeout", l.WriteTimeout, "idle_timeout", l.IdleTimeout, "max_header_bytes", l.MaxHeaderBytes,
		"max_feeds", l.MaxFeeds, "max_feeds_per_ip", l.MaxFeedsPerIP, "feed_poll_interval", l.FeedPollInterval}
}

// limitsJSON is Limits in /api/v1/stats: what a client can expect of
// this server. Durations are seconds.
type limitsJSON struct {
	HTTPMaxConns          int     `json:"http_max_conns"`
	HTTPMaxConnsPerIP     int     `json:"http_max_conns_per_ip"`
	HTTPReadHeaderTimeout float64 `json:"http_read_header_timeout_seconds"`
	HTTPReadTimeout       float64 `json:"http_read_timeout_seconds"`
	HTTPWriteTimeout      float64 `json:"http_write_timeout_seconds"`
	HTTPIdleTimeout       float64 `json:"http_idle_timeout_seconds"`
	HTTPMaxHeaderBytes    int     `json:"http_max_header_bytes"`
	WSMaxClients          int     `json:"ws_max_clients"`
	WSMaxClientsPerIP     int     `json:"ws_max_clients_per_ip"`
	FeedPollSeconds       float64 `json:"feed_fallback_poll_seconds"`
	// The Stratum ports' caps and bans, when the server has a Guard.
	*guardJSON
}

func (l Limits) json() limitsJSON {
	return limitsJSON{HTTPMaxConns: l.MaxConns, HTTPMaxConnsPerIP: l.MaxConnsPerIP,
		HTTPReadHeaderTimeout: l.ReadHeaderTimeout.Seconds(), HTTPReadTimeout: l.ReadTimeout.Seconds(),
		HTTPWriteTimeout: l.WriteTimeout.Seconds(), HTTPIdleTimeout: l.IdleTimeout.Seconds(),
		HTTPMaxHeaderBytes: l.MaxHeaderBytes, WSMaxClients: l.MaxFeeds, WSMaxClientsPerIP: l.MaxFeedsPerIP,
		FeedPollSeconds: l.FeedPollInterval.Seconds()}
}

func (l Limits) validate() error {
	switch {
	case l.MaxConns < 0 || l.MaxConnsPerIP < 0 || l.MaxFeeds < 0 || l.MaxFeedsPerIP < 0 || l.MaxHeaderBytes < 0:
		return errors.New("web: limits: caps must be 0 (none) or positive")
	case l.ReadHeaderTimeout < 0 || l.ReadTimeout < 0 || l.WriteTimeout < 0 || l.IdleTimeout < 0:
		return errors.New("web: limits: timeouts must be 0 (none) or positive")
	case l.FeedPollInterval < time.Second/10:
		return errors.New("web: limits: the feed poll interval must be at least 100ms")
	}
	return nil
}

// Serve serves the dashboard on ln, within the Limits, until ctx ends;
// then it stops taking connections and gives open requests 5 s to finish.
// Run must be running too, for the live feed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	l := s.cfg.Limits
	capped := connlimit.Wrap(ln, connlimit.Limits{Total: l.MaxConns, PerIP: l.MaxConnsPerIP})
	capped.OnRefuse = s.connRefused
	s.conns.Store(capped)
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		// net/http's own complaints (accept errors, bad TLS) go to the
		// log with everything else.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("dashboard listening", append([]any{"addr", ln.Addr().String()}, l.LogAttrs()...)...)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	err := hs.Serve(capped)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("http: %w", err)
}

// refusalLogEvery spaces the log lines about refused connections: a flood
// is one line per interval, with the count, not one per connection.
const refusalLogEvery = 10 * time.Second

// connRefused runs on the accept loop for each connection over a cap.
func (s *Server) connRefused(remote net.Addr, why connlimit.Reason) {
	s.logRefusal(&s.connRefusalLogged, "http connection refused: limit reached", why, remote.String())
}

// logRefusal logs at most one refusal per refusalLogEvery per kind, and
// never blocks.
func (s *Server) logRefusal(last *atomic.Int64, msg string, why connlimit.Reason, remote string) {
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(refusalLogEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	s.log.Warn(msg, "limit", string(why), "remote", remote, "limits", s.cfg.Limits.json())
}
