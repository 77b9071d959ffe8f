package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/go-chi/chi/v5"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/record"
)

// The API's JSON is its own contract, kept apart from the Go types behind
// it so that renaming a field in pool or ledger cannot break operators'
// scripts. Amounts are integer satoshis (*_sat), hashrates are hashes per
// second, times are RFC 3339 in UTC, series times are Unix seconds.

type statsResponse struct {
	StratumURL string `json:"stratum_url"`
	// Hashrate over "10m", "1h" and "24h", from the difficulty of the
	// shares in the ledger (so it is the whole pool's, every node's).
	Hashrate        map[string]float64 `json:"hashrate"`
	SharesPerSecond float64            `json:"shares_per_second"` // accepted, over the last 10 minutes
	// Miners (distinct payout addresses), workers and sessions online on
	// every live pool node (a miner on two nodes counts on each).
	MinersOnline  int               `json:"miners_online"`
	WorkersOnline int               `json:"workers_online"`
	Sessions      int               `json:"sessions"`
	Accepted      uint64            `json:"shares_accepted"` // by this node since it started
	RejectedTotal uint64            `json:"shares_rejected_total"`
	Rejected      map[string]uint64 `json:"shares_rejected"` // by reason
	// The height of the chain's tip (the current job builds the block
	// after it) and the network difficulty of the current job; 0 before
	// the first job.
	NetworkHeight     int64      `json:"network_height"`
	NetworkDifficulty float64    `json:"network_difficulty"`
	BlocksFound       uint64     `json:"blocks_found"` // accepted by the node, since each live pool node started
	LastBlock         *blockJSON `json:"last_block"`   // newest block in the ledger, or null
	// SharesKept is false while this node answers valid shares with a
	// temporary error because neither its spool nor PostgreSQL can keep
	// them; SharesNotKeptReason then says why.
	SharesKept          bool   `json:"shares_kept"`
	SharesNotKeptReason string `json:"shares_not_kept_reason,omitempty"`
	// Limits are the HTTP and live feed limits this server enforces.
	Limits limitsJSON `json:"limits"`
	// NodeID is the node answering (serve --node-id); Nodes every live
	// pool node sharing the database, this one's figures live.
	NodeID int        `json:"node_id"`
	Nodes  []nodeJSON `json:"nodes"`
	// Protocols are this node's sessions and shares by protocol
	// (stratum1, stratum2).
	Protocols map[string]protocolJSON `json:"protocols,omitempty"`
	UpdatedAt time.Time               `json:"updated_at"`
}

type blockJSON struct {
	Height   int64     `json:"height"`
	Hash     string    `json:"hash"`
	Reward   int64     `json:"reward_sat"`
	Address  string    `json:"finder"`
	Worker   string    `json:"worker"`
	Accepted bool      `json:"accepted"`
	Verdict  string    `json:"verdict"`
	Status   string    `json:"status"`
	FoundAt  time.Time `json:"found_at"`
}

func blockFromRow(b ledger.BlockRow) blockJSON {
	return blockJSON{Height: b.Height, Hash: b.Hash, Reward: b.Reward, Address: b.Address, Worker: b.Worker,
		Accepted: b.Accepted, Verdict: b.Verdict, Status: b.Status, FoundAt: b.FoundAt.UTC()}
}

// blockFromPool is a block as the pool reports it, before the payout
// process has looked at it: its status is what the ledger records first.
func blockFromPool(b record.Block) blockJSON {
	return blockJSON{Height: b.Height, Hash: b.Hash, Reward: b.Reward, Address: b.Address, Worker: b.Worker,
		Accepted: b.Accepted, Verdict: b.Verdict, Status: b.Status(), FoundAt: b.Time.UTC()}
}

// statsCache keeps the ledger-derived part of /stats for a moment: the
// 24 h window sums a day of shares, and a dashboard open in many browsers
// must not make the database do that for each of them. Every figure is
// read at the same time and expires at the same time, so the three
// hashrates always describe the same shares (with separate lifetimes, a
// pool that had just started mining showed a 10-minute hashrate next to
// 1 h and 24 h hashrates of 0). The lifetime is just under the stats
// tick, so each tick sends fresh figures, and a found block expires them
// at once. The mutex is held during a refresh, so concurrent requests wait
// for one query instead of all running it.
type statsCache struct {
	mu sync.Mutex
	at time.Time // when d was read; zero when it must be read again
	d  ledgerStats
}

type ledgerStats struct {
	hashrate        map[string]float64
	sharesPerSecond float64
	lastBlock       *blockJSON
	nodes           []nodeJSON // every live pool node's lease row
}

// statsWindows are the hashrate windows of /stats, by their JSON name.
// The first is also the window of shares_per_second.
var statsWindows = [...]struct {
	name string
	d    time.Duration
}{
	{"10m", 10 * time.Minute},
	{"1h", time.Hour},
	{"24h", 24 * time.Hour},
}

// statsTTL is just under the stats tick (defaultTiming.statsEvery): each
// tick sees fresh figures.
const statsTTL = 4 * time.Second

// invalidate makes the next read go to the ledger.
func (c *statsCache) invalidate() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

func (s *Server) ledgerStats(ctx context.Context) (ledgerStats, error) {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) >= statsTTL {
		d, err := s.readLedgerStats(ctx)
		if err != nil {
			return ledgerStats{}, err
		}
		c.d, c.at = d, time.Now()
	}
	// The map goes out to callers: each gets its own.
	out := c.d
	out.hashrate = make(map[string]float64, len(c.d.hashrate))
	for k, v := range c.d.hashrate {
		out.hashrate[k] = v
	}
	return out, nil
}

func (s *Server) readLedgerStats(ctx context.Context) (ledgerStats, error) {
	windows := make([]time.Duration, len(statsWindows))
	for i, w := range statsWindows {
		windows[i] = w.d
	}
	sw, err := s.cfg.Ledger.PoolShareWindows(ctx, windows...)
	if err != nil {
		return ledgerStats{}, fmt.Errorf("pool hashrate: %w", err)
	}
	if len(sw) != len(windows) {
		return ledgerStats{}, fmt.Errorf("pool hashrate: %d windows back for %d asked", len(sw), len(windows))
	}
	d := ledgerStats{hashrate: make(map[string]float64, len(statsWindows))}
	for i, w := range statsWindows {
		d.hashrate[w.name] = finite(sw[i].Hashrate)
	}
	d.sharesPerSecond = finite(sw[0].SharesPerSecond)
	last, err := s.cfg.Ledger.RecentBlocks(ctx, 1, 0)
	if err != nil {
		return ledgerStats{}, fmt.Errorf("last block: %w", err)
	}
	if len(last) > 0 {
		b := blockFromRow(last[0])
		d.lastBlock = &b
	}
	if d.nodes, err = s.readNodes(ctx); err != nil {
		return ledgerStats{}, fmt.Errorf("pool nodes: %w", err)
	}
	return d, nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	ls, err := s.ledgerStats(r.Context())
	if err != nil {
		s.dbError(w, "stats", err)
		return
	}
	writeJSON(w, http.StatusOK, s.buildStats(ls))
}

// buildStats joins the live pool counters with the ledger's figures.
func (s *Server) buildStats(ls ledgerStats) statsResponse {
	ps := s.cfg.Pool.Stats()
	online := s.cfg.Pool.Online()
	resp := statsResponse{
		StratumURL:        s.cfg.StratumURL,
		Hashrate:          ls.hashrate,
		SharesPerSecond:   finite(ls.sharesPerSecond),
		MinersOnline:      countMiners(online),
		WorkersOnline:     ps.AuthorizedWorkers,
		Sessions:          ps.Sessions,
		Accepted:          ps.Accepted,
		Rejected:          ps.Rejected,
		NetworkHeight:     tipHeight(ps.JobHeight),
		NetworkDifficulty: finite(ps.NetworkDifficulty),
		BlocksFound:       ps.BlocksFound,
		LastBlock:         ls.lastBlock,
		SharesKept:        true,
		Limits:            s.limitsJSON(),
		NodeID:            s.cfg.NodeID,
		Protocols:         s.protocols(),
		UpdatedAt:         time.Now().UTC(),
	}
	// The whole pool: this node's live counts plus the other nodes' last
	// heartbeat.
	live := pool.NodeStats{Sessions: ps.Sessions, WorkersOnline: ps.AuthorizedWorkers, MinersOnline: resp.MinersOnline,
		Accepted: ps.Accepted, BlocksFound: ps.BlocksFound, Hashrate: finite(ps.Hashrate), JobHeight: ps.JobHeight}
	for _, n := range ps.Rejected {
		live.Rejected += n
	}
	resp.Nodes = s.withThisNode(ls.nodes, live)
	for _, n := range resp.Nodes {
		if !n.This {
			resp.MinersOnline += n.MinersOnline
			resp.WorkersOnline += n.WorkersOnline
			resp.Sessions += n.Sessions
			resp.BlocksFound += n.BlocksFound
		}
	}
	if s.cfg.Batcher != nil {
		if why := s.cfg.Batcher.Stats().Refusing; why != "" {
			resp.SharesKept, resp.SharesNotKeptReason = false, why
		}
	}
	if resp.Rejected == nil {
		resp.Rejected = map[string]uint64{}
	}
	for _, n := range resp.Rejected {
		resp.RejectedTotal += n
	}
	return resp
}

// tipHeight is the height of the chain's tip, given the height of the
// block a job builds on top of it; 0 before the first job.
func tipHeight(jobHeight int64) int64 {
	if jobHeight <= 0 {
		return 0
	}
	return jobHeight - 1
}

func countMiners(online []pool.OnlineWorker) int {
	seen := make(map[string]struct{}, len(online))
	for _, w := range online {
		seen[w.Address] = struct{}{}
	}
	return len(seen)
}

// seriesWindows are the hashrate chart ranges the API offers, each with a
// bucket that gives a readable number of points (30 to 168) and enough
// shares per bucket for a miner at the default 10 s share interval to draw
// a line rather than noise.
var seriesWindows = map[string]struct{ window, bucket time.Duration }{
	"1h":  {time.Hour, 2 * time.Minute},
	"6h":  {6 * time.Hour, 5 * time.Minute},
	"24h": {24 * time.Hour, 10 * time.Minute},
	"7d":  {7 * 24 * time.Hour, time.Hour},
}

// seriesParam reads ?window= (default 24h).
func seriesParam(w http.ResponseWriter, r *http.Request) (name string, window, bucket time.Duration, ok bool) {
	name = r.URL.Query().Get("window")
	if name == "" {
		name = "24h"
	}
	sw, ok := seriesWindows[name]
	if !ok {
		writeError(w, http.StatusBadRequest, "window must be one of 1h, 6h, 24h, 7d")
		return "", 0, 0, false
	}
	return name, sw.window, sw.bucket, true
}

type seriesResponse struct {
	Window        string    `json:"window"`
	BucketSeconds int64     `json:"bucket_seconds"`
	Time          []int64   `json:"time"`     // end of each bucket, Unix seconds
	Hashrate      []float64 `json:"hashrate"` // average H/s over the bucket
}

func (s *Server) hashrate(w http.ResponseWriter, r *http.Request) {
	name, window, bucket, ok := seriesParam(w, r)
	if !ok {
		return
	}
	pts, err := s.cfg.Ledger.PoolHashrateSeries(r.Context(), window, bucket)
	if err != nil {
		s.dbError(w, "pool hashrate series", err)
		return
	}
	resp := seriesResponse{Window: name, BucketSeconds: int64(bucket / time.Second),
		Time: make([]int64, len(pts)), Hashrate: make([]float64, len(pts))}
	for i, p := range pts {
		resp.Time[i], resp.Hashrate[i] = p.End.Unix(), finite(p.Hashrate)
	}
	writeJSON(w, http.StatusOK, resp)
}

type pageJSON struct {
	Limit   int  `json:"limit"`
	Offset  int  `json:"offset"`
	HasMore bool `json:"has_more"`
}

// pageParams reads ?limit= and ?offset=. The ledger clamps silently; the
// API says no instead, so a client asking for a million rows learns that
// it will not get them.
func pageParams(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	if limit, ok = intParam(w, r, "limit", 20, 1, maxPage); !ok {
		return 0, 0, false
	}
	if offset, ok = intParam(w, r, "offset", 0, 0, maxOffset); !ok {
		return 0, 0, false
	}
	return limit, offset, true
}

const (
	maxPage = 200
	// maxOffset bounds OFFSET, which PostgreSQL walks row by row.
	maxOffset = 100_000
)

func (s *Server) blocks(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := pageParams(w, r)
	if !ok {
		return
	}
	// One row more than asked tells whether there is a next page.
	rows, err := s.cfg.Ledger.RecentBlocks(r.Context(), limit+1, offset)
	if err != nil {
		s.dbError(w, "recent blocks", err)
		return
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	out := make([]blockJSON, len(rows))
	for i, b := range rows {
		out[i] = blockFromRow(b)
	}
	writeJSON(w, http.StatusOK, struct {
		Blocks []blockJSON `json:"blocks"`
		pageJSON
	}{out, pageJSON{limit, offset, more}})
}

type workerJSON struct {
	Name        string     `json:"name"`
	Online      bool       `json:"online"`
	Connections int        `json:"connections"`
	Protocol    string     `json:"protocol,omitempty"` // stratum1 or stratum2, while online
	Difficulty  float64    `json:"difficulty"`         // current share difficulty; 0 when offline
	Hashrate    float64    `json:"hashrate"`           // H/s over the last 10 minutes
	Shares      int64      `json:"shares_10m"`
	FirstSeen   *time.Time `json:"first_seen"` // null until its first share is in the ledger
	LastSeen    *time.Time `json:"last_seen"`
	Series      []float64  `json:"hashrate_series"` // aligned with the miner's series_time
}

type balanceJSON struct {
	Immature int64 `json:"immature_sat"`
	Mature   int64 `json:"mature_sat"`
	Paid     int64 `json:"paid_sat"`
}

type minerPaymentJSON struct {
	BatchID   string    `json:"batch_id"`
	State     string    `json:"state"`
	TxID      string    `json:"txid"`
	Amount    int64     `json:"amount_sat"`
	CreatedAt time.Time `json:"created_at"`
}

type minerResponse struct {
	Address       string             `json:"address"`
	Hashrate      float64            `json:"hashrate"` // sum of the workers' 10-minute hashrates
	WorkersOnline int                `json:"workers_online"`
	Workers       []workerJSON       `json:"workers"`
	Window        string             `json:"window"`
	BucketSeconds int64              `json:"bucket_seconds"`
	SeriesTime    []int64            `json:"series_time"`
	Balance       *balanceJSON       `json:"balance"`  // null when payouts are not enabled
	Payments      []minerPaymentJSON `json:"payments"` // newest first, at most 50
}

const minerPayments = 50

func (s *Server) miner(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.addressParam(w, r)
	if !ok {
		return
	}
	name, window, bucket, ok := seriesParam(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	rows, err := s.cfg.Ledger.Workers(ctx, addr)
	if err != nil {
		s.dbError(w, "workers", err)
		return
	}
	series, err := s.cfg.Ledger.WorkerHashrateSeries(ctx, addr, window, bucket)
	if err != nil {
		s.dbError(w, "worker hashrate series", err)
		return
	}
	resp := minerResponse{Address: addr, Window: name, BucketSeconds: int64(bucket / time.Second),
		Workers: []workerJSON{}, Payments: []minerPaymentJSON{}}

	// A worker is listed if the ledger knows it or it is connected now
	// (its first shares may still be on their way to the database).
	var online []pool.OnlineWorker
	for _, on := range s.cfg.Pool.Online() {
		if on.Address == addr {
			online = append(online, on)
		}
	}
	names := make(map[string]struct{}, len(rows)+len(online))
	for _, row := range rows {
		names[row.Name] = struct{}{}
	}
	for _, on := range online {
		names[on.Worker] = struct{}{}
	}
	for _, sr := range series {
		names[sr.Name] = struct{}{}
	}
	for name := range names {
		resp.Workers = append(resp.Workers, workerJSON{Name: name})
	}
	slices.SortFunc(resp.Workers, func(a, b workerJSON) int { return strings.Compare(a.Name, b.Name) })
	byName := make(map[string]*workerJSON, len(resp.Workers))
	for i := range resp.Workers {
		byName[resp.Workers[i].Name] = &resp.Workers[i]
	}

	for _, row := range rows {
		wj := byName[row.Name]
		wj.Hashrate, wj.Shares = finite(row.Hashrate), row.Shares
		first, last := row.FirstSeen.UTC(), row.LastSeen.UTC()
		wj.FirstSeen, wj.LastSeen = &first, &last
		resp.Hashrate += wj.Hashrate
	}
	for _, on := range online {
		wj := byName[on.Worker]
		wj.Online, wj.Connections, wj.Difficulty, wj.Protocol = true, on.Connections, finite(on.Difficulty), on.Protocol
	}
	resp.WorkersOnline = len(online)
	var times []int64
	for _, sr := range series {
		vals := make([]float64, len(sr.Points))
		times = make([]int64, len(sr.Points))
		for i, p := range sr.Points {
			vals[i], times[i] = finite(p.Hashrate), p.End.Unix()
		}
		byName[sr.Name].Series = vals
	}
	if times == nil {
		// No worker has shares in the window: the axis is still the
		// window's, so the page can draw an empty chart of the right span.
		var err error
		if times, err = ledger.SeriesAxis(time.Now(), window, bucket); err != nil {
			writeError(w, http.StatusInternalServerError, "internal error")
			s.log.Error("hashrate series axis", "err", err)
			return
		}
	}
	resp.SeriesTime = times
	for i := range resp.Workers {
		if resp.Workers[i].Series == nil {
			resp.Workers[i].Series = make([]float64, len(times))
		}
	}

	if p := s.cfg.Payouts; p != nil {
		bal, err := p.Balance(ctx, addr)
		if err != nil {
			s.dbError(w, "balance", err)
			return
		}
		resp.Balance = &balanceJSON{Immature: bal.Immature, Mature: bal.Mature, Paid: bal.Paid}
		items, err := p.PaymentsTo(ctx, addr, minerPayments)
		if err != nil {
			s.dbError(w, "payments to address", err)
			return
		}
		for _, it := range items {
			resp.Payments = append(resp.Payments, minerPaymentJSON{BatchID: it.BatchID, State: it.State,
				TxID: it.TxID, Amount: it.Amount, CreatedAt: it.CreatedAt.UTC()})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

type paymentJSON struct {
	ID          int64      `json:"id"`
	BatchID     string     `json:"batch_id"`
	State       string     `json:"state"` // planned, sent, confirmed, failed, dropped or held
	TxID        string     `json:"txid"`
	Total       int64      `json:"total_sat"`
	Fee         int64      `json:"fee_sat"`
	Items       int        `json:"items"`
	Reason      string     `json:"reason"`
	CreatedAt   time.Time  `json:"created_at"`
	SentAt      *time.Time `json:"sent_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Server) payments(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := pageParams(w, r)
	if !ok {
		return
	}
	if s.cfg.Payouts == nil {
		writeError(w, http.StatusNotImplemented, "payouts are not enabled on this pool")
		return
	}
	rows, err := s.cfg.Payouts.Payments(r.Context(), limit+1, offset)
	if err != nil {
		s.dbError(w, "payments", err)
		return
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	out := make([]paymentJSON, len(rows))
	for i, p := range rows {
		out[i] = paymentJSON{ID: p.ID, BatchID: p.BatchID, State: p.State, TxID: p.TxID, Total: p.Total,
			Fee: p.Fee, Items: p.Items, Reason: p.Reason, CreatedAt: p.CreatedAt.UTC(),
			SentAt: utcPtr(p.SentAt), ConfirmedAt: utcPtr(p.ConfirmedAt)}
	}
	writeJSON(w, http.StatusOK, struct {
		Payments []paymentJSON `json:"payments"`
		pageJSON
	}{out, pageJSON{limit, offset, more}})
}

// maxAddressLen is longer than any address (bech32 caps at 90 characters):
// anything longer is refused before it is even parsed.
const maxAddressLen = 100

// addressParam validates the {address} path parameter for the pool's
// network the way the pool validates a miner's username, so the API never
// queries, and never echoes as valid, something that cannot be paid.
func (s *Server) addressParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	addr, err := parseAddress(chi.URLParam(r, "address"), s.cfg.Network)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return addr, true
}

func parseAddress(raw string, net *chaincfg.Params) (string, error) {
	// The reason never quotes the input: it is whatever a client sent.
	bad := errors.New("not a valid " + net.Name + " address")
	if raw == "" || len(raw) > maxAddressLen || strings.ContainsAny(raw, ". \t\r\n") {
		return "", bad
	}
	u, err := pool.ParseUsername(raw, net)
	if err != nil || u.Worker != "" {
		return "", bad
	}
	return u.Address, nil
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
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
		return 0, false
	}
	return v, true
}

// dbError answers a failed ledger read. The client learns only that the
// database is unavailable; the operator gets the error in the log and in
// hashforge_database_errors_total.
func (s *Server) dbError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the client left; nobody to answer
	}
	s.metrics.dbErrors.Add(1)
	if errors.Is(err, context.DeadlineExceeded) {
		// The request's time (s.apiTimeout) ran out waiting for the
		// database.
		s.log.Warn("ledger read timed out", "what", what, "err", err)
		writeError(w, http.StatusGatewayTimeout, "request timed out")
		return
	}
	s.log.Error("ledger read failed", "what", what, "err", err)
	writeError(w, http.StatusServiceUnavailable, "database unavailable")
}

// finite maps NaN and ±Inf, which JSON cannot carry and no hashrate should
// ever be, to 0.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func (s *Server) limitsJSON() limitsJSON {
	l := s.cfg.Limits.json()
	l.guardJSON = guardLimits(s.cfg.Guard)
	return l
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here (a NaN that finite missed);
		// a half-written 200 would be worse than a clear 500.
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
