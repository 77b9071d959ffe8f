// Package backoff is the project's one retry delay: exponential (Min,
// doubling up to Max), with the jitter its callers choose, and one
// context-aware sleep. Every retry loop (node, ZMQ, ledger, stratum
// accept, found-block recording, the miner's failover) uses it, each with
// its own Min and Max.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff hands out the delays of one retry loop: Min first, then each
// twice the last, never above Max. The zero value of the delay state is
// "before the first retry"; Reset returns to it once the operation
// succeeds. A Backoff is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	last     time.Duration // 0 before the first Next
}

// Next returns the delay to wait before the next attempt and advances to
// the one after it.
func (b *Backoff) Next() time.Duration {
	if b.last == 0 {
		b.last = min(b.Min, b.Max)
	} else {
		b.last = min(2*b.last, b.Max)
	}
	return b.last
}

// Reset makes the next delay Min again.
func (b *Backoff) Reset() { b.last = 0 }

// Spread returns a delay in [d/2, d): miners dropped together by one pool
// restart do not all come back in the same instant.
func Spread(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Around returns a delay of about d ± d/8 (d - d/8, plus a random part of
// up to d/4): pool nodes retrying a recovering database do not do so in
// lockstep.
func Around(d time.Duration) time.Duration {
	return d - d/8 + time.Duration(rand.Int64N(int64(d)/4+1))
}

// Sleep waits d or until ctx ends, and reports whether ctx is still live
// (true: d passed; false: ctx ended first). A non-positive d returns at
// once.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
