package ban

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// fuzzAddrs are the remote addresses the fuzzed events come from: two IPv4
// clients and two IPv6 addresses of one /64, which must be one key.
var fuzzAddrs = []string{"192.0.2.1:3333", "198.51.100.7:1", "[2001:db8:1:2::1]:3333", "[2001:db8:1:2:ffff::9]:4444"}

// maxBanEvents bounds an input: more events only repeat what a shorter
// sequence already reaches, and a bounded input keeps each exec cheap.
const maxBanEvents = 256

// FuzzConfig feeds arbitrary limits through Validate and, when they are
// valid, drives a Table with a sequence of events decoded from the input,
// checking it against a model of what it may do:
//   - Validate refuses exactly the negative, NaN and out-of-range limits;
//   - a ratio ban needs at least MinShares (MinLines) samples since the
//     tally was last reset, and the sample that triggers it is a bad one;
//   - an auth ban needs MaxAuthFailures failures;
//   - a ban lasts Duration from the event that caused it, is never issued
//     while one is in force, is what Banned and List report, and OnBan
//     hears of exactly the bans the calls return;
//   - Lift reports the ban it removed and clears it;
//   - Duration < 0 never bans.
//
// Each event is two bytes: op (low 3 bits: valid share, invalid share,
// line, malformed line, auth failure, Banned, List, Lift) and address
// (next 2 bits); then a repeat count (low 4 bits, +1) and how far the
// clock moves first (high 4 bits, in eighths of the window).
func FuzzConfig(f *testing.F) {
	f.Add(int64(time.Minute), 50, 20, 20, 0.5, 0.5, int64(10*time.Minute), []byte{1, 0x0f, 1, 0x0f, 1, 0x0f, 1, 0x0f, 5, 0, 6, 0, 7, 0})
	f.Add(int64(0), 0, 0, 0, 0.0, 0.0, int64(0), []byte{1, 0xff, 3, 0xff, 4, 0xff})
	f.Add(int64(time.Second), 2, 2, 2, 0.1, 0.1, int64(-1), []byte{1, 0x03, 3, 0x03, 4, 0x03, 6, 0})
	f.Add(int64(time.Second), 3, 3, 1, 0.5, 0.5, int64(time.Second), []byte{1, 0x05, 0x09, 0x05, 0x13, 0x02, 0x1b, 0x02, 5, 0x00, 0x0d, 0x00, 0x17, 0x00, 0x16, 0x00, 6, 0x80})
	f.Add(int64(time.Second), 3, 3, 1, 1.0, 1.0, int64(time.Second), []byte{1, 0x05, 0x09, 0x05, 0x12, 0x02, 0x1a, 0x02, 5, 0x80, 0x0d, 0x00, 0x17, 0x00})
	f.Add(int64(-1), -1, 0, 0, math.NaN(), math.Inf(1), int64(0), []byte{})
	f.Add(int64(1), 1, 1, 1, 1e-300, -0.0, int64(math.MaxInt64), []byte{1, 0, 3, 0, 4, 0x10, 5, 0xf0})
	f.Fuzz(func(t *testing.T, window int64, minShares, minLines, maxAuth int, invRatio, malRatio float64, duration int64, events []byte) {
		cfg := Config{
			Window: time.Duration(window), MinShares: minShares, MaxInvalidRatio: invRatio,
			MinLines: minLines, MaxMalformedRatio: malRatio, MaxAuthFailures: maxAuth, Duration: time.Duration(duration),
		}
		inRange := func(r float64) bool { return r >= 0 && r <= 1 } // false for NaN
		valid := window >= 0 && minShares >= 0 && minLines >= 0 && maxAuth >= 0 && inRange(invRatio) && inRange(malRatio)
		if err := cfg.Validate(); (err == nil) != valid {
			t.Fatalf("Validate(%+v) = %v", cfg, err)
		}
		if !valid || len(events) > 2*maxBanEvents {
			return
		}
		tb := New(cfg)
		eff := tb.Config()
		if eff.Window <= 0 || eff.MinShares <= 0 || eff.MinLines <= 0 || eff.MaxAuthFailures <= 0 ||
			!(eff.MaxInvalidRatio > 0 && eff.MaxInvalidRatio <= 1) || !(eff.MaxMalformedRatio > 0 && eff.MaxMalformedRatio <= 1) || eff.Duration == 0 {
			t.Fatalf("limits in force %+v from %+v", eff, cfg)
		}
		var heard []Ban
		tb.OnBan = func(b Ban) { heard = append(heard, b) }
		m := newBanModel(t, tb, eff)
		step := max(eff.Window/8, 1)
		for i := 0; i+1 < len(events); i += 2 {
			op, arg := events[i], events[i+1]
			k, ok := Key(fuzzAddrs[int(op>>3)%len(fuzzAddrs)])
			if !ok {
				t.Fatal("fixed address refused")
			}
			// Saturates instead of overflowing for windows near the
			// largest Duration.
			if adv := time.Duration(arg>>4) * step; adv/step == time.Duration(arg>>4) {
				m.now = m.now.Add(adv)
			}
			for range int(arg&0x0f) + 1 {
				m.event(op&7, k)
			}
		}
		if len(heard) != m.issued {
			t.Fatalf("OnBan heard %d bans, the calls returned %d", len(heard), m.issued)
		}
		for i, b := range heard {
			if b != m.log[i] {
				t.Fatalf("OnBan heard %+v, the call returned %+v", b, m.log[i])
			}
		}
	})
}

// banModel is what a Table may do, from outside: how many samples each
// tally can hold at most (tallies only forget), and the bans it holds.
type banModel struct {
	t      *testing.T
	tb     *Table
	cfg    Config
	now    time.Time
	shares map[netip.Prefix]int // submits since the tally was last reset
	lines  map[netip.Prefix]int
	auths  map[netip.Prefix]int
	bans   map[netip.Prefix]Ban // as stored: expired ones go when looked at
	log    []Ban
	issued int
}

func newBanModel(t *testing.T, tb *Table, cfg Config) *banModel {
	return &banModel{t: t, tb: tb, cfg: cfg, now: t0,
		shares: map[netip.Prefix]int{}, lines: map[netip.Prefix]int{}, auths: map[netip.Prefix]int{},
		bans: map[netip.Prefix]Ban{}}
}

func (m *banModel) event(op byte, k netip.Prefix) {
	t := m.t
	switch op {
	case 0, 1:
		m.shares[k]++
		b, ok := m.tb.Share(k, op == 1, m.now)
		if ok {
			if op == 0 || m.shares[k] < m.cfg.MinShares {
				t.Fatalf("share ban %+v after %d shares (min %d), triggering share invalid: %v", b, m.shares[k], m.cfg.MinShares, op == 1)
			}
			m.shares[k] = 0
		}
		m.banned(k, b, ok)
	case 2, 3:
		m.lines[k]++
		b, ok := m.tb.Line(k, op == 3, m.now)
		if ok {
			if op == 2 || m.lines[k] < m.cfg.MinLines {
				t.Fatalf("line ban %+v after %d lines (min %d), triggering line malformed: %v", b, m.lines[k], m.cfg.MinLines, op == 3)
			}
			m.lines[k] = 0
		}
		m.banned(k, b, ok)
	case 4:
		m.auths[k]++
		b, ok := m.tb.AuthFailure(k, m.now)
		if ok {
			if m.auths[k] < m.cfg.MaxAuthFailures {
				t.Fatalf("auth ban %+v after %d failures (max %d)", b, m.auths[k], m.cfg.MaxAuthFailures)
			}
			m.auths[k] = 0
		}
		m.banned(k, b, ok)
	case 5:
		want, in := m.bans[k]
		if in && !m.now.Before(want.Until) {
			delete(m.bans, k)
			want, in = Ban{}, false
		}
		if got, ok := m.tb.Banned(k, m.now); ok != in || got != want {
			t.Fatalf("Banned(%s) = %+v, %v; want %+v, %v", k, got, ok, want, in)
		}
	case 6:
		var want []Ban
		for pk, b := range m.bans {
			if !m.now.Before(b.Until) {
				delete(m.bans, pk)
				continue
			}
			want = append(want, b)
		}
		got := m.tb.List(m.now)
		if len(got) != len(want) {
			t.Fatalf("List = %+v; want %+v", got, want)
		}
		for _, b := range want {
			if !slices.Contains(got, b) {
				t.Fatalf("List = %+v lacks %+v", got, b)
			}
		}
		for i := 1; i < len(got); i++ {
			if got[i].Since.Before(got[i-1].Since) {
				t.Fatalf("List not oldest first: %+v", got)
			}
		}
	case 7:
		_, in := m.bans[k]
		if ok := m.tb.Lift(k); ok != in {
			t.Fatalf("Lift(%s) = %v; a ban was stored: %v", k, ok, in)
		}
		delete(m.bans, k)
		m.shares[k], m.lines[k], m.auths[k] = 0, 0, 0
		if _, ok := m.tb.Banned(k, m.now); ok {
			t.Fatalf("%s still banned after Lift", k)
		}
	}
}

// banned checks a ban a Share, Line or AuthFailure call returned.
func (m *banModel) banned(k netip.Prefix, b Ban, ok bool) {
	t := m.t
	if !ok {
		if b != (Ban{}) {
			if old, in := m.bans[k]; !in || b != old {
				t.Fatalf("no new ban, but %+v returned", b)
			}
		}
		return
	}
	if m.cfg.Duration < 0 {
		t.Fatalf("ban %+v with Duration %v", b, m.cfg.Duration)
	}
	if old, in := m.bans[k]; in && m.now.Before(old.Until) {
		t.Fatalf("ban %+v issued while %+v is in force", b, old)
	}
	if b.Addr != k || b.Reason == "" || !b.Since.Equal(m.now) || !b.Until.Equal(m.now.Add(m.cfg.Duration)) {
		t.Fatalf("ban %+v of %s at %v for %v", b, k, m.now, m.cfg.Duration)
	}
	m.bans[k] = b
	m.log = append(m.log, b)
	m.issued++
}
