package stratum

import (
	"sync/atomic"
	"time"
)

// FanOut follows one broadcast (a line encoded once and handed to many
// sessions) until it is written to the socket of every session it was
// handed to, or that session ended. The hand-off alone (SendLine returning)
// says nothing about when miners hear of a new job: the writes happen on
// each session's own schedule.
//
//	fo := stratum.TrackFanOut(observe, line)
//	for _, s := range sessions { s.SendLine(line) }
//	fo.Seal()
//
// observe runs once, with the time from TrackFanOut to the last write, on
// whichever goroutine made that write (or in Seal); it must be quick and
// must not call back into a Session. One broadcast is followed at a time:
// a new TrackFanOut stops counting hand-offs to the previous one, which
// still completes.
type FanOut struct {
	start   time.Time
	lines   [2]*byte // the tracked lines, by identity of their first byte
	sealed  atomic.Bool
	pending atomic.Int64 // hand-offs not yet written, plus one until Seal
	done    func(time.Duration)
}

var activeFanOut atomic.Pointer[FanOut]

// TrackFanOut starts following lines (at most two: a job's clean and
// not-clean forms) as sessions are handed them.
func TrackFanOut(done func(time.Duration), lines ...[]byte) *FanOut {
	f := &FanOut{start: time.Now(), done: done}
	for i, l := range lines[:min(len(lines), len(f.lines))] {
		if len(l) > 0 {
			f.lines[i] = &l[0]
		}
	}
	f.pending.Store(1)
	activeFanOut.Store(f)
	return f
}

// Seal says every session has been handed the line: the broadcast is
// complete once the hand-offs counted so far are written.
func (f *FanOut) Seal() {
	if f.sealed.Swap(true) {
		return
	}
	activeFanOut.CompareAndSwap(f, nil)
	f.release()
}

func (f *FanOut) release() {
	if f.pending.Add(-1) == 0 && f.done != nil {
		f.done(time.Since(f.start))
	}
}

// trackedFanOut returns the broadcast line belongs to, if one is followed.
func trackedFanOut(line []byte) *FanOut {
	f := activeFanOut.Load()
	if f == nil || len(line) == 0 || f.sealed.Load() {
		return nil
	}
	if p := &line[0]; p != f.lines[0] && p != f.lines[1] {
		return nil
	}
	f.pending.Add(1)
	return f
}

// fanOutMark is a tracked line in a session's queue: the broadcast and
// the line's position in the session's output.
type fanOutMark struct {
	f   *FanOut
	seq uint64
}
