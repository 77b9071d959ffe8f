package worker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// Config configures a Miner. The zero value of every field but URLs and User
// is a sensible default.
type Config struct {
	// URLs are pools in priority order (stratum+tcp://host:port). The miner
	// fails over down the list and returns to an earlier pool when it is
	// reachable again.
	URLs []string
	User string // payout address.worker
	Pass string // default "x"

	// SuggestDiff, when > 0, is sent as mining.suggest_difficulty.
	SuggestDiff float64
	// NoVersionRolling skips mining.configure.
	NoVersionRolling bool
	// UserAgent is sent in mining.subscribe and client.get_version.
	UserAgent string

	Threads int    // CPU hashing threads; ≤ 0 means every core
	Impl    string // force a SHA-256d implementation; "" picks the fastest
	Device  string // "cpu" (default), "opencl:N", or a comma-separated list
	Slicing Slicing

	// Devices, when set, replaces Device/Threads/Impl (tests, embedding).
	Devices []Device

	// Benchmark mines a synthetic job without a pool.
	Benchmark bool
	// BenchmarkDiff is the synthetic job's share difficulty (default 1/256:
	// a share every few seconds per core).
	BenchmarkDiff float64

	StatusInterval time.Duration // default 10 s
	Quiet          bool          // no status lines (the summary still prints)
	JSONStats      bool          // status lines as JSON objects
	Output         io.Writer     // status lines; default os.Stdout
	Logger         *slog.Logger  // default slog.Default()

	// ProbeInterval is how often a higher-priority pool is tried while
	// mining on a backup (default 60 s).
	ProbeInterval time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential reconnect
	// delay (defaults 1 s and 30 s).
	BackoffMin, BackoffMax time.Duration
	DialTimeout            time.Duration // default 10 s
	CallTimeout            time.Duration // replies to our requests; default 30 s
	ConfigureTimeout       time.Duration // mining.configure; default 5 s

	// nonceBits shrinks the nonce space per header so tests reach the
	// extranonce2 and version-rolling stages quickly; 0 means 32.
	nonceBits uint
	// blockPause bounds the wait for a new job after a found block;
	// defaultBlockPause when zero.
	blockPause time.Duration
	// stableSession is how long an authorized session must last to count
	// as working; defaultStableSession when zero.
	stableSession time.Duration
}

// Version is reported as the user agent.
var Version = "0.1"

func (c *Config) setDefaults() {
	if c.Pass == "" {
		c.Pass = "x"
	}
	if c.UserAgent == "" {
		c.UserAgent = "hashforge/" + Version
	}
	c.UserAgent = sanitizeUserAgent(c.UserAgent)
	if c.BenchmarkDiff <= 0 {
		c.BenchmarkDiff = 1.0 / 256
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.Output == nil {
		c.Output = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 60 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.blockPause <= 0 {
		c.blockPause = defaultBlockPause
	}
	if c.stableSession <= 0 {
		c.stableSession = defaultStableSession
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.ConfigureTimeout <= 0 {
		c.ConfigureTimeout = 5 * time.Second
	}
	c.Slicing = c.Slicing.withDefaults()
}

// Miner is the bundled miner: devices, the work scheduler and the pool
// connection.
type Miner struct {
	cfg     Config
	log     *slog.Logger
	devices []Device
	meters  []*meter
	total   meter
	sched   *scheduler
	// queueFullWarned is when (unix nanoseconds) a full share queue was
	// last reported; queueFullDropped counts candidates dropped since.
	queueFullWarned  atomic.Int64
	queueFullDropped atomic.Uint64
	pools            []*poolEntry
	started          time.Time

	candidates chan candidate
	inflight   atomic.Int64

	// Every share sent ends in exactly one of accepted, rejected, stale or
	// lost; discarded shares were never sent.
	submitted, accepted, rejected, stale, lost atomic.Uint64
	discarded, hwErrors                        atomic.Uint64

	mu        sync.Mutex
	cur       *session
	poolName  string
	diff      float64
	bestShare float64
}

// poolEntry is one configured pool and what survives across its sessions.
// Only the pool loop, and the session it runs, touch it.
type poolEntry struct {
	url      string
	redirect string // set by client.reconnect until it fails
	resume   resumeState
	// probeHold delays the probes of a pool the miner left because its
	// sessions ended early: one probe interval, doubling each time (up to
	// maxProbeHold probe intervals), reset by a session that lasts.
	probeHold  backoff.Backoff
	probeAfter time.Time
}

type resumeState struct{ sessionID string }

type candidate struct {
	slice *Slice
	nonce uint32
}

// New validates cfg and prepares the devices; nothing runs until Run.
func New(cfg Config) (*Miner, error) {
	cfg.setDefaults()
	m := &Miner{
		cfg:        cfg,
		log:        cfg.Logger,
		sched:      newScheduler(cfg.nonceBits, cfg.Logger),
		candidates: make(chan candidate, 1024),
	}
	if !cfg.Benchmark {
		if len(cfg.URLs) == 0 {
			return nil, errors.New("no pool url (use --url stratum+tcp://host:port, or --benchmark)")
		}
		if cfg.User == "" {
			return nil, errors.New("no user (use --user ADDRESS.WORKER)")
		}
		for _, u := range cfg.URLs {
			if _, err := parseStratumURL(u); err != nil {
				return nil, err
			}
			m.pools = append(m.pools, &poolEntry{url: u,
				probeHold: backoff.Backoff{Min: cfg.ProbeInterval, Max: maxProbeHold * cfg.ProbeInterval}})
		}
		m.poolName = redactURL(cfg.URLs[0])
	} else {
		m.poolName = "benchmark"
	}
	if len(cfg.Devices) > 0 {
		m.devices = cfg.Devices
	} else {
		devs, err := ParseDevices(cfg.Device, cfg.Threads, cfg.Impl, cfg.Slicing)
		if err != nil {
			return nil, err
		}
		m.devices = devs
	}
	for range m.devices {
		m.meters = append(m.meters, &meter{})
	}
	return m, nil
}

// deviceResults feeds one device's output into the miner.
type deviceResults struct {
	m     *Miner
	meter *meter
}

func (r deviceResults) HWErrors(n uint64) {
	r.m.hwErrors.Add(n)
	r.m.log.Warn("device returned nonces that do not meet their target (hardware errors)", "count", n)
}

func (r deviceResults) Hashed(n uint64) {
	r.meter.hashes.Add(n)
	r.m.total.hashes.Add(n)
}

func (r deviceResults) Found(s *Slice, nonce uint32) {
	select {
	case r.m.candidates <- candidate{s, nonce}:
	default:
		// Only a broken kernel or an absurdly easy target (regtest, where
		// every hash is a block) floods this; hashing must not stall on it,
		// nor the log drown in it: a line a minute at most.
		n := r.m.queueFullDropped.Add(1)
		now := time.Now().UnixNano()
		last := r.m.queueFullWarned.Load()
		if now-last >= int64(time.Minute) && r.m.queueFullWarned.CompareAndSwap(last, now) {
			r.m.queueFullDropped.Store(0)
			r.m.log.Warn("share queue full, dropping candidates (target far easier than the hashrate)",
				"job", s.JobID, "dropped", n)
		}
	}
}

// Run mines until ctx is cancelled, then prints a summary. It returns nil on
// cancellation.
func (m *Miner) Run(ctx context.Context) error {
	m.mu.Lock()
	m.started = time.Now()
	m.mu.Unlock()
	for _, d := range m.devices {
		if cd, ok := d.(*CPUDevice); ok {
			m.log.Info("device", "name", cd.Name(), "threads", cd.Threads(), "sha256d", cd.Implementation())
		} else {
			m.log.Info("device", "name", d.Name())
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, len(m.devices)+1)
	for i, d := range m.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx, m.sched, deviceResults{m, m.meters[i]}); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("device %s: %w", d.Name(), err)
			}
		}()
	}
	wg.Add(2)
	go func() { defer wg.Done(); m.submitLoop(ctx) }()
	go func() { defer wg.Done(); m.statusLoop(ctx) }()

	go func() {
		var err error
		if m.cfg.Benchmark {
			err = m.benchmark(ctx)
		} else {
			err = m.poolLoop(ctx)
		}
		if err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	writeStatus(m.cfg.Output, "summary", m.Stats(), m.cfg.JSONStats)
	return err
}

// Stats returns a snapshot. The hashrates are those of the last status
// sample.
func (m *Miner) Stats() Stats {
	m.mu.Lock()
	s := Stats{
		Time:       time.Now(),
		Pool:       m.poolName,
		Connected:  m.cur != nil || m.cfg.Benchmark,
		Difficulty: m.diff,
		BestShare:  m.bestShare,
	}
	if !m.started.IsZero() {
		s.Uptime = s.Time.Sub(m.started)
	}
	m.mu.Unlock()
	s.Hashrate = m.total.current()
	s.Hashes = m.total.hashes.Load()
	for i, d := range m.devices {
		s.Devices = append(s.Devices, DeviceStats{Name: d.Name(), Hashrate: m.meters[i].current(), Hashes: m.meters[i].hashes.Load()})
	}
	// Read the outcomes before the sends, so a share in flight never makes
	// the outcomes add up to more than was submitted.
	s.Accepted = m.accepted.Load()
	s.Rejected = m.rejected.Load()
	s.Stale = m.stale.Load()
	s.Lost = m.lost.Load()
	s.Submitted = m.submitted.Load()
	s.Discarded = m.discarded.Load()
	s.HWErrors = m.hwErrors.Load()
	return s
}

// statusLoop samples the meters every second, or every StatusInterval when
// that is shorter (so the average is smooth whatever the print interval),
// and prints every StatusInterval.
func (m *Miner) statusLoop(ctx context.Context) {
	sample := time.NewTicker(min(time.Second, m.cfg.StatusInterval))
	defer sample.Stop()
	next := time.Now().Add(m.cfg.StatusInterval)
	now := time.Now()
	m.total.sample(now)
	for _, mt := range m.meters {
		mt.sample(now)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sample.C:
			m.total.sample(now)
			for _, mt := range m.meters {
				mt.sample(now)
			}
			if !now.Before(next) {
				next = now.Add(m.cfg.StatusInterval)
				if !m.cfg.Quiet {
					writeStatus(m.cfg.Output, "status", m.Stats(), m.cfg.JSONStats)
				}
			}
		}
	}
}

func (m *Miner) setDifficulty(d float64) {
	m.mu.Lock()
	m.diff = d
	m.mu.Unlock()
}

func (m *Miner) isCurrent(s *session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur == s
}

func (m *Miner) sessionUp(s *session) {
	m.mu.Lock()
	m.cur = s
	m.poolName = redactURL(s.addr)
	m.mu.Unlock()
}

// sessionDown idles the devices: work from a closed connection can no
// longer be submitted, and the next session brings fresh work.
func (m *Miner) sessionDown(s *session) {
	m.mu.Lock()
	if m.cur != s {
		m.mu.Unlock()
		return
	}
	m.cur = nil
	m.mu.Unlock()
	m.sched.set(nil, [32]byte{})
}

// publish installs new work if s is still the live session. The check and
// the install happen under m.mu so a session that just went down cannot
// overwrite its successor's work.
func (m *Miner) publish(s *session, t *template, target [32]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != s {
		return
	}
	m.sched.set(t, target)
}

// submitLoop re-checks every candidate with the reference hash and sends
// the good ones, one at a time and in order. The staleness check runs right
// before each send, so once the miner has seen a clean job (or a new
// extranonce or mask) nothing built on the old work goes out, even if it
// was found earlier and queued behind a slow reply. Shares wait at most a
// round trip each; at the share rates pools set with vardiff (seconds
// apart) that costs nothing.
func (m *Miner) submitLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-m.candidates:
			m.handleCandidate(ctx, c)
		}
	}
}

func (m *Miner) handleCandidate(ctx context.Context, c candidate) {
	sl := c.slice
	header := sl.Header
	binary.LittleEndian.PutUint32(header[76:], c.nonce)
	// One reference hash (the generic path) per candidate, checked against
	// each target below: the kernel's own verdict is never trusted.
	hash := pow.SHA256d(header[:])
	if !sha256d.Meets(&hash, &sl.Target) {
		m.hwErrors.Add(1)
		m.log.Warn("kernel returned a nonce that does not meet its target (hardware error)",
			"job", sl.JobID, "nonce", hexUint32(c.nonce))
		return
	}
	if m.cfg.Benchmark {
		m.noteBest(&hash)
		m.submitted.Add(1)
		m.accepted.Add(1)
		return
	}
	s, _ := sl.tmpl.owner.(*session)
	if s == nil || !m.isCurrent(s) {
		m.discarded.Add(1)
		m.log.Debug("discarding share from a closed connection", "job", sl.JobID)
		return
	}
	if m.sched.solvedBy(sl.tmpl) {
		m.discarded.Add(1)
		m.log.Debug("discarding a share of a job whose block is found", "job", sl.JobID)
		return
	}
	params, target, err := s.prepareSubmit(sl, c.nonce)
	if err != nil {
		m.discarded.Add(1)
		m.log.Debug("discarding stale share", "job", sl.JobID, "nonce", hexUint32(c.nonce))
		return
	}
	if !sha256d.Meets(&hash, &target) {
		// The difficulty went up after the slice was cut: the candidate
		// was fine for the old target and is simply not a share any more.
		m.log.Debug("candidate below the current share target", "job", sl.JobID)
		return
	}
	m.noteBest(&hash)
	paused := false
	if sha256d.Meets(&hash, &sl.tmpl.job.NetTarget) {
		paused = m.sched.solved(sl)
		m.log.Info("block candidate found, pausing until the next job", "job", sl.JobID, "hash", pow.HashString(&hash))
	}
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	accepted := m.submit(ctx, s, params, &hash)
	switch {
	case paused && !accepted:
		m.sched.resume(sl.tmpl)
	case paused:
		// A pool that took the share but whose node did not take the block
		// (or that judges blocks by another target) may not send a new job
		// for a while: never sit idle longer than the block pause.
		t := sl.tmpl
		time.AfterFunc(m.cfg.blockPause, func() { m.sched.resume(t) })
	}
}

// defaultBlockPause bounds how long devices wait for a new job after a block
// was found and accepted. Pools announce the next block's job within
// milliseconds of their own block; two seconds is plenty.
const defaultBlockPause = 2 * time.Second

// submit sends one share and reports whether the pool accepted it.
func (m *Miner) submit(ctx context.Context, s *session, params []any, hash *[32]byte) bool {
	// The submit outlives a cancelled run by a little, so shares found just
	// before Ctrl-C still count.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CallTimeout)
	defer cancel()
	m.submitted.Add(1)
	res, err := s.client.Call(cctx, "mining.submit", params)
	job, nonce := params[1], params[4]
	var serr *stratum.Error
	switch {
	case errors.As(err, &serr):
		if serr.Code == stratum.CodeJobNotFound {
			m.stale.Add(1)
		} else {
			m.rejected.Add(1)
		}
		m.log.Warn("share rejected", "job", job, "nonce", nonce, "code", serr.Code, "reason", serr.Message)
	case err != nil:
		// Timed out, or the connection ended first: the pool may or may
		// not have counted it, nobody will say.
		m.lost.Add(1)
		m.log.Warn("share lost: no reply from pool", "job", job, "nonce", nonce, "err", err)
	case string(res) == "true":
		n := m.accepted.Add(1)
		m.log.Info("share accepted", "job", job, "nonce", nonce, "hash", pow.HashString(hash),
			"accepted", n, "rejected", m.rejected.Load())
		return true
	default:
		m.rejected.Add(1)
		m.log.Warn("share rejected", "job", job, "nonce", nonce, "result", truncate(string(res), 64))
	}
	return false
}

// drainSubmits gives shares already sent a moment to be answered before a
// shutdown closes the connection, so the summary counts them.
func (m *Miner) drainSubmits(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for m.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *Miner) noteBest(h *[32]byte) {
	d := pow.HashDifficulty(h)
	m.mu.Lock()
	if d > m.bestShare {
		m.bestShare = d
	}
	m.mu.Unlock()
}

// defaultStableSession is how long an authorized session must last before
// its end counts as a dropped connection rather than a failing pool. A pool
// that authorizes and then closes at once must not be redialled every
// second forever: it is treated like an unreachable one.
const defaultStableSession = 30 * time.Second

// maxProbeHold caps the growing delay, in probe intervals, before a pool
// whose sessions kept ending early is probed again.
const maxProbeHold = 8

// poolLoop keeps one session alive, in priority order with failover:
//   - a session that was working (authorized and up for at least
//     stableSession) and dropped is retried on the same pool first, after a
//     short jittered delay (its session id lets the pool resume it);
//   - a pool that cannot be reached, refuses the handshake, or ends the
//     session within stableSession is skipped for the next one, and after a
//     full round of failures the miner waits a jittered, exponentially
//     growing delay (BackoffMin doubling up to BackoffMax);
//   - while on a backup, earlier pools are probed every ProbeInterval (a
//     pool left for short sessions only after its growing probe hold) and
//     the miner moves back as soon as one completes subscribe and
//     authorize.
func (m *Miner) poolLoop(ctx context.Context) error {
	idx, failed := 0, 0
	retry := backoff.Backoff{Min: m.cfg.BackoffMin, Max: m.cfg.BackoffMax}
	for ctx.Err() == nil {
		p := m.pools[idx]
		addr := p.url
		if p.redirect != "" {
			addr = p.redirect
		}
		sctx, cancel := context.WithCancel(ctx)
		switchTo := make(chan int, 1)
		if idx > 0 {
			// The probe gets its own copy of what it needs: poolLoop
			// changes the entries once this session is over, while the
			// probe may still be finishing.
			after := make([]time.Time, idx)
			for i := range after {
				after[i] = m.pools[i].probeAfter
			}
			go m.probe(sctx, after, switchTo, cancel)
		}
		m.mu.Lock()
		m.poolName = redactURL(addr)
		m.mu.Unlock()
		s := newSession(m, p, addr)
		res := s.run(sctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case to := <-switchTo:
			m.log.Info("higher-priority pool is back, switching", "pool", redactURL(m.pools[to].url))
			idx, failed = to, 0
			retry.Reset()
			continue
		default:
		}
		stable := res.authorized && res.lived >= m.cfg.stableSession
		if stable {
			p.probeHold.Reset()
			p.probeAfter = time.Time{}
		}
		switch {
		case res.reconnect != nil:
			p.redirect = res.reconnect.addr
			wait := res.reconnect.wait
			if stable {
				failed = 0
				retry.Reset()
			} else {
				// A pool that sends the miner away right after authorizing,
				// again and again, gets the growing backoff too.
				wait = max(wait, backoff.Spread(retry.Next()))
			}
			if !backoff.Sleep(ctx, wait) {
				return nil
			}
			continue
		case stable:
			m.log.Warn("pool connection lost, reconnecting", "pool", redactURL(addr), "err", res.err)
			failed = 0
			retry.Reset()
			if !backoff.Sleep(ctx, backoff.Spread(m.cfg.BackoffMin)) {
				return nil
			}
			continue
		case res.authorized:
			p.probeAfter = time.Now().Add(p.probeHold.Next())
			m.log.Warn("pool ended the session soon after authorizing, counting it as a failure",
				"pool", redactURL(addr), "lived", res.lived.Round(time.Millisecond), "err", res.err)
		default:
			m.log.Warn("pool unavailable", "pool", redactURL(addr), "err", res.err)
		}
		if p.redirect != "" {
			// The address a pool sent us to does not work: go back to the
			// configured one before giving up on this pool.
			p.redirect = ""
			continue
		}
		failed++
		idx = (idx + 1) % len(m.pools)
		if failed >= len(m.pools) {
			failed = 0
			if len(m.pools) > 1 {
				idx = 0
			}
			delay := retry.Next()
			m.log.Info("all pools unavailable, waiting", "delay", delay.Round(time.Millisecond))
			if !backoff.Sleep(ctx, backoff.Spread(delay)) {
				return nil
			}
		}
	}
	return nil
}

// probe tries the pools before the current one every ProbeInterval (each
// not before its after time); when one completes subscribe and authorize it
// reports its index and ends the current session.
func (m *Miner) probe(ctx context.Context, after []time.Time, switchTo chan<- int, stop context.CancelFunc) {
	t := time.NewTicker(m.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for i := range after {
			if now.Before(after[i]) {
				continue
			}
			if m.probeOne(ctx, m.pools[i].url) {
				switchTo <- i
				stop()
				return
			}
		}
	}
}

// probeOne reports whether a pool would take this miner now: it answers
// mining.subscribe with a usable result and accepts mining.authorize. A pool
// that only subscribes (say, one refusing the worker) must not pull the
// miner off a working backup.
func (m *Miner) probeOne(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	c, err := dialPool(ctx, addr, m.log)
	if err != nil {
		return false
	}
	defer c.Close()
	// Jobs and difficulty arrive after authorize; nobody mines them, but
	// the client holds replies back while its notification queue is full.
	go func() {
		for range c.Notifications() {
		}
	}()
	res, err := c.Call(ctx, "mining.subscribe", []any{m.cfg.UserAgent})
	if err != nil {
		return false
	}
	if _, err := stratum.ParseSubscribeResult(res); err != nil {
		return false
	}
	res, err = c.Call(ctx, "mining.authorize", []any{m.cfg.User, m.cfg.Pass})
	if err != nil {
		m.log.Debug("probe: pool refused mining.authorize", "pool", redactURL(addr), "err", err)
		return false
	}
	var ok bool
	if json.Unmarshal(res, &ok) != nil || !ok {
		m.log.Debug("probe: pool refused the worker", "pool", redactURL(addr), "result", truncate(string(res), 64))
		return false
	}
	return true
}
