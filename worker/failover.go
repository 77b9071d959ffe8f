package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/stratum"
)

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
	if isV2URL(addr) {
		return m.probeV2(ctx, addr)
	}
	c, err := dialPool(ctx, addr, m.cfg.TLS, m.log)
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
