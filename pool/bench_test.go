package pool

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// benchBook is a job with a template of txs transactions (segwit) on a
// network difficulty leaving room for non-block shares.
func benchBook(b *testing.B, txs int) (*JobBook, *Job) {
	tmpl := testTemplate(b, 850000, txs, true)
	tmpl.Bits = 0x2000ffff
	j := testJob(b, tmpl, 1, "/hashforge/")
	book := NewJobBook(DefaultJobBookSize)
	book.Add(j)
	return book, j
}

// branchSizes are the templates the share-path benchmarks run on: 3
// transactions (a 2-step merkle branch) and a mainnet-like 3,000 (12
// steps), where the branch fold is most of a share's hashing.
var branchSizes = []struct {
	name string
	txs  int
}{{"branch2", 3}, {"branch12", 3000}}

// BenchmarkCheckShare is the accepted-share hot path: lookup, checks,
// coinbase hash, merkle fold, header hash, target compare, duplicate
// record. Every nonce is distinct, so every share is new and accepted.
func BenchmarkCheckShare(b *testing.B) {
	for _, s := range branchSizes {
		b.Run(s.name, func(b *testing.B) { benchCheckShare(b, s.txs) })
	}
}

func benchCheckShare(b *testing.B, txs int) {
	book, j := benchBook(b, txs)
	if want := bits.Len(uint(txs)); len(j.branch) != want {
		b.Fatalf("%d transactions: merkle branch of %d, want %d", txs, len(j.branch), want)
	}
	var diffs DifficultyLog
	diffs.Set(1e-30, mustTarget(b, 1e-30)) // every hash passes: measure the full accept path
	diffs.JobSent(j.Seq)
	sub := Submission{JobID: j.ID, Extranonce1: []byte{1, 2, 3, 4}, Extranonce2: make([]byte, 8), NTime: j.curTime,
		HasVersionBits: true, VersionBits: 0x00ffe000, VersionMask: DefaultVersionMask}
	b.ReportAllocs()
	var nonce uint32
	for b.Loop() {
		nonce++
		sub.Nonce = nonce
		if _, err := book.CheckShare(&sub, &diffs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckShareSolo is the accepted-share path of a SOLO session: the
// same work plus finding the job's coinbase for the finder's script (a
// 34-byte P2WSH here, whose lookup once allocated per share).
func BenchmarkCheckShareSolo(b *testing.B) {
	book, j := benchBook(b, 3)
	j.soloOutputs = func(script []byte) []TxOut { return []TxOut{{Value: j.coinbaseVal, Script: script}} }
	var diffs DifficultyLog
	diffs.Set(1e-30, mustTarget(b, 1e-30))
	diffs.JobSent(j.Seq)
	script := "\x00\x20" + strings.Repeat("\x11", 32)
	sub := Submission{JobID: j.ID, Extranonce1: []byte{1, 2, 3, 4}, Extranonce2: make([]byte, 8), NTime: j.curTime,
		SoloScript: script}
	b.ReportAllocs()
	var nonce uint32
	for b.Loop() {
		nonce++
		sub.Nonce = nonce
		if _, err := book.CheckShare(&sub, &diffs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckShareLowDifficulty is the reject path after hashing, at
// mainnet-like targets.
func BenchmarkCheckShareLowDifficulty(b *testing.B) {
	tmpl := testTemplate(b, 850000, 3, true)
	tmpl.Bits = 0x1d00ffff
	j := testJob(b, tmpl, 1, "/hashforge/")
	book := NewJobBook(DefaultJobBookSize)
	book.Add(j)
	var diffs DifficultyLog
	diffs.Set(1, mustTarget(b, 1))
	sub := Submission{JobID: j.ID, Extranonce1: []byte{1, 2, 3, 4}, Extranonce2: make([]byte, 8), NTime: j.curTime}
	b.ReportAllocs()
	var nonce uint32
	for b.Loop() {
		nonce++
		sub.Nonce = nonce
		if _, err := book.CheckShare(&sub, &diffs); err != ErrLowDifficulty {
			b.Fatal(err)
		}
	}
}

// BenchmarkSha256dHeader is the floor under CheckShare on this machine:
// one 80-byte header hash, to compare CheckShare's cost against.
func BenchmarkSha256dHeader(b *testing.B) {
	var h [80]byte
	b.ReportAllocs()
	for b.Loop() {
		h[76]++
		_ = pow.SHA256d(h[:])
	}
}

// BenchmarkNotifyFanout10k broadcasts one job to 10,000 authorized
// sessions through the production fan-out (the in-memory conn only counts
// lines).
func BenchmarkNotifyFanout10k(b *testing.B) {
	tp := newTestPool(b, nil)
	tmpl := testTemplate(b, 850000, 3, true)
	tp.srv.publish(tmpl, true)
	conns := make([]*memConn, 10000)
	for i := range conns {
		conns[i] = &memConn{discard: true}
		subscribeAuthorize(b, tp.srv, conns[i], regtestAddr+fmt.Sprintf(".w%d", i), []any{"bench"})
	}
	j := tp.srv.jobs.Current()
	for _, c := range conns {
		c.sent.Store(0)
	}
	b.ReportAllocs()
	for b.Loop() {
		tp.srv.broadcast(j)
	}
	b.StopTimer()
	if got := conns[len(conns)-1].sent.Load(); got < int64(b.N) {
		b.Fatalf("last session got %d lines for %d broadcasts", got, b.N)
	}
	if got := tp.srv.Stats().NotifyFanout.Count; got < uint64(b.N) {
		b.Fatalf("%d fan-outs observed for %d broadcasts", got, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(conns)), "ns/session")
}

// FuzzHandleSubmit feeds arbitrary mining.submit params through the
// handler of an authorized session: it must never panic and must always
// answer exactly once.
func FuzzHandleSubmit(f *testing.F) {
	for _, s := range []string{
		`["` + regtestAddr + `.w","JOB","0000000000000000","NTIME","00000000"]`,
		`["` + regtestAddr + `.w","JOB","0000000000000000","NTIME","00000000","1fffe000"]`,
		`["` + regtestAddr + `.w","JOB","00","NTIME","00000000"]`,
		`["x","JOB","zz","NTIME","00000000"]`,
		`[1,2,3,4,5]`, `{}`, `null`, `[]`, `["` + regtestAddr + `.w",null,"","",""]`,
	} {
		f.Add([]byte(s))
	}
	tp := newTestPool(f, nil)
	tmpl := testTemplate(f, 77, 2, true)
	tp.srv.publish(tmpl, true)
	c := &memConn{}
	ss := subscribeAuthorize(f, tp.srv, c, regtestAddr+".w", []any{"fuzz"})
	call(tp.srv, ss, "mining.configure", []any{[]string{"version-rolling"}, map[string]any{"version-rolling.mask": "ffffffff"}})
	c.take()
	j := tp.srv.jobs.Current()
	ntime := fmt.Sprintf("%08x", j.curTime)
	f.Fuzz(func(t *testing.T, params []byte) {
		params = []byte(strings.NewReplacer("JOB", j.ID, "NTIME", ntime).Replace(string(params)))
		if !json.Valid(params) {
			return // the stratum layer never hands the handler invalid JSON
		}
		tp.srv.handle(ss, &stratum.Request{ID: json.RawMessage("1"), Method: "mining.submit", Params: params})
		var replies int
		for _, l := range c.take() {
			if m := parseLine(t, l); m.Method == "" {
				replies++
			}
		}
		if replies != 1 {
			t.Fatalf("%d replies to one submit", replies)
		}
	})
}
