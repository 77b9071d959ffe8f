package pool

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/hashforge/hashforge/pow"
)

// slotLog is the DifficultyLog this package had before the epochs: an entry
// per job slot, seq modulo the book size. The epochs must judge every share
// the same way.
type slotLog struct {
	cur  slotEntry
	sent [jobLogSize]slotEntry
}

type slotEntry struct {
	seq    uint64
	diff   float64
	target pow.Target
}

func (l *slotLog) Set(diff float64, target pow.Target) {
	l.cur = slotEntry{diff: diff, target: target}
}

func (l *slotLog) JobSent(seq uint64) {
	e := &l.sent[seq%jobLogSize]
	if e.seq == seq && l.cur.target.Less(e.target) {
		return
	}
	*e = l.cur
	e.seq = seq
}

func (l *slotLog) ShareTarget(seq uint64) (pow.Target, float64) {
	e := &l.sent[seq%jobLogSize]
	if e.seq == seq && l.cur.target.Less(e.target) {
		return e.target, e.diff
	}
	return l.cur.target, l.cur.diff
}

// diffLevels are the difficulties the comparisons move between; two of
// them share a target, as a session at the network difficulty and one
// just below it may.
var diffLevels = func() []diffLevel {
	var ls []diffLevel
	for _, d := range []float64{0.5, 1, 2, 8, 1024} {
		t, err := pow.DifficultyToTarget(d)
		if err != nil {
			panic(err)
		}
		ls = append(ls, diffLevel{d, t})
	}
	return append(ls, diffLevel{1.0000000001, ls[1].target})
}()

// runLogs drives both logs through ops and fails at the first share the
// two would judge differently. Each op byte is one step: a retarget, the
// next job, a job of the book re-sent, or a query. Like the pool, it sends
// only jobs the book holds, and asks only about those.
func runLogs(t *testing.T, start uint64, ops []byte) {
	t.Helper()
	var got DifficultyLog
	var want slotLog
	top, sent := start, false
	window := func(b byte) uint64 {
		if !sent {
			return top
		}
		back := uint64(b) % jobLogSize
		if back > top {
			back = top
		}
		return top - back
	}
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], ops[i+1]
		switch op % 4 {
		case 0:
			lv := diffLevels[int(arg)%len(diffLevels)]
			got.Set(lv.diff, lv.target)
			want.Set(lv.diff, lv.target)
		case 1:
			if sent {
				top += 1 + uint64(arg%3) // the session may miss jobs
			}
			sent = true
			got.JobSent(top)
			want.JobSent(top)
		case 2:
			seq := window(arg)
			got.JobSent(seq)
			want.JobSent(seq)
		case 3:
			seq := window(arg)
			gt, gd := got.ShareTarget(seq)
			wt, wd := want.ShareTarget(seq)
			if gt != wt || gd != wd {
				t.Fatalf("op %d: job %d (newest %d): got difficulty %v, the slot log %v; epochs %+v",
					i/2, seq, top, gd, wd, got.epochs)
			}
		}
		if len(got.epochs) > jobLogSize {
			t.Fatalf("op %d: %d epochs for %d jobs", i/2, len(got.epochs), jobLogSize)
		}
	}
	if !sent {
		return
	}
	for back := uint64(0); back < jobLogSize && back <= top; back++ {
		gt, gd := got.ShareTarget(top - back)
		wt, wd := want.ShareTarget(top - back)
		if gt != wt || gd != wd {
			t.Fatalf("at the end: job %d (newest %d): got difficulty %v, the slot log %v; epochs %+v",
				top-back, top, gd, wd, got.epochs)
		}
	}
}

func TestDifficultyLogAgreesWithSlots(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ops := make([]byte, 2*(1+rng.IntN(200)))
		for i := range ops {
			ops[i] = byte(rng.Uint32())
		}
		runLogs(t, uint64(rng.IntN(40)), ops)
	}
}

func FuzzDifficultyLogAgrees(f *testing.F) {
	f.Add(uint64(1), []byte{0, 0, 1, 0, 3, 0, 0, 1, 2, 0, 3, 0})
	f.Add(uint64(100), []byte{0, 3, 1, 0, 1, 0, 0, 1, 2, 1, 3, 1, 0, 4, 2, 1, 3, 1})
	f.Add(uint64(0), []byte{1, 0, 0, 2, 1, 2, 2, 1, 0, 5, 2, 1, 3, 0, 3, 1, 3, 2})
	f.Fuzz(func(t *testing.T, start uint64, ops []byte) {
		runLogs(t, start%(1<<62), ops)
	})
}

// A retarget after a job: the job keeps the easier difficulty, the next
// one is sent at the new one, and a job re-sent at an easier difficulty
// takes it.
func TestDifficultyLogEpochs(t *testing.T) {
	easy, hard := diffLevels[0], diffLevels[3]
	var l DifficultyLog
	l.Set(easy.diff, easy.target)
	l.JobSent(10)
	l.JobSent(11)
	l.Set(hard.diff, hard.target)
	l.JobSent(11) // re-sent harder: keeps easy
	l.JobSent(12)
	for seq, want := range map[uint64]float64{10: easy.diff, 11: easy.diff, 12: hard.diff, 13: hard.diff, 9: hard.diff} {
		if _, d := l.ShareTarget(seq); d != want {
			t.Errorf("job %d judged at %v, want %v", seq, d, want)
		}
	}
	if len(l.epochs) != 2 {
		t.Fatalf("epochs %+v, want two", l.epochs)
	}
	// Sixteen jobs later the easy epoch is out of the book and forgotten.
	for seq := uint64(13); seq < 13+jobLogSize; seq++ {
		l.JobSent(seq)
	}
	if len(l.epochs) != 1 {
		t.Fatalf("epochs %+v after the window moved on, want one", l.epochs)
	}
	if _, d := l.ShareTarget(11); d != hard.diff {
		t.Fatalf("job 11, out of the window, judged at %v", d)
	}
}

// The log is what made a session's record big; a job at an unchanged
// difficulty must cost it nothing.
func TestDifficultyLogIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(DifficultyLog{}); size > 80 {
		t.Fatalf("DifficultyLog is %d bytes", size)
	}
	var l DifficultyLog
	l.Set(diffLevels[1].diff, diffLevels[1].target)
	seq := uint64(1)
	l.JobSent(seq)
	if allocs := testing.AllocsPerRun(100, func() { seq++; l.JobSent(seq) }); allocs != 0 {
		t.Fatalf("JobSent at an unchanged difficulty allocates %v times", allocs)
	}
	if len(l.epochs) != 1 || cap(l.epochs) != 1 {
		t.Fatalf("epochs %d (capacity %d) for jobs at one difficulty", len(l.epochs), cap(l.epochs))
	}
}
