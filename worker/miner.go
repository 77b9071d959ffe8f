package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
)

// Config configures a Miner. The zero value of every field but URLs and User
// is a sensible default.
type Config struct {
	// URLs are pools in priority order (stratum+tcp://host:port,
	// stratum+ssl://host:port or, for Stratum V2,
	// stratum2+tcp://host:port/AUTHORITY_PUBKEY). The miner fails over down
	// the list and returns to an earlier pool when it is reachable again.
	URLs []string
	User string // payout address.worker
	Pass string // default "x"

	// SuggestDiff, when > 0, is sent as mining.suggest_difficulty.
	SuggestDiff float64
	// NoVersionRolling skips mining.configure.
	NoVersionRolling bool
	// V2Standard opens standard (header-only) channels on Stratum V2
	// pools instead of extended ones: the pool computes each job's merkle
	// root, the miner rolls nonces only (no extranonce; versions only
	// where the pool allows it).
	V2Standard bool
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
	// TLS is what stratum+ssl pools are dialled with (its ServerName
	// is set per pool when empty); nil verifies against the system
	// roots. stratum+tcp pools ignore it, so a failover list may mix both.
	TLS              *tls.Config
	CallTimeout      time.Duration // replies to our requests; default 30 s
	ConfigureTimeout time.Duration // mining.configure; default 5 s

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
