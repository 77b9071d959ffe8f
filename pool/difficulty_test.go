package pool

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/pow"
)

func TestPasswordDifficulty(t *testing.T) {
	for _, c := range []struct {
		pass string
		want float64
		ok   bool
	}{
		{"d=0.01", 0.01, true},
		{"x,d=65536", 65536, true},
		{"x, d=512 ,y", 512, true},
		{"D=2", 2, true},
		{"d=1e3", 1000, true},
		{"x", 0, false},
		{"", 0, false},
		{"d=", 0, false},
		{"d=0", 0, false},
		{"d=-5", 0, false},
		{"d=NaN", 0, false},
		{"d=Inf", 0, false},
		{"d=1e999", 0, false},
		{"d=abc", 0, false},
		{"diff=5", 0, false},
		{"d=" + strings.Repeat("1", 65), 0, false},
		// The first d= decides, even when it is bad.
		{"d=bad,d=5", 0, false},
	} {
		got, ok := PasswordDifficulty(c.pass)
		if ok != c.ok || got != c.want {
			t.Errorf("PasswordDifficulty(%q) = %v, %v; want %v, %v", c.pass, got, ok, c.want, c.ok)
		}
	}
}

func FuzzPasswordDifficulty(f *testing.F) {
	for _, s := range []string{"d=0.01", "x,d=65536", "d=1e-300", "d=0x1p-10", "d=NaN", ",,=,d", "d=1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pass string) {
		d, ok := PasswordDifficulty(pass)
		if !ok {
			return
		}
		if !(d > 0) || math.IsInf(d, 0) {
			t.Fatalf("%q gave difficulty %v", pass, d)
		}
		if _, err := pow.DifficultyToTarget(d); err != nil {
			t.Fatalf("%q gave difficulty %v without a target: %v", pass, d, err)
		}
	})
}

// authorizeWith subscribes and authorizes a session with a password and
// returns it with the difficulty it was first told.
func authorizeWith(t *testing.T, tp *testPool, pass string) (*session, *memConn, float64) {
	t.Helper()
	c := &memConn{}
	ss := tp.srv.connect(c)
	call(tp.srv, ss, "mining.subscribe", []any{"cpuminer-like/1.0"})
	call(tp.srv, ss, "mining.authorize", []any{regtestAddr + ".rig", pass})
	told := 0.0
	for _, l := range c.take() {
		if parseLine(t, l).Method == "mining.set_difficulty" {
			told = setDifficulty(t, l)
		}
	}
	return ss, c, told
}

// A regtest job is at the network's minimum difficulty: no ceiling, so a
// miner gets the difficulty it asks for (within the floor) and vardiff may
// go above the network difficulty. A job above the minimum (2000ffff)
// caps what a miner asks for at the network difficulty, floor first.
func TestDifficultyFloorCeilingAndPassword(t *testing.T) {
	tp := newTestPool(t, func(c *Config) { c.MinDifficulty = 0.001; c.StartDifficulty = 0.5 })
	tp.srv.publish(testTemplate(t, 100, 1, true), true)
	netDiff := tp.srv.jobs.Current().netDiff

	if _, _, d := authorizeWith(t, tp, "x"); d != 0.5 {
		t.Fatalf("no d=: told %v, want the start difficulty 0.5 (regtest's %v is no ceiling)", d, netDiff)
	}
	if _, _, d := authorizeWith(t, tp, "x,d=4096"); d != 4096 {
		t.Fatalf("d=4096 on regtest: told %v", d)
	}
	if _, _, d := authorizeWith(t, tp, "d=0.000001"); d != 0.001 {
		t.Fatalf("d= below --min-difficulty: told %v, want the floor", d)
	}

	// A d= session keeps its difficulty whatever vardiff would do.
	ss, c, _ := authorizeWith(t, tp, "d=8")
	ss.mu.Lock()
	changed := tp.srv.retargetLocked(ss, 4, tp.srv.jobs.Current())
	ss.mu.Unlock()
	if changed || len(c.take()) != 0 {
		t.Fatal("vardiff moved a d= session")
	}
	// Without d=, vardiff goes above regtest's network difficulty.
	ss, _, _ = authorizeWith(t, tp, "x")
	ss.mu.Lock()
	changed = tp.srv.retargetLocked(ss, 4, tp.srv.jobs.Current())
	ss.mu.Unlock()
	if !changed || ss.desired != 2 {
		t.Fatalf("vardiff ×4 from 0.5 on regtest: changed %v, desired %v", changed, ss.desired)
	}

	// Above the minimum, the network difficulty (2^-24) caps requests;
	// the floor still wins over it.
	hard := testTemplate(t, 101, 1, true)
	hard.Bits = 0x2000ffff
	hard.PreviousBlockHash = hashOf(t, strings.Repeat("1", 64))
	tp.srv.publish(hard, true)
	j := tp.srv.jobs.Current()
	if _, _, d := authorizeWith(t, tp, "d=4096"); d != 0.001 {
		t.Fatalf("d=4096 on a network at %v with floor 0.001: told %v", j.netDiff, d)
	}
	tp2 := newTestPool(t, func(c *Config) { c.MinDifficulty = 1e-9; c.StartDifficulty = 1 })
	tp2.srv.publish(hard, true)
	j2 := tp2.srv.jobs.Current()
	if _, _, d := authorizeWith(t, tp2, "d=4096"); d != j2.netDiff {
		t.Fatalf("d=4096 capped at the network difficulty %v: told %v", j2.netDiff, d)
	}
	if _, _, d := authorizeWith(t, tp2, "x"); d != j2.netDiff {
		t.Fatalf("start difficulty 1 capped at the network difficulty %v: told %v", j2.netDiff, d)
	}
}

// A share that meets the network target but not the session's is a block:
// accepted, and credited at the network difficulty, the most that was
// required of it. A share that meets the session's target is credited at
// the session's difficulty, whatever the network's.
func TestBlockBelowSessionTargetIsAccepted(t *testing.T) {
	j := testJob(t, testTemplate(t, 300, 2, true), 1, "")
	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog
	const sessionDiff = 1e-4 // far above regtest's 4.7e-10
	diffs.Set(sessionDiff, mustTarget(t, sessionDiff))
	diffs.JobSent(j.Seq)
	sub := Submission{JobID: j.ID, Extranonce1: []byte{9, 9, 9, 9}, Extranonce2: make([]byte, 8), NTime: j.curTime}
	var blockOnly, share bool
	for nonce := uint32(0); nonce < 2_000_000 && !(blockOnly && share); nonce++ {
		sub.Nonce = nonce
		res, err := book.CheckShare(&sub, &diffs)
		if err == ErrLowDifficulty {
			continue // not even a block: regtest's target misses half the hashes
		}
		if err != nil {
			t.Fatalf("nonce %d: %v", nonce, err)
		}
		if !res.IsBlock {
			t.Fatalf("accepted share %d is no block on regtest", nonce)
		}
		switch {
		case res.ActualDiff >= sessionDiff:
			share = true
			if res.Difficulty != sessionDiff {
				t.Fatalf("share at the session target credited at %v", res.Difficulty)
			}
		default:
			blockOnly = true
			if res.Difficulty != j.netDiff {
				t.Fatalf("block below the session target credited at %v, want %v", res.Difficulty, j.netDiff)
			}
		}
	}
	if !blockOnly || !share {
		t.Fatalf("found block-only %v, session share %v", blockOnly, share)
	}
}

// A session whose shares are mostly refused gets one WARN, with counts.
func TestHighRejectRatioWarnsOnce(t *testing.T) {
	var buf bytes.Buffer
	tp := newTestPool(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	tp.srv.publish(testTemplate(t, 100, 1, true), true)
	ss, c, _ := authorizeWith(t, tp, "x")
	for i := range 3 * rejectWarnMin {
		call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".rig", "nojob", "0000000000000000", "00000000", "00000000"})
		if i == rejectWarnMin-2 && strings.Contains(buf.String(), "reject ratio") {
			t.Fatalf("warned after %d rejects: %s", i+1, buf.String())
		}
	}
	c.take()
	if n := strings.Count(buf.String(), "high reject ratio"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "rejected=50") || !strings.Contains(buf.String(), "accepted=0") {
		t.Fatalf("warning without its counts: %s", buf.String())
	}
}

// Testnet4's minimum-difficulty blocks (bits at the proof-of-work limit,
// after 20 minutes without a block) must not pull an ASIC's session down to
// difficulty 1; a regular testnet4 job still caps what a miner asks for.
func TestTestnet4MinimumDifficultyJobIsNoCeiling(t *testing.T) {
	const tn4Addr = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
	tp := newTestPool(t, func(c *Config) {
		c.Network = &chaincfg.TestNet4Params
		c.PoolAddress = tn4Addr
		c.StartDifficulty = 1
	})
	regular := testTemplate(t, 50_000, 1, true)
	regular.Bits = 0x1b00ffff // difficulty 65536
	tp.srv.publish(regular, true)
	c := &memConn{}
	ss := tp.srv.connect(c)
	call(tp.srv, ss, "mining.subscribe", []any{"asic/1.0"})
	call(tp.srv, ss, "mining.authorize", []any{tn4Addr + ".asic", "d=1e9"})
	var told float64
	for _, l := range c.take() {
		if parseLine(t, l).Method == "mining.set_difficulty" {
			told = setDifficulty(t, l)
		}
	}
	if told != 65536 {
		t.Fatalf("d=1e9 on a testnet4 job of difficulty 65536: told %v", told)
	}

	minDiff := testTemplate(t, 50_001, 1, true)
	minDiff.Bits = 0x1d00ffff
	minDiff.PreviousBlockHash = hashOf(t, strings.Repeat("2", 64))
	tp.srv.publish(minDiff, true)
	for _, l := range c.take() {
		if parseLine(t, l).Method == "mining.set_difficulty" {
			t.Fatalf("a minimum-difficulty job changed the ASIC's difficulty: %s", l)
		}
	}
	if cur, _ := ss.diffs.Current(); cur != 65536 {
		t.Fatalf("difficulty on the minimum-difficulty job %v, want 65536 kept", cur)
	}
}
