// Package loadtest simulates many Stratum V1 miners against a pool and
// reports what the pool did with them: how many shares it accepted and
// refused (and why), how fast it answered, how evenly its jobs reached the
// sessions, and what CPU both sides spent. It is an operator's sizing tool
// (`hashforge loadtest`) and a library other tests drive in-process
// through Run.
//
// The generator is built to stay cheap next to the pool it measures: one
// goroutine per miner plus its reader, shares ground at the pool's own
// (tiny, in a test) difficulty with crypto/sha256, submits written with one
// write from reused buffers, and the common reply parsed by hand.
package loadtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Mode is what each simulated miner does once it has work.
type Mode string

const (
	// ModeAccept grinds valid shares at the difficulty the pool set.
	ModeAccept Mode = "accept"
	// ModeReject sends shares whose hash misses the share target, so the
	// pool pays for the full check and answers "low difficulty" (23).
	ModeReject Mode = "reject"
	// ModeIdle subscribes, authorizes, takes work and holds the
	// connection: what a pool's memory per session is measured with.
	ModeIdle Mode = "idle"
)

// ParseMode accepts accept, reject or idle.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeAccept, ModeReject, ModeIdle:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want accept, reject or idle", s)
}

// DefaultUser is the placeholder miners authorize as when no user is
// given: a mainnet address nobody can spend from (BIP 173's P2WPKH
// example). A pool on another network refuses it; pass --user then.
const DefaultUser = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"

// Config is one load test run.
type Config struct {
	// URL is the pool, stratum+tcp://HOST:PORT (or HOST:PORT), or
	// stratum+ssl://HOST:PORT for TLS.
	URL string
	// TLS is what a stratum+ssl pool is dialled with (ServerName
	// defaults to the URL's host); nil verifies against the system roots.
	TLS *tls.Config
	// Miners is how many sessions to open.
	Miners int
	// Duration bounds the run from its start, connecting included; the
	// wait for outstanding replies (DrainTimeout) comes after it.
	Duration time.Duration
	// Rate is shares per second per miner; 0 is as fast as Window allows.
	Rate float64
	// User is ADDRESS[.worker]; without a worker part each miner appends
	// ".lt<N>", N its index from 0. Empty means DefaultUser.
	User string
	Pass string
	Mode Mode
	// SourceIPs are local addresses connections are bound to, round-robin
	// (each address has its own 64k ephemeral ports). Empty: the kernel
	// chooses.
	SourceIPs []netip.Addr
	// PaceGrid, with Rate, rounds each submit's time up to a multiple of
	// it from the run's start. Exact pacing (0) spreads the miners'
	// submits evenly, as real miners' are, but wakes this process (and
	// an idle pool) once per share; a grid of a few milliseconds sends
	// the submits due within it together, which measured about halves
	// both processes' CPU at a few thousand shares a second (the pool's
	// CPU is then that of bunched arrivals).
	PaceGrid time.Duration
	// Window is the most submits a miner has in flight without a reply.
	// Real miners never wait for a reply before hashing on. Default 8.
	Window int
	// PoolPID, when set, is the pool's process: its CPU time over the run
	// is read from /proc/PID/stat and reported beside ours.
	PoolPID int
	// DrainTimeout bounds the wait for replies to outstanding submits
	// after Duration. Default 5 s.
	DrainTimeout time.Duration
	// ConnectConcurrency bounds dials and handshakes in progress at once,
	// so ten thousand idle sessions do not arrive as one SYN flood.
	// Default 256.
	ConnectConcurrency int
	// Logger gets connection errors (the first few) and progress; nil
	// discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("loadtest: URL is required")
	}
	if c.Miners <= 0 {
		return fmt.Errorf("loadtest: miners %d: want at least 1", c.Miners)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("loadtest: duration %v: want > 0", c.Duration)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("loadtest: rate %v: want a positive number or unlimited", c.Rate)
	}
	if c.Mode == "" {
		c.Mode = ModeAccept
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.Window <= 0 {
		c.Window = 8
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.ConnectConcurrency <= 0 {
		c.ConnectConcurrency = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ParseRate reads shares per second per miner: a positive number, or
// "unlimited" (also "" and "0"), which is returned as 0.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "unlimited") {
		return 0, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("rate %q: want shares per second (a positive number) or unlimited", s)
	}
	return r, nil
}

// maxSourceIPs bounds a range so a typo (10.0.0.1-10.255.0.1) fails
// instead of building a list of millions.
const maxSourceIPs = 1 << 16

// ParseSourceIPs reads a comma-separated list whose items are addresses or
// inclusive ranges FIRST-LAST of one family (127.0.0.1-127.0.0.16).
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		first, last, isRange := strings.Cut(item, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return nil, fmt.Errorf("source IPs %q: %w", item, err)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return nil, fmt.Errorf("source IPs %q: %w", item, err)
		}
		if a.Is4() != b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("source IPs %q: want FIRST-LAST of one family with FIRST <= LAST", item)
		}
		for ip := a; ; ip = ip.Next() {
			if len(out) >= maxSourceIPs {
				return nil, fmt.Errorf("source IPs %q: more than %d addresses", s, maxSourceIPs)
			}
			out = append(out, ip)
			if ip == b {
				break
			}
		}
	}
	if len(out) > maxSourceIPs {
		return nil, fmt.Errorf("source IPs %q: more than %d addresses", s, maxSourceIPs)
	}
	return out, nil
}

// minerUser is the name miner i authorizes as.
func minerUser(user string, i int) string {
	if strings.Contains(user, ".") {
		return user
	}
	return user + ".lt" + strconv.Itoa(i)
}
