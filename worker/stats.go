package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the miner, for status lines, the summary and
// callers such as `hashforge dev`.
type Stats struct {
	Time       time.Time     `json:"time"`
	Uptime     time.Duration `json:"uptime_ns"`
	Pool       string        `json:"pool"`
	Connected  bool          `json:"connected"`
	Difficulty float64       `json:"difficulty"`
	Hashrate   float64       `json:"hashrate"` // H/s, exponential moving average
	Hashes     uint64        `json:"hashes"`
	Devices    []DeviceStats `json:"devices"`
	// Submitted counts shares sent with mining.submit. Each ends as exactly
	// one of Accepted, Rejected, Stale or Lost, so once no reply is pending
	// (always in the summary) Accepted+Rejected+Stale+Lost == Submitted.
	Submitted uint64 `json:"submitted"`
	Accepted  uint64 `json:"accepted"`
	// Rejected counts shares the pool refused for any reason but a stale
	// job (including a false result without an error).
	Rejected uint64 `json:"rejected"`
	// Stale counts shares the pool refused as stale (21, job not found).
	Stale uint64 `json:"stale"`
	// Lost counts shares sent that got no reply: the call timed out or the
	// connection ended first.
	Lost uint64 `json:"lost"`
	// Discarded counts shares found on work that was superseded (a clean
	// job, a new extranonce or mask, a closed connection) before they could
	// be sent; they never reach the pool.
	Discarded uint64 `json:"discarded"`
	// HWErrors counts kernel results the reference hash did not confirm.
	HWErrors  uint64  `json:"hw_errors"`
	BestShare float64 `json:"best_share"`
}

// DeviceStats is one device's share of the work.
type DeviceStats struct {
	Name     string  `json:"name"`
	Hashrate float64 `json:"hashrate"`
	Hashes   uint64  `json:"hashes"`
}

// meter turns a hash counter into an exponential moving average rate. The
// time constant (tau) makes the average comparable across sample intervals.
type meter struct {
	hashes atomic.Uint64

	mu       sync.Mutex
	last     uint64
	lastTime time.Time
	rate     float64
	primed   bool
}

const hashrateTau = 10 * time.Second

func (m *meter) sample(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.hashes.Load()
	if m.lastTime.IsZero() {
		m.last, m.lastTime = total, now
		return m.rate
	}
	dt := now.Sub(m.lastTime).Seconds()
	if dt <= 0 {
		return m.rate
	}
	inst := float64(total-m.last) / dt
	if !m.primed {
		m.rate, m.primed = inst, true
	} else {
		alpha := 1 - math.Exp(-dt/hashrateTau.Seconds())
		m.rate += alpha * (inst - m.rate)
	}
	m.last, m.lastTime = total, now
	return m.rate
}

func (m *meter) current() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rate
}

// FormatHashrate renders H/s with an SI prefix.
func FormatHashrate(h float64) string {
	units := []string{"H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"}
	i := 0
	for h >= 1000 && i < len(units)-1 {
		h /= 1000
		i++
	}
	return fmt.Sprintf("%.2f %s", h, units[i])
}

func formatDiff(d float64) string {
	switch {
	case d == 0:
		return "-"
	case d >= 1e6:
		return fmt.Sprintf("%.3gM", d/1e6)
	case d >= 1000:
		return fmt.Sprintf("%.3gk", d/1000)
	default:
		return fmt.Sprintf("%.4g", d)
	}
}

// writeStatus prints one status line: human text, or one JSON object per
// line for --json-stats.
func writeStatus(w io.Writer, kind string, s Stats, asJSON bool) {
	if asJSON {
		b, err := json.Marshal(struct {
			Kind string `json:"kind"`
			Stats
		}{kind, s})
		if err == nil {
			fmt.Fprintf(w, "%s\n", b)
		}
		return
	}
	var devs []string
	if len(s.Devices) > 1 {
		for _, d := range s.Devices {
			devs = append(devs, d.Name+" "+FormatHashrate(d.Hashrate))
		}
	}
	line := fmt.Sprintf("%s %s", kind, FormatHashrate(s.Hashrate))
	if len(devs) > 0 {
		line += " [" + strings.Join(devs, ", ") + "]"
	}
	pool := s.Pool
	if !s.Connected {
		pool += " (disconnected)"
	}
	line += fmt.Sprintf(" | A:%d R:%d S:%d", s.Accepted, s.Rejected, s.Stale)
	if s.Lost > 0 {
		line += fmt.Sprintf(" L:%d", s.Lost)
	}
	if s.Discarded > 0 {
		line += fmt.Sprintf(" D:%d", s.Discarded)
	}
	if s.HWErrors > 0 {
		line += fmt.Sprintf(" HW:%d", s.HWErrors)
	}
	line += fmt.Sprintf(" | diff %s best %s | %s", formatDiff(s.Difficulty), formatDiff(s.BestShare), pool)
	if kind == "summary" {
		line += fmt.Sprintf(" | %d hashes in %s", s.Hashes, s.Uptime.Round(time.Second))
	}
	fmt.Fprintln(w, line)
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
