// Package ban decides which remote addresses a pool stops talking to. It
// keeps, per address, a sliding-window tally of what honest miners do not
// send in bulk (shares that fail the checks, malformed lines, failed
// authorizations) and bans an address whose tally crosses a limit, for a
// while. An attacker spreads a flood over many connections, so the tally
// is per address, not per session; IPv6 addresses are grouped by /64,
// which any single host can spread over.
//
// Ratios, not counts, judge shares and lines: an honest farm behind one
// address sends many shares, a few of them refused (a new block makes some
// stale), and must never be banned for its volume. A minimum sample keeps a
// miner that just connected from being judged on its first refusals.
package ban

import (
	"fmt"
	"github.com/hashforge/hashforge/internal/connlimit"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config holds the limits. The zero value of a field takes its default
// (see Defaults); Duration < 0 disables banning: tallies are kept and
// nothing is banned.
type Config struct {
	// Window is the span the tallies cover.
	Window time.Duration
	// MinShares submits must be in the window before the invalid-share
	// ratio counts; MaxInvalidRatio (0..1] is the share of them that may
	// fail the checks (low difficulty, bad job, bad extranonce...).
	MinShares       int
	MaxInvalidRatio float64
	// MinLines and MaxMalformedRatio are the same for lines that are not
	// a Stratum request at all.
	MinLines          int
	MaxMalformedRatio float64
	// MaxAuthFailures failed authorizations in the window ban at once.
	MaxAuthFailures int
	// Duration is how long a ban lasts.
	Duration time.Duration
}

// Defaults are the limits used for zero fields.
var Defaults = Config{
	Window:            time.Minute,
	MinShares:         50,
	MaxInvalidRatio:   0.5,
	MinLines:          20,
	MaxMalformedRatio: 0.5,
	MaxAuthFailures:   20,
	Duration:          10 * time.Minute,
}

func (c Config) withDefaults() Config {
	d := Defaults
	if c.Window > 0 {
		d.Window = c.Window
	}
	if c.MinShares > 0 {
		d.MinShares = c.MinShares
	}
	if c.MaxInvalidRatio > 0 {
		d.MaxInvalidRatio = c.MaxInvalidRatio
	}
	if c.MinLines > 0 {
		d.MinLines = c.MinLines
	}
	if c.MaxMalformedRatio > 0 {
		d.MaxMalformedRatio = c.MaxMalformedRatio
	}
	if c.MaxAuthFailures > 0 {
		d.MaxAuthFailures = c.MaxAuthFailures
	}
	if c.Duration != 0 {
		d.Duration = c.Duration
	}
	return d
}

// Validate reports limits that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("ban window %s is negative", c.Window)
	case c.MinShares < 0, c.MinLines < 0, c.MaxAuthFailures < 0:
		return fmt.Errorf("ban minimums must not be negative")
	case c.MaxInvalidRatio < 0 || c.MaxInvalidRatio > 1 || c.MaxInvalidRatio != c.MaxInvalidRatio:
		return fmt.Errorf("invalid-share ratio %v is not within 0..1", c.MaxInvalidRatio)
	case c.MaxMalformedRatio < 0 || c.MaxMalformedRatio > 1 || c.MaxMalformedRatio != c.MaxMalformedRatio:
		return fmt.Errorf("malformed-line ratio %v is not within 0..1", c.MaxMalformedRatio)
	}
	return nil
}

// Ban is one banned address (a /64 for IPv6).
type Ban struct {
	Addr   netip.Prefix
	Reason string
	Since  time.Time
	Until  time.Time
}

// Key returns what a remote address is tallied and banned under: the
// client key of connection caps (connlimit.KeyOfIP) of an "ip:port" or a
// bare IP, so that caps and bans count one address the same way.
func Key(remote string) (netip.Prefix, bool) {
	if k, ok := connlimit.KeyOfString(remote); ok {
		return k, true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(remote, "["), "]"))
	if err != nil {
		return netip.Prefix{}, false
	}
	return connlimit.KeyOfIP(a), true
}

// window is a sliding-window counter of events and of the bad ones among
// them, as two fixed buckets: the estimate weighs the previous bucket by
// how much of it the window still covers.
type window struct {
	start          time.Time // start of the current bucket
	cur, prev      [2]uint32 // [events, bad]
	touched        time.Time
	authCur, authP uint32
}

func (w *window) roll(now time.Time, span time.Duration) {
	if w.start.IsZero() {
		w.start = now
		return
	}
	el := now.Sub(w.start)
	if el < span {
		return
	}
	if el < 2*span {
		w.prev, w.authP = w.cur, w.authCur
		w.start = w.start.Add(span)
	} else {
		w.prev, w.authP = [2]uint32{}, 0
		w.start = now
	}
	w.cur, w.authCur = [2]uint32{}, 0
}

// estimate returns the window's events and bad events.
func (w *window) estimate(now time.Time, span time.Duration) (events, bad float64) {
	f := 1 - float64(now.Sub(w.start))/float64(span)
	f = max(0, min(1, f))
	return float64(w.cur[0]) + f*float64(w.prev[0]), float64(w.cur[1]) + f*float64(w.prev[1])
}

func (w *window) auth(now time.Time, span time.Duration) float64 {
	f := max(0, min(1, 1-float64(now.Sub(w.start))/float64(span)))
	return float64(w.authCur) + f*float64(w.authP)
}

type peer struct {
	shares, lines window
}

const shards = 16

type shard struct {
	mu    sync.Mutex
	peers map[netip.Prefix]*peer
}

// Table holds the tallies and the bans. It is safe for concurrent use.
type Table struct {
	cfg    Config
	shards [shards]shard

	bmu  sync.Mutex
	bans map[netip.Prefix]Ban

	// OnBan, if set, is called (outside the table's locks) when an
	// address is banned: the caller closes its connections and logs.
	OnBan func(Ban)
}

// New returns a table with cfg's limits (zero fields take Defaults).
func New(cfg Config) *Table {
	t := &Table{cfg: cfg.withDefaults(), bans: make(map[netip.Prefix]Ban)}
	for i := range t.shards {
		t.shards[i].peers = make(map[netip.Prefix]*peer)
	}
	return t
}

// Config returns the limits in force.
func (t *Table) Config() Config { return t.cfg }

func (t *Table) shard(k netip.Prefix) *shard {
	b := k.Addr().As16()
	return &t.shards[(b[15]^b[7]^b[3])%shards]
}

// maxPeers bounds a shard's tallies: an attacker with many addresses
// must not grow them without end. Idle tallies are dropped first.
const maxPeers = 1 << 14

func (sh *shard) get(k netip.Prefix, now time.Time, span time.Duration) *peer {
	p := sh.peers[k]
	if p == nil {
		if len(sh.peers) >= maxPeers {
			for pk, pp := range sh.peers {
				if now.Sub(pp.shares.touched) > 2*span && now.Sub(pp.lines.touched) > 2*span {
					delete(sh.peers, pk)
				}
			}
			if len(sh.peers) > maxPeers-maxPeers/8 {
				// Mostly busy: forget an eighth (map order is random), so
				// the next maxPeers/8 arrivals need no scan.
				n := maxPeers / 8
				for pk := range sh.peers {
					delete(sh.peers, pk)
					if n--; n == 0 {
						break
					}
				}
			}
		}
		p = &peer{}
		sh.peers[k] = p
	}
	return p
}

// Banned reports whether k is banned at now.
func (t *Table) Banned(k netip.Prefix, now time.Time) (Ban, bool) {
	t.bmu.Lock()
	defer t.bmu.Unlock()
	b, ok := t.bans[k]
	if ok && !now.Before(b.Until) {
		delete(t.bans, k)
		return Ban{}, false
	}
	return b, ok
}

// Share records a submit from k, invalid if it failed the share checks
// (a stale or duplicate share is not invalid: honest miners send those).
// It reports a ban this share caused.
func (t *Table) Share(k netip.Prefix, invalid bool, now time.Time) (Ban, bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	p := sh.get(k, now, t.cfg.Window)
	w := &p.shares
	w.roll(now, t.cfg.Window)
	w.touched = now
	w.cur[0]++
	over := false
	if invalid {
		w.cur[1]++
		ev, bad := w.estimate(now, t.cfg.Window)
		over = ev >= float64(t.cfg.MinShares) && bad > t.cfg.MaxInvalidRatio*ev
	}
	var reason string
	if over {
		ev, bad := w.estimate(now, t.cfg.Window)
		reason = fmt.Sprintf("%.0f of %.0f shares invalid in %s", bad, ev, t.cfg.Window)
		*w = window{}
	}
	sh.mu.Unlock()
	if !over {
		return Ban{}, false
	}
	return t.ban(k, reason, now)
}

// Line records a line from k, malformed if it was not a Stratum request
// at all. It reports a ban this line caused.
func (t *Table) Line(k netip.Prefix, malformed bool, now time.Time) (Ban, bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	p := sh.get(k, now, t.cfg.Window)
	w := &p.lines
	w.roll(now, t.cfg.Window)
	w.touched = now
	w.cur[0]++
	over := false
	var reason string
	if malformed {
		w.cur[1]++
		ev, bad := w.estimate(now, t.cfg.Window)
		if ev >= float64(t.cfg.MinLines) && bad > t.cfg.MaxMalformedRatio*ev {
			over = true
			reason = fmt.Sprintf("%.0f of %.0f lines malformed in %s", bad, ev, t.cfg.Window)
			w.cur, w.prev = [2]uint32{}, [2]uint32{}
		}
	}
	sh.mu.Unlock()
	if !over {
		return Ban{}, false
	}
	return t.ban(k, reason, now)
}

// AuthFailure records a refused mining.authorize from k and reports a
// ban it caused.
func (t *Table) AuthFailure(k netip.Prefix, now time.Time) (Ban, bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	p := sh.get(k, now, t.cfg.Window)
	w := &p.lines
	w.roll(now, t.cfg.Window)
	w.touched = now
	w.authCur++
	n := w.auth(now, t.cfg.Window)
	over := n >= float64(t.cfg.MaxAuthFailures)
	if over {
		w.authCur, w.authP = 0, 0
	}
	sh.mu.Unlock()
	if !over {
		return Ban{}, false
	}
	return t.ban(k, fmt.Sprintf("%.0f failed authorizations in %s", n, t.cfg.Window), now)
}

func (t *Table) ban(k netip.Prefix, reason string, now time.Time) (Ban, bool) {
	if t.cfg.Duration < 0 {
		return Ban{}, false
	}
	b := Ban{Addr: k, Reason: reason, Since: now, Until: now.Add(t.cfg.Duration)}
	t.bmu.Lock()
	if old, ok := t.bans[k]; ok && now.Before(old.Until) {
		t.bmu.Unlock()
		return old, false
	}
	t.bans[k] = b
	t.bmu.Unlock()
	if t.OnBan != nil {
		t.OnBan(b)
	}
	return b, true
}

// List returns the bans in force at now, oldest first.
func (t *Table) List(now time.Time) []Ban {
	t.bmu.Lock()
	out := make([]Ban, 0, len(t.bans))
	for k, b := range t.bans {
		if !now.Before(b.Until) {
			delete(t.bans, k)
			continue
		}
		out = append(out, b)
	}
	t.bmu.Unlock()
	slices.SortFunc(out, func(a, b Ban) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return a.Addr.Addr().Compare(b.Addr.Addr())
	})
	return out
}

// Lift removes the ban on k (and its tallies) and reports whether there
// was one.
func (t *Table) Lift(k netip.Prefix) bool {
	t.bmu.Lock()
	_, ok := t.bans[k]
	delete(t.bans, k)
	t.bmu.Unlock()
	sh := t.shard(k)
	sh.mu.Lock()
	delete(sh.peers, k)
	sh.mu.Unlock()
	return ok
}

// FormatKey shows a key as operators write it: an IPv4 key as a bare
// address, an IPv6 one as its /64.
func FormatKey(k netip.Prefix) string {
	if k.Addr().Is4() {
		return k.Addr().String()
	}
	return k.String()
}

// ParseKey reads what FormatKey prints, and any address (bare, or with a
// port) as the key it is banned under. Prefixes other than an IPv4 /32
// or an IPv6 /64 are refused: a ban never covers more than one key.
func ParseKey(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		a := p.Addr().Unmap()
		if (a.Is4() && p.Bits() != 32 && p.Bits() != 128) || (!a.Is4() && p.Bits() != 64) {
			return netip.Prefix{}, false
		}
		s = p.Addr().String()
	}
	return Key(s)
}
