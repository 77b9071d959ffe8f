package pool

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// simulateMiner feeds vardiff the share arrivals of a miner of the given
// hashrate (Poisson, seeded) and returns the difficulty after n shares.
func simulateMiner(hashrate, start, floor, ceiling float64, n int) (float64, []float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_700_000_000, 0)
	v := newVardiff(10*time.Second, now)
	d := start
	var history []float64
	for range n {
		mean := d * 4294967296 / hashrate // seconds per share at d
		now = now.Add(time.Duration(rng.ExpFloat64() * mean * float64(time.Second)))
		if f := v.share(now); f != 1 {
			d = clampDifficulty(d*f, floor, ceiling)
			history = append(history, d)
		}
	}
	return d, history
}

func TestVardiffConverges(t *testing.T) {
	for _, c := range []struct {
		name     string
		hashrate float64
		start    float64
	}{
		{"cpu from too high", 5e6, 1},
		{"asic from too low", 100e12, 1},
		{"gpu about right", 1e9, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			ideal := 10 * c.hashrate / 4294967296
			d, hist := simulateMiner(c.hashrate, c.start, 1e-6, 1e12, 3000)
			if d < ideal/2 || d > ideal*2 {
				t.Fatalf("difficulty %g after 3000 shares, ideal %g (path %v)", d, ideal, hist)
			}
			for i := 1; i < len(hist); i++ {
				if r := hist[i] / hist[i-1]; r < vardiffMinStep-1e-9 || r > vardiffMaxStep+1e-9 {
					t.Fatalf("step ×%g outside the clamp", r)
				}
			}
		})
	}
}

func TestVardiffFloorAndCeiling(t *testing.T) {
	if d, _ := simulateMiner(100e12, 1, 1e-3, 5000, 2000); d != 5000 {
		t.Fatalf("ceiling: %g", d)
	}
	if d, _ := simulateMiner(1e3, 1, 0.01, 1e12, 200); d != 0.01 {
		t.Fatalf("floor: %g", d)
	}
	// The floor wins when the ceiling is below it, as on regtest: a
	// session is never asked for shares easier than --min-difficulty.
	if d := clampDifficulty(1, 0.001, 4.656542373906925e-10); d != 0.001 {
		t.Fatalf("regtest clamp: %g", d)
	}
	// A ceiling above the floor still caps a request.
	if d := clampDifficulty(1e6, 0.001, 5000); d != 5000 {
		t.Fatalf("ceiling above the floor: %g", d)
	}
}

func TestVardiffSilentMinerComesDown(t *testing.T) {
	now := time.Unix(0, 0)
	v := newVardiff(10*time.Second, now)
	if f := v.tick(now.Add(20 * time.Second)); f != 1 {
		t.Fatalf("retarget before the window closed: %g", f)
	}
	now = now.Add(31 * time.Second)
	if f := v.tick(now); f != vardiffMinStep {
		t.Fatalf("silent window: factor %g, want %g", f, vardiffMinStep)
	}
	// Steady shares right on the interval: no change.
	for range 10 {
		now = now.Add(10 * time.Second)
		if f := v.share(now); f != 1 {
			t.Fatalf("on-target miner retargeted by %g", f)
		}
	}
	if f := v.share(now); math.IsNaN(f) || f <= 0 {
		t.Fatalf("factor %g", f)
	}
}
