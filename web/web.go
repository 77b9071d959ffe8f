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
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/go-chi/chi/v5"

	"github.com/hashforge/hashforge/internal/connlimit"
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
	// Limits bound HTTP connections, requests and live feeds; the zero
	// value is DefaultLimits.
	Limits Limits
	// Guard is the Stratum ports' caps and bans, for /metrics and the
	// limits in /api/v1/stats.
	Guard StratumGuard
	// Nodes lists the pool nodes sharing the database, for the whole
	// pool's figures; NodeID is this node's id among them.
	Nodes  NodeDirectory
	NodeID int
	Logger *slog.Logger
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
	// conns is the capped listener while Serve runs, for /metrics.
	conns atomic.Pointer[connlimit.Listener]
	// started is when this server was made: this node's start, for the
	// node list when its lease row is missing.
	started time.Time
	// When a refusal was last logged (Unix ns), per kind.
	connRefusalLogged, feedRefusalLogged atomic.Int64
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
	cfg.Limits = cfg.Limits.OrDefaults()
	if err := cfg.Limits.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, apiTimeout: defaultAPITimeout, started: time.Now()}
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
	r.Mount("/", staticHandler(cfg.Limits.FeedPollInterval))
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

// The dashboard pages are static HTML that reads the API. Each is its own
// "main" in one layout (pages/layout.html: head, navigation, scripts),
// rendered once at start. The address of a miner page is part of its path
// (/miner/<address>) so it can be bookmarked and shared.
//
//go:embed pages
var pageFiles embed.FS

type page struct {
	file  string
	Title string
	Page  string // what app.js knows the page by (body data-page)
}

// pageData is what the layout shows besides the page itself: settings
// app.js reads from the body's data attributes.
type pageData struct {
	page
	// PollMillis is how often a page whose live feed was refused reloads
	// over the API instead.
	PollMillis int64
	// Hidden is the character class (JavaScript regexp syntax) of what
	// app.js's shown() escapes: hiddenClass, the rule of Shown.
	Hidden string
}

var pages = map[string]page{
	"/":         {"index.html", "hashforge pool", "overview"},
	"/blocks":   {"blocks.html", "Blocks · hashforge pool", "blocks"},
	"/payments": {"payments.html", "Payments · hashforge pool", "payments"},
	"/miner/":   {"miner.html", "Miner · hashforge pool", "miner"},
}

// renderPages renders every page in the layout.
func renderPages(poll time.Duration) (map[string][]byte, error) {
	out := make(map[string][]byte, len(pages))
	for route, p := range pages {
		t, err := template.ParseFS(pageFiles, "pages/layout.html", "pages/"+p.file)
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", p.file, err)
		}
		var b bytes.Buffer
		data := pageData{page: p, PollMillis: poll.Milliseconds(), Hidden: hiddenClass()}
		if err := t.ExecuteTemplate(&b, "layout.html", data); err != nil {
			return nil, fmt.Errorf("page %s: %w", p.file, err)
		}
		out[route] = b.Bytes()
	}
	return out, nil
}

func staticHandler(poll time.Duration) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	rendered, err := renderPages(poll)
	if err != nil {
		panic(err) // embedded templates: a broken one fails every test
	}
	files := http.FileServerFS(sub)
	serve := func(w http.ResponseWriter, r *http.Request, route string) {
		// The pages change with every release and are tiny: always
		// revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rendered[route]))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := pages[r.URL.Path]; ok && r.URL.Path != "/miner/" {
			serve(w, r, r.URL.Path)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/miner/"); ok && rest != "" && !strings.Contains(rest, "/") {
			serve(w, r, "/miner/")
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
