// Package web serves the pool's dashboard, its JSON API (/api/v1), the
// websocket live feed (/api/v1/ws) and Prometheus metrics (/metrics), over
// the pool's live state and the ledger.
//
// The pool never waits for this package: live events come through a
// bounded subscription the pool fills without blocking (pool.Subscribe),
// metrics read Stats snapshots at scrape time, and every websocket client
// has its own bounded queue; a client that cannot keep up is dropped.
package web

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/go-chi/chi/v5"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool"
)

//go:embed static
var static embed.FS

// PoolState is the live pool, as the dashboard needs it. *pool.Server
// implements it.
type PoolState interface {
	Stats() pool.Stats
	Online() []pool.OnlineWorker
}

// EventSource streams pool events. *pool.Server implements it.
type EventSource interface {
	Subscribe(buf int) *pool.Subscription
}

// Store is the part of the ledger the API reads.
type Store interface {
	RecentBlocks(ctx context.Context, limit, offset int) ([]ledger.BlockRow, error)
	PoolShareWindows(ctx context.Context, windows ...time.Duration) ([]ledger.ShareWindow, error)
	PoolHashrateSeries(ctx context.Context, window, bucket time.Duration) ([]ledger.HashratePoint, error)
	Workers(ctx context.Context, address string) ([]ledger.WorkerRow, error)
	WorkerHashrateSeries(ctx context.Context, address string, window, bucket time.Duration) ([]ledger.WorkerSeries, error)
}

// PaymentStore is the payout side of the ledger: balances and payment
// batches.
type PaymentStore interface {
	Balance(ctx context.Context, address string) (ledger.Balance, error)
	Payments(ctx context.Context, limit, offset int) ([]ledger.Payment, error)
	PaymentsTo(ctx context.Context, address string, limit int) ([]ledger.PaymentItem, error)
	PaymentStateCounts(ctx context.Context) (map[string]int64, error)
}

// BatcherStats is the share writer's counters. *ledger.Batcher implements it.
type BatcherStats interface {
	Stats() ledger.Stats
}

// PayoutStats is the payout processor's counters. *payout.Processor
// implements it.
type PayoutStats interface {
	Stats() payout.Stats
}

// Config configures the web server. Pool, Ledger and Network are
// required; the rest may be nil, and what depends on them is left out.
type Config struct {
	Pool    PoolState
	Events  EventSource
	Ledger  Store
	Payouts PaymentStore
	Batcher BatcherStats
	// Processor is this node's payout processor, for its error and block
	// counters in /metrics.
	Processor PayoutStats
	// Network is the pool's chain: addresses in URLs are checked against
	// it, as the pool checks miners' usernames.
	Network *chaincfg.Params
	// StratumURL is what miners should connect to, shown on the dashboard.
	StratumURL string
	Logger     *slog.Logger
}

// Server is the dashboard, API, live feed and metrics. It is an
// http.Handler; Run must be running for the live feed and the event-fed
// metrics to move.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	hub     *hub
	metrics *metrics
	cache   statsCache
	// apiTimeout bounds each API request (not the websocket); tests
	// shorten it before serving.
	apiTimeout time.Duration
}

// defaultAPITimeout bounds an API request: the database has that long to
// answer, then the client gets a 504.
const defaultAPITimeout = 15 * time.Second

// New builds the server. It does not start anything: call Run.
func New(cfg Config) (*Server, error) {
	if cfg.Pool == nil || cfg.Ledger == nil || cfg.Network == nil {
		return nil, errors.New("web: config: pool, ledger and network are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, apiTimeout: defaultAPITimeout}
	s.metrics = newMetrics(s)
	s.hub = newHub(s)

	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.Use(securityHeaders)
	r.Route("/api/v1", func(r chi.Router) {
		// The websocket outlives any request timeout; it is mounted
		// outside the group that has one.
		r.Get("/ws", s.hub.serveWS)
		r.Group(func(r chi.Router) {
			r.Use(s.timeout)
			r.Get("/stats", s.stats)
			r.Get("/hashrate", s.hashrate)
			r.Get("/blocks", s.blocks)
			r.Get("/miners/{address}", s.miner)
			r.Get("/payments", s.payments)
		})
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such API endpoint")
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		})
	})
	r.Handle("/metrics", s.metrics.handler())
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	r.Mount("/", staticHandler())
	s.handler = r
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Run feeds the live feed and the metrics from the pool until ctx ends,
// then closes every websocket. It returns nil.
func (s *Server) Run(ctx context.Context) error {
	var events <-chan pool.Event
	if s.cfg.Events != nil {
		// Room for a burst (a block, a clean job and a reconnect
		// storm of workers) between two reads of a loop that does
		// nothing slow.
		sub := s.cfg.Events.Subscribe(4096)
		defer sub.Close()
		s.metrics.sub.Store(sub)
		events = sub.C
	}
	s.hub.run(ctx, events)
	return nil
}

// The dashboard pages are single HTML files that read the API; the
// address of a miner page is part of its path (/miner/<address>) so it can
// be bookmarked and shared.
var pages = map[string]string{
	"/":         "index.html",
	"/blocks":   "blocks.html",
	"/payments": "payments.html",
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	files := http.FileServerFS(sub)
	serve := func(w http.ResponseWriter, r *http.Request, name string) {
		// index.html and friends change with every release and are
		// tiny: always revalidate. The embedded files carry no
		// modification time, so http.ServeFileFS cannot answer 304
		// from one; that is fine at this size.
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, name)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if page, ok := pages[r.URL.Path]; ok {
			serve(w, r, page)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/miner/"); ok && rest != "" && !strings.Contains(rest, "/") {
			serve(w, r, "miner.html")
			return
		}
		if strings.HasSuffix(r.URL.Path, ".html") || strings.HasSuffix(r.URL.Path, "/") {
			// One URL per page: /index.html and directory listings
			// are not pages.
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// securityHeaders keeps the dashboard self-contained: scripts and styles
// only from this origin (the charts are vendored), no framing.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy",
			"default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler's panic into a logged error and, if the
// handler had not started its answer, a JSON 500: the API's errors are
// JSON, even the unexpected ones.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec) // net/http's way to abort a response: not ours to swallow
			}
			s.log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if !tw.started() {
				writeError(tw, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(tw, r)
	})
}

// timeout gives an API request s.apiTimeout. The handlers pass the
// request's context to every database call, so they return once it
// expires; one that has not answered by then gets a JSON 504.
func (s *Server) timeout(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.apiTimeout)
		defer cancel()
		tw := &trackingWriter{ResponseWriter: w}
		next.ServeHTTP(tw, r.WithContext(ctx))
		if !tw.started() && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			writeError(tw, http.StatusGatewayTimeout, "request timed out")
		}
	})
}

// trackingWriter records whether a handler has started its response (or
// taken over the connection, as a websocket upgrade does), so that a
// middleware answers only a request nobody answered.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *trackingWriter) started() bool { return w.wrote }

func (w *trackingWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets the websocket upgrader take the connection.
func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("web: the response writer cannot be hijacked")
	}
	w.wrote = true
	return h.Hijack()
}

// Unwrap serves http.ResponseController.
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
