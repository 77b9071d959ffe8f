// Package web serves the dashboard and the JSON API over the pool's live
// state and the ledger.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
)

//go:embed static
var static embed.FS

// PoolState is the live pool, as the dashboard needs it.
type PoolState interface {
	Stats() pool.Stats
}

// Store is the part of the ledger the API reads.
type Store interface {
	RecentBlocks(ctx context.Context, limit, offset int) ([]ledger.BlockRow, error)
	PoolHashrate(ctx context.Context, window time.Duration) (float64, error)
}

type Config struct {
	Pool       PoolState
	Ledger     Store
	StratumURL string // what miners should connect to, shown on the dashboard
	Logger     *slog.Logger
}

type server struct{ cfg Config }

// New returns the HTTP handler for the dashboard and /api/v1.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &server{cfg: cfg}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(middleware.Timeout(15 * time.Second))
	r.Route("/api/v1", func(r chi.Router) {
		r.Get("/stats", s.stats)
		r.Get("/blocks", s.blocks)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such API endpoint")
		})
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	sub, _ := fs.Sub(static, "static")
	r.Handle("/*", http.FileServerFS(sub))
	return r
}

// The API's JSON is its own contract, kept apart from the Go types behind it
// so that renaming a field in pool or ledger cannot break operators' scripts.
type statsResponse struct {
	StratumURL        string             `json:"stratum_url"`
	Hashrate          map[string]float64 `json:"hashrate"` // H/s over "10m", "1h", "24h", from accepted share difficulty
	Sessions          int                `json:"sessions"`
	WorkersOnline     int                `json:"workers_online"`
	Accepted          uint64             `json:"shares_accepted"`
	Rejected          map[string]uint64  `json:"shares_rejected"` // by reason
	NetworkHeight     int64              `json:"network_height"`  // height of the block being mined
	NetworkDifficulty float64            `json:"network_difficulty"`
	BlocksFound       uint64             `json:"blocks_found"`
	LastBlock         *blockJSON         `json:"last_block"`
}

type blockJSON struct {
	Height   int64     `json:"height"`
	Hash     string    `json:"hash"`
	Reward   int64     `json:"reward_sat"`
	Address  string    `json:"finder"`
	Worker   string    `json:"worker"`
	Accepted bool      `json:"accepted"`
	Verdict  string    `json:"verdict"`
	Status   string    `json:"status,omitempty"`
	FoundAt  time.Time `json:"found_at"`
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	ps := s.cfg.Pool.Stats()
	resp := statsResponse{
		StratumURL:        s.cfg.StratumURL,
		Hashrate:          map[string]float64{},
		Sessions:          ps.Sessions,
		WorkersOnline:     ps.AuthorizedWorkers,
		Accepted:          ps.Accepted,
		Rejected:          ps.Rejected,
		NetworkHeight:     ps.JobHeight,
		NetworkDifficulty: ps.NetworkDifficulty,
		BlocksFound:       ps.BlocksFound,
	}
	if b := ps.LastBlock; b != nil {
		resp.LastBlock = &blockJSON{Height: b.Height, Hash: b.Hash, Reward: b.Reward, Address: b.Address,
			Worker: b.Worker, Accepted: b.Accepted, Verdict: b.Verdict, FoundAt: b.Time}
	}
	for name, d := range map[string]time.Duration{"10m": 10 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour} {
		h, err := s.cfg.Ledger.PoolHashrate(r.Context(), d)
		if err != nil {
			s.cfg.Logger.Error("pool hashrate", "window", name, "err", err)
			writeError(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		resp.Hashrate[name] = h
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *server) blocks(w http.ResponseWriter, r *http.Request) {
	limit, ok := intParam(w, r, "limit", 20, 1, 200)
	if !ok {
		return
	}
	offset, ok := intParam(w, r, "offset", 0, 0, 1<<30)
	if !ok {
		return
	}
	rows, err := s.cfg.Ledger.RecentBlocks(r.Context(), limit, offset)
	if err != nil {
		s.cfg.Logger.Error("recent blocks", "err", err)
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	out := make([]blockJSON, 0, len(rows))
	for _, b := range rows {
		out = append(out, blockJSON{Height: b.Height, Hash: b.Hash, Reward: b.Reward, Address: b.Address,
			Worker: b.Worker, Accepted: b.Accepted, Verdict: b.Verdict, Status: b.Status, FoundAt: b.FoundAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"blocks": out, "limit": limit, "offset": offset})
}

// intParam reads an optional integer query parameter within [lo, hi]; bad
// input is the client's error, answered with 400 and a reason.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, true
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		writeError(w, http.StatusBadRequest, name+" must be an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
		return 0, false
	}
	return v, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
