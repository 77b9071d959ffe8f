package pool

import (
	"errors"
	"math"
	"testing"

	"github.com/hashforge/hashforge/pow"
)

// hardTemplate is a template whose network difficulty (2^-24 with bits
// 2000ffff) leaves room for share targets that are not blocks.
func hardTemplate(t testing.TB, prevByte byte) *Job {
	tmpl := testTemplate(t, 1000, 2, true)
	tmpl.Bits = 0x2000ffff
	tmpl.PreviousBlockHash[0] = prevByte % 16 << 4 // the last two display digits
	return testJob(t, tmpl, uint64(prevByte)+1, "")
}

func mustTarget(t testing.TB, d float64) pow.Target {
	t.Helper()
	tg, err := pow.DifficultyToTarget(d)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestCheckShareRejects(t *testing.T) {
	j := testJob(t, testTemplate(t, 200, 3, true), 1, "") // regtest: every share that passes is a block
	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog
	diffs.Set(j.netDiff, j.netTarget)
	diffs.JobSent(j.Seq)
	en1 := []byte{1, 2, 3, 4}
	good := Submission{JobID: j.ID, Extranonce1: en1, Extranonce2: make([]byte, 8), NTime: j.curTime}
	res := solve(t, book, good, &diffs)
	if !res.IsBlock {
		t.Fatal("regtest share not a block")
	}
	good.Nonce = uint32(res.Header[76]) | uint32(res.Header[77])<<8 | uint32(res.Header[78])<<16 | uint32(res.Header[79])<<24

	mod := func(f func(*Submission)) *Submission {
		s := good
		f(&s)
		return &s
	}
	cases := []struct {
		name string
		sub  *Submission
		want error
	}{
		{"unknown job", mod(func(s *Submission) { s.JobID = "nope" }), ErrJobNotFound},
		{"short extranonce2", mod(func(s *Submission) { s.Extranonce2 = make([]byte, 4) }), ErrExtranonce2Size},
		{"long extranonce2", mod(func(s *Submission) { s.Extranonce2 = make([]byte, 9) }), ErrExtranonce2Size},
		{"bad extranonce1", mod(func(s *Submission) { s.Extranonce1 = nil }), ErrExtranonce1},
		{"ntime before window", mod(func(s *Submission) { s.NTime = j.minNTime - 1 }), ErrNTime},
		{"ntime past two hours", mod(func(s *Submission) { s.NTime = j.curTime + 7200 }), ErrNTime},
		{"version bits without rolling", mod(func(s *Submission) { s.HasVersionBits, s.VersionBits = true, 0x2000 }), ErrVersionBits},
		{"version bits outside mask", mod(func(s *Submission) {
			s.HasVersionBits, s.VersionBits, s.VersionMask = true, 0x00001000, DefaultVersionMask
		}), ErrVersionBits},
		{"duplicate block share", &good, ErrDuplicate},
	}
	for _, c := range cases {
		if _, err := book.CheckShare(c.sub, &diffs); err != c.want {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// ntime rolled within the window is fine.
	if _, err := book.CheckShare(mod(func(s *Submission) { s.NTime = j.curTime + 7199 }), &diffs); err != nil && err != ErrLowDifficulty {
		t.Errorf("ntime at the edge of the window: %v", err)
	}

	// A new previous block makes the job stale, not unknown.
	next := testTemplate(t, 201, 0, false)
	next.PreviousBlockHash = hashOf(t, res.BlockHash())
	book.Add(testJob(t, next, 2, ""))
	if _, err := book.CheckShare(mod(func(s *Submission) { s.Nonce++ }), &diffs); err != ErrStaleJob {
		t.Errorf("share for the old block: got %v, want %v", err, ErrStaleJob)
	}
	// The block share itself, resubmitted after its block moved the pool on,
	// is still a duplicate: that is what the miner needs to hear.
	if _, err := book.CheckShare(&good, &diffs); err != ErrDuplicate {
		t.Errorf("block share resubmitted after the new block: got %v, want %v", err, ErrDuplicate)
	}
	var re *RejectError
	if !errors.As(ErrStaleJob, &re) || re.Code != 21 || ErrDuplicate.Code != 22 || ErrLowDifficulty.Code != 23 {
		t.Error("reject codes do not match the Stratum convention")
	}
}

func TestCheckShareEviction(t *testing.T) {
	book := NewJobBook(2)
	tmpl := testTemplate(t, 10, 0, false)
	for seq := uint64(1); seq <= 3; seq++ {
		book.Add(testJob(t, tmpl, seq, ""))
	}
	var diffs DifficultyLog
	sub := Submission{JobID: "j1", Extranonce1: make([]byte, 4), Extranonce2: make([]byte, 8), NTime: uint32(tmpl.CurTime)}
	if _, err := book.CheckShare(&sub, &diffs); err != ErrJobNotFound {
		t.Fatalf("evicted job: %v", err)
	}
	sub.JobID = "j2" // same previous block: an older job is still good work
	if _, err := book.CheckShare(&sub, &diffs); err == ErrJobNotFound || err == ErrStaleJob {
		t.Fatalf("older job of the current block refused: %v", err)
	}
}

func TestCheckShareLowDifficultyAndRetarget(t *testing.T) {
	j1 := hardTemplate(t, 1)
	book := NewJobBook(4)
	book.Add(j1)
	easy, hard := math.Ldexp(1, -32), math.Ldexp(1, -27) // 1 in 1 and 1 in 32 hashes
	easyT, hardT := mustTarget(t, easy), mustTarget(t, hard)

	var diffs DifficultyLog
	diffs.Set(easy, easyT)
	diffs.JobSent(j1.Seq)
	sub := Submission{JobID: j1.ID, Extranonce1: []byte{0, 0, 0, 9}, Extranonce2: make([]byte, 8), NTime: j1.curTime}

	// Find shares meeting the easy target but not the hard one.
	var weak []uint32
	for nonce := uint32(0); len(weak) < 3; nonce++ {
		sub.Nonce = nonce
		var probe DifficultyLog
		probe.Set(hard, hardT)
		_, err := book.CheckShare(&sub, &probe)
		if err == ErrLowDifficulty {
			weak = append(weak, nonce)
		} else if err != nil {
			t.Fatal(err)
		}
	}

	// Retarget up: j1 was sent at the easy difficulty and keeps it, even
	// when re-sent after the change.
	diffs.Set(hard, hardT)
	diffs.JobSent(j1.Seq)
	sub.Nonce = weak[0]
	res, err := book.CheckShare(&sub, &diffs)
	if err != nil {
		t.Fatalf("share at the old difficulty refused: %v", err)
	}
	if res.Difficulty != easy || res.IsBlock {
		t.Fatalf("credited at %v (block %v), want %v", res.Difficulty, res.IsBlock, easy)
	}

	// A job sent only at the new difficulty holds shares to it.
	j2 := hardTemplate(t, 1)
	j2.ID, j2.Seq = "j-new", 99
	book.Add(j2)
	diffs.JobSent(j2.Seq)
	sub.JobID = j2.ID
	var low int
	for nonce := uint32(0); nonce < 200; nonce++ {
		sub.Nonce = nonce
		if _, err := book.CheckShare(&sub, &diffs); err == ErrLowDifficulty {
			low++
		}
	}
	if low == 0 {
		t.Fatal("no low-difficulty reject at the hard target")
	}

	// Retarget down: the easier current difficulty applies to old work too.
	var down DifficultyLog
	down.Set(hard, hardT)
	down.JobSent(j1.Seq)
	down.Set(easy, easyT)
	sub.JobID, sub.Nonce = j1.ID, weak[1]
	if res, err := book.CheckShare(&sub, &down); err != nil || res.Difficulty != easy {
		t.Fatalf("after lowering: %v (difficulty %v)", err, res.Difficulty)
	}
}

func TestCheckShareVersionRolling(t *testing.T) {
	j := testJob(t, testTemplate(t, 300, 1, false), 1, "")
	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog
	sub := Submission{
		JobID: j.ID, Extranonce1: make([]byte, 4), Extranonce2: make([]byte, 8), NTime: j.curTime,
		HasVersionBits: true, VersionBits: 0x1fffe000, VersionMask: DefaultVersionMask,
	}
	res := solve(t, book, sub, &diffs)
	if v := uint32(res.Header[0]) | uint32(res.Header[1])<<8 | uint32(res.Header[2])<<16 | uint32(res.Header[3])<<24; v != 0x3fffe000 {
		t.Fatalf("header version %08x, want 3fffe000", v)
	}
	// Same nonce, other version bits: a different header, not a duplicate.
	sub.Nonce = uint32(res.Header[76]) | uint32(res.Header[77])<<8 | uint32(res.Header[78])<<16 | uint32(res.Header[79])<<24
	sub.VersionBits = 0x00002000
	if _, err := book.CheckShare(&sub, &diffs); err == ErrDuplicate {
		t.Fatal("different version bits judged a duplicate")
	}
}
