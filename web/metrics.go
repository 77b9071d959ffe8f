package web

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/record"
)

// metrics is /metrics. Counters that the pool and the ledger keep anyway
// are read from their Stats snapshots at scrape time (collector below), so
// neither package imports prometheus and nothing is counted twice. Only
// what exists nowhere else is kept here: the fan-out latency histogram and
// the block verdicts, fed from the pool's events, and this package's own
// counters.
type metrics struct {
	s   *Server
	reg *prometheus.Registry

	fanout     prometheus.Histogram
	batchSize  prometheus.Histogram
	flushTime  *prometheus.HistogramVec
	blocks     *prometheus.CounterVec
	wsConnects prometheus.Counter
	wsDropped  prometheus.Counter
	wsRefused  *prometheus.CounterVec
	dbErrors   atomic.Uint64 // failed ledger reads of the API and feed
	sub        atomic.Pointer[pool.Subscription]
}

// maxReasonLabels bounds the reject-reason label values: reasons are a
// small fixed set today, but one that ever carried free text must not
// explode the number of series.
const maxReasonLabels = 32

// payoutScrapeTimeout bounds the one query a scrape makes.
const payoutScrapeTimeout = 2 * time.Second

func newMetrics(s *Server) *metrics {
	m := &metrics{
		s:   s,
		reg: prometheus.NewRegistry(),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hashforge_job_fanout_seconds",
			Help: "Time to hand a new job to every session's send queue.",
			// 50 µs to ~1.6 s: a few sessions take microseconds, tens of
			// thousands take milliseconds; beyond a second is trouble.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hashforge_ledger_batch_size",
			Help: "Shares per batch committed to PostgreSQL (fresh or replayed from the spool).",
			// 1 to 4096: a quiet pool flushes a share or two per interval,
			// a busy one full batches (1000 by default).
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		flushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hashforge_ledger_flush_seconds",
			Help: "Duration of each attempt to write a share batch to PostgreSQL, by outcome: ok (committed) or error.",
			// 1 ms to ~16 s: a healthy COPY takes milliseconds; an attempt
			// is cut off after 10 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"outcome"}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hashforge_blocks_submitted_total",
			Help: "Blocks submitted to the node since start, by verdict: accepted, rejected (the node refused it) or unknown (no answer, or inconclusive: the chain decides).",
		}, []string{"verdict"}),
		wsConnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hashforge_ws_connections_total",
			Help: "Live feed websocket connections accepted.",
		}),
		wsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hashforge_ws_dropped_total",
			Help: "Live feed clients dropped because their queue was full.",
		}),
		wsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hashforge_ws_refused_total",
			Help: "Live feed upgrades refused, by cap: full (ws_max_clients) or per_ip (ws_max_clients_per_ip).",
		}, []string{"reason"}),
	}
	for _, v := range []string{string(feedFull), string(feedPerIP)} {
		m.wsRefused.WithLabelValues(v)
	}
	for _, v := range []string{"accepted", "rejected", "unknown"} {
		m.blocks.WithLabelValues(v) // present at 0, so rate() and alerts work from the start
	}
	for _, v := range []string{"ok", "error"} {
		m.flushTime.WithLabelValues(v)
	}
	m.reg.MustRegister(m.fanout, m.batchSize, m.flushTime, m.blocks, m.wsConnects, m.wsDropped, m.wsRefused, snapshotCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}

// observe takes what the metrics need from a pool event.
func (m *metrics) observe(ev pool.Event) {
	switch ev.Kind {
	case pool.EventJob:
		m.fanout.Observe(ev.Job.FanOut.Seconds())
	case pool.EventBlock:
		m.blocks.WithLabelValues(blockVerdict(*ev.Block)).Inc()
	}
}

// ObserveFlush feeds the ledger batch histograms: set it as the share
// batcher's ledger.BatcherOptions.OnFlush. It never blocks, and is a no-op
// on a nil Server (the dashboard is optional).
func (s *Server) ObserveFlush(n int, d time.Duration, err error) {
	if s == nil {
		return
	}
	if err != nil {
		s.metrics.flushTime.WithLabelValues("error").Observe(d.Seconds())
		return
	}
	s.metrics.flushTime.WithLabelValues("ok").Observe(d.Seconds())
	s.metrics.batchSize.Observe(float64(n))
}

func blockVerdict(b record.Block) string {
	switch {
	case b.Accepted:
		return "accepted"
	case b.Unknown:
		return "unknown"
	}
	return "rejected"
}

var (
	descShares = prometheus.NewDesc("hashforge_shares_total",
		"Shares since start by result (accepted, rejected) and, for rejected ones, reason.", []string{"result", "reason"}, nil)
	descSessions = prometheus.NewDesc("hashforge_sessions",
		"Open Stratum connections.", nil, nil)
	descWorkers = prometheus.NewDesc("hashforge_workers",
		"Authorized workers on open connections.", nil, nil)
	descHashrate = prometheus.NewDesc("hashforge_pool_hashrate_hashes_per_second",
		"This node's hashrate over the last 10 minutes, from accepted share difficulty.", nil, nil)
	descHeight = prometheus.NewDesc("hashforge_job_height",
		"Height of the block the current job builds.", nil, nil)
	descNetDiff = prometheus.NewDesc("hashforge_network_difficulty",
		"Network difficulty of the current job.", nil, nil)
	descBatches = prometheus.NewDesc("hashforge_ledger_batches_total",
		"Share batches by outcome: flushed (committed, directly or by replay), spooled, replayed, skipped (already committed), rejected (refused for good).", []string{"outcome"}, nil)
	descSharesWritten = prometheus.NewDesc("hashforge_ledger_shares_written_total",
		"Shares committed to PostgreSQL. Divided by flushed batches: the mean batch size.", nil, nil)
	descSharesLost = prometheus.NewDesc("hashforge_ledger_shares_lost_total",
		"Shares neither committed nor spooled.", nil, nil)
	descQueue = prometheus.NewDesc("hashforge_ledger_queue_length",
		"Accepted shares waiting for the batch writer.", nil, nil)
	descFlushLatency = prometheus.NewDesc("hashforge_ledger_last_flush_seconds",
		"Duration of the last successful batch write.", nil, nil)
	descSharesRefused = prometheus.NewDesc("hashforge_ledger_shares_refused_total",
		"Valid shares answered with a temporary error because neither the spool nor PostgreSQL could keep them.", nil, nil)
	descKeeping = prometheus.NewDesc("hashforge_ledger_keeping_shares",
		"1 while accepted shares can be kept (spool or database), 0 while the pool refuses them.", nil, nil)
	descSpoolUp = prometheus.NewDesc("hashforge_ledger_spool_up",
		"1 while the write-ahead spool takes appends.", nil, nil)
	descBacklog = prometheus.NewDesc("hashforge_ledger_spool_backlog_bytes",
		"Bytes of spooled shares not yet in PostgreSQL.", nil, nil)
	descSyncLatency = prometheus.NewDesc("hashforge_ledger_last_fsync_seconds",
		"Duration of the last group commit to the spool (append and fsync).", nil, nil)
	descDBErrors = prometheus.NewDesc("hashforge_database_errors_total",
		"Failed database operations by source: ledger_writer (batch write attempts), web (API and live feed reads).", []string{"source"}, nil)
	descPayouts = prometheus.NewDesc("hashforge_payout_batches",
		"Payment batches by state (planned, sent, confirmed, failed, dropped, held).", []string{"state"}, nil)
	descPayoutErrors = prometheus.NewDesc("hashforge_payout_errors_total",
		"Errors met by this node's payout processor, by kind (node, database, wallet refusals, unreachable wallet, …).", []string{"kind"}, nil)
	descPayoutBlocks = prometheus.NewDesc("hashforge_payout_blocks_total",
		"Blocks this node's payout processor moved: credited, matured (credits released), orphaned (credits reverted; unknown blocks that never made the main chain included) or found_in_chain (a block of unknown outcome found in the main chain, accepted from then on).", []string{"event"}, nil)
	descPayoutRuns = prometheus.NewDesc("hashforge_payout_runs_failed_total",
		"Payout runs that ended in an error.", nil, nil)
	descPayoutLastRun = prometheus.NewDesc("hashforge_payout_last_run_timestamp_seconds",
		"When the last payout run ended (outcome=any) and the last one without an error ended (outcome=success); absent before the first.", []string{"outcome"}, nil)
	descWSClients = prometheus.NewDesc("hashforge_ws_clients",
		"Open live feed websockets.", nil, nil)
	descNotifyFanout = prometheus.NewDesc("hashforge_notify_fanout_seconds",
		"Time from a job broadcast starting to the job being written to the socket of every session it went to (hashforge_job_fanout_seconds: handed to their queues).", nil, nil)
	descEventsDropped = prometheus.NewDesc("hashforge_web_events_dropped_total",
		"Pool events the dashboard's subscription had no room for.", nil, nil)

	descHTTPConns = prometheus.NewDesc("hashforge_http_connections",
		"Open HTTP connections (websockets included).", nil, nil)
	descHTTPIPs = prometheus.NewDesc("hashforge_http_client_ips",
		"Client IPv4 addresses and IPv6 /64s with open HTTP connections.", nil, nil)
	descHTTPRefused = prometheus.NewDesc("hashforge_http_connections_refused_total",
		"HTTP connections closed at accept, by cap: total (--http-max-conns) or per_ip (--http-max-conns-per-ip).", []string{"reason"}, nil)
	descHTTPMaxConns = prometheus.NewDesc("hashforge_http_max_connections",
		"Configured cap on open HTTP connections, by scope: total or per_ip; 0 is no cap.", []string{"scope"}, nil)
	descHTTPTimeout = prometheus.NewDesc("hashforge_http_timeout_seconds",
		"Configured HTTP server timeouts: read_header, read, write, idle; 0 is none.", []string{"timeout"}, nil)
	descHTTPMaxHeader = prometheus.NewDesc("hashforge_http_max_header_bytes",
		"Configured cap on a request's header size.", nil, nil)
	descWSMaxClients = prometheus.NewDesc("hashforge_ws_max_clients",
		"Configured cap on open live feeds, by scope: total or per_ip; 0 is no cap.", []string{"scope"}, nil)
)

// snapshotCollector reads the packages' Stats snapshots at scrape time.
type snapshotCollector struct{ m *metrics }

func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descShares, descSessions, descWorkers, descHashrate, descHeight, descNetDiff,
		descBatches, descSharesWritten, descSharesLost, descQueue, descFlushLatency, descDBErrors,
		descSharesRefused, descKeeping, descSpoolUp, descBacklog, descSyncLatency, descPayouts,
		descPayoutErrors, descPayoutBlocks, descPayoutRuns, descPayoutLastRun, descWSClients, descEventsDropped,
		descNotifyFanout, descHTTPConns, descHTTPIPs, descHTTPRefused, descHTTPMaxConns, descHTTPTimeout,
		descHTTPMaxHeader, descWSMaxClients} {
		ch <- d
	}
	for _, d := range guardDescs {
		ch <- d
	}
	for _, d := range nodeDescs {
		ch <- d
	}
	ch <- descProtoSessions
	ch <- descProtoShares
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	m, cfg := c.m, c.m.s.cfg
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	ps := cfg.Pool.Stats()
	counter(descShares, float64(ps.Accepted), "accepted", "")
	reasons := make([]string, 0, len(ps.Rejected))
	for r := range ps.Rejected {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	var other uint64
	for i, r := range reasons {
		if i < maxReasonLabels-1 {
			counter(descShares, float64(ps.Rejected[r]), "rejected", r)
		} else {
			other += ps.Rejected[r]
		}
	}
	if other > 0 {
		counter(descShares, float64(other), "rejected", "other")
	}
	gauge(descSessions, float64(ps.Sessions))
	gauge(descWorkers, float64(ps.AuthorizedWorkers))
	if cfg.Nodes != nil {
		live := pool.NodeStats{Sessions: ps.Sessions, WorkersOnline: ps.AuthorizedWorkers, MinersOnline: countMiners(cfg.Pool.Online())}
		m.s.collectNodes(live, gauge)
	}
	gauge(descHashrate, finite(ps.Hashrate))
	gauge(descHeight, float64(ps.JobHeight))
	gauge(descNetDiff, finite(ps.NetworkDifficulty))
	if h := ps.NotifyFanout; len(h.Bounds) > 0 {
		buckets := make(map[float64]uint64, len(h.Bounds))
		for i, b := range h.Bounds {
			buckets[b] = h.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(descNotifyFanout, h.Count, h.Sum, buckets)
	}

	if cfg.Batcher != nil {
		bs := cfg.Batcher.Stats()
		counter(descBatches, float64(bs.BatchesFlushed), "flushed")
		counter(descBatches, float64(bs.BatchesSpooled), "spooled")
		counter(descBatches, float64(bs.BatchesReplayed), "replayed")
		counter(descBatches, float64(bs.BatchesSkipped), "skipped")
		counter(descBatches, float64(bs.BatchesRejected), "rejected")
		counter(descSharesWritten, float64(bs.SharesWritten))
		counter(descSharesLost, float64(bs.SharesLost))
		gauge(descQueue, float64(bs.QueueLength))
		gauge(descFlushLatency, bs.LastFlushLatency.Seconds())
		counter(descSharesRefused, float64(bs.SharesRefused))
		gauge(descKeeping, boolGauge(bs.Refusing == ""))
		gauge(descSpoolUp, boolGauge(bs.SpoolUp))
		gauge(descBacklog, float64(bs.LogBacklogBytes))
		gauge(descSyncLatency, bs.LastSyncLatency.Seconds())
		counter(descDBErrors, float64(bs.FlushErrors), "ledger_writer")
	}

	if cfg.Payouts != nil {
		ctx, cancel := context.WithTimeout(context.Background(), payoutScrapeTimeout)
		counts, err := cfg.Payouts.PaymentStateCounts(ctx)
		cancel()
		if err != nil {
			// Leaving the series out (rather than reporting 0) keeps a
			// database outage from looking like "no failed payments".
			m.dbErrors.Add(1)
			m.s.log.Warn("metrics: payment batches by state", "err", err)
		} else {
			for _, st := range []string{"planned", "sent", "confirmed", "failed", "dropped", "held"} {
				gauge(descPayouts, float64(counts[st]), st)
			}
		}
	}
	if cfg.Processor != nil {
		st := cfg.Processor.Stats()
		for _, k := range payout.ErrorKinds {
			counter(descPayoutErrors, float64(st.ErrorsByKind[k]), k)
		}
		counter(descPayoutBlocks, float64(st.BlocksCredited), "credited")
		counter(descPayoutBlocks, float64(st.BlocksMatured), "matured")
		counter(descPayoutBlocks, float64(st.BlocksOrphaned), "orphaned")
		counter(descPayoutBlocks, float64(st.BlocksFoundInChain), "found_in_chain")
		counter(descPayoutRuns, float64(st.Errors))
		if !st.LastRun.IsZero() {
			gauge(descPayoutLastRun, float64(st.LastRun.UnixNano())/1e9, "any")
		}
		if !st.LastSuccess.IsZero() {
			gauge(descPayoutLastRun, float64(st.LastSuccess.UnixNano())/1e9, "success")
		}
	}
	counter(descDBErrors, float64(m.dbErrors.Load()), "web")
	gauge(descWSClients, float64(m.s.hub.count()))
	if sub := m.sub.Load(); sub != nil {
		counter(descEventsDropped, float64(sub.Dropped()))
	}

	l := cfg.Limits
	gauge(descHTTPMaxConns, float64(l.MaxConns), "total")
	gauge(descHTTPMaxConns, float64(l.MaxConnsPerIP), "per_ip")
	gauge(descHTTPTimeout, l.ReadHeaderTimeout.Seconds(), "read_header")
	gauge(descHTTPTimeout, l.ReadTimeout.Seconds(), "read")
	gauge(descHTTPTimeout, l.WriteTimeout.Seconds(), "write")
	gauge(descHTTPTimeout, l.IdleTimeout.Seconds(), "idle")
	gauge(descHTTPMaxHeader, float64(l.MaxHeaderBytes))
	gauge(descWSMaxClients, float64(l.MaxFeeds), "total")
	gauge(descWSMaxClients, float64(l.MaxFeedsPerIP), "per_ip")
	// The connection counts exist while Serve runs (a test may serve
	// the handler by other means).
	if ln := m.s.conns.Load(); ln != nil {
		st := ln.Stats()
		gauge(descHTTPConns, float64(st.Open))
		gauge(descHTTPIPs, float64(st.IPs))
		counter(descHTTPRefused, float64(st.RefusedTotal), "total")
		counter(descHTTPRefused, float64(st.RefusedPerIP), "per_ip")
	}
	if cfg.Guard != nil {
		collectGuard(cfg.Guard, counter, gauge)
	}
	m.s.collectProtocols(counter, gauge)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
