package pool

import (
	"math"
	"time"
)

// Vardiff tuning. A retarget needs evidence: either a full share window or
// a full time window. Within the dead band the current difficulty is kept,
// so Poisson noise in share arrivals does not cause a set_difficulty every
// window. Steps are bounded so one unlucky window cannot swing a miner far;
// a miner that is far off converges geometrically over a few windows.
const (
	vardiffWindowShares = 30
	vardiffWindowTime   = 30 * time.Second
	vardiffBandLow      = 2.0 / 3.0 // observed/target interval ratios kept as is
	vardiffBandHigh     = 1.5
	vardiffMinStep      = 0.5
	vardiffMaxStep      = 4.0
)

// vardiff tracks one session's share rate. Not safe for concurrent use; the
// session's lock guards it.
type vardiff struct {
	interval    time.Duration // target time between shares
	windowStart time.Time
	shares      int
}

func newVardiff(interval time.Duration, now time.Time) vardiff {
	return vardiff{interval: interval, windowStart: now}
}

// share records an accepted share and returns the retarget factor to apply
// (1 when none is due).
func (v *vardiff) share(now time.Time) float64 {
	v.shares++
	if v.shares < vardiffWindowShares && now.Sub(v.windowStart) < vardiffWindowTime {
		return 1
	}
	return v.retarget(now)
}

// tick lets a silent miner's difficulty come down: with no shares there is
// no share event to retarget on, so the job broadcast calls this.
func (v *vardiff) tick(now time.Time) float64 {
	if now.Sub(v.windowStart) < vardiffWindowTime {
		return 1
	}
	return v.retarget(now)
}

// reset starts a new window, e.g. after the difficulty was changed by other
// means than vardiff (suggest_difficulty), whose shares say nothing of the
// new difficulty.
func (v *vardiff) reset(now time.Time) {
	v.windowStart, v.shares = now, 0
}

func (v *vardiff) retarget(now time.Time) float64 {
	elapsed := now.Sub(v.windowStart)
	shares := v.shares
	v.reset(now)
	if elapsed <= 0 {
		// Clock went backwards or a burst landed within one tick: the
		// window says nothing about the rate.
		if shares >= vardiffWindowShares {
			return vardiffMaxStep
		}
		return 1
	}
	// With no share in the window the true interval is at least the
	// window, which is all we may claim.
	observed := elapsed.Seconds() / float64(max(shares, 1))
	ratio := observed / v.interval.Seconds()
	if shares > 0 && ratio >= vardiffBandLow && ratio <= vardiffBandHigh {
		return 1
	}
	if shares == 0 && ratio <= vardiffBandHigh {
		return 1
	}
	// Expected share interval scales linearly with difficulty.
	f := 1 / ratio
	return math.Min(math.Max(f, vardiffMinStep), vardiffMaxStep)
}

// clampDifficulty applies the ceiling (when > 0), then the floor. The
// floor wins when they cross: on a network easier than the floor (regtest,
// testnet4's minimum-difficulty blocks) a session at the network
// difficulty would send nearly every hash as a share and drown in stale
// work. Shares that meet the network target but not the session's are
// still accepted as blocks (CheckShare), so no block is refused.
func clampDifficulty(d, floor, ceiling float64) float64 {
	if ceiling > 0 && d > ceiling {
		d = ceiling
	}
	if d < floor {
		d = floor
	}
	return d
}
