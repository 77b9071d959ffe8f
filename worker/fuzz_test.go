package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"testing"

	"github.com/hashforge/hashforge/stratum"
)

// idleDevice never hashes: the fuzzers drive the session and the scheduler
// by hand.
type idleDevice struct{}

func (idleDevice) Name() string { return "idle" }
func (idleDevice) Run(ctx context.Context, _ WorkSource, _ Results) error {
	<-ctx.Done()
	return nil
}

func fuzzMiner(f testing.TB) *Miner {
	m, err := New(Config{
		URLs: []string{"stratum+tcp://pool.example:3333"}, User: "bc1qtest.fuzz",
		Devices: []Device{idleDevice{}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	return m
}

// recordedNotifyParams returns the params of the notifies in
// testdata/notifies.json, for seeds.
func recordedNotifyParams(f *testing.F) [][]byte {
	var out [][]byte
	for _, v := range loadRecordedNotifies(f) {
		out = append(out, v.Params)
	}
	return out
}

// liveSession is an authorized session of m over a connection that
// swallows whatever the session sends, with a 4-byte extranonce1, a 4-byte
// extranonce2 and version rolling on 1fffe000.
func liveSession(m *Miner) (*session, func()) {
	cli, srv := net.Pipe()
	go io.Copy(io.Discard, srv)
	c := stratum.NewClient(cli)
	s := newSession(m, m.pools[0], m.pools[0].url)
	s.client = c
	s.en1, s.en2Size = []byte{1, 2, 3, 4}, 4
	s.rolling, s.mask = true, 0x1fffe000
	s.authorized = true
	m.sessionUp(s)
	return s, func() {
		m.sessionDown(s)
		c.Close()
		srv.Close()
	}
}

const fuzzNotify = `["j1","0f905d563ac60486afeb835cf8c40d46acdaaf1600032b910000000000000000","02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff170358eb0c5075626c69632d506f6f6c","ffffffff029a9ab215000000001600144e28940485d09e0d7d6cb94a1c7259c176e1710c0000000000000000266a24aa21a9ed330c4457d7cc5a089843273490f191dfbbf3cd9ffcc5553030380d92c741fabb00000000",["2fdd3998d4a54d7687fcd5e30b510329c161c4ddd7939d00a3ba2b05ccbe8aed"],"20000000","170355f0","666106c1",true]`

// notifyFixture is what FuzzMinerNotification reuses across inputs: one
// miner, the base job parsed once, and a Stratum client over an in-memory
// pipe that is replaced only when an input closed it (client.reconnect).
// Building all of this per input (a pipe, two goroutines, parsing the base
// job again, formatting discarded log records) made an exec four times
// dearer, and Go's minimizer, which tries on the order of n²/2 candidates
// for an n-byte input, then kept the worker on one ~1.3 kB recorded notify
// until its 60 s limit: the coordinator counts no execs until a
// minimization ends, so the target looked stalled.
type notifyFixture struct {
	m       *Miner
	job     *Job
	diff    float64
	target  [32]byte
	cli     *stratum.Client
	srv     net.Conn
	stopped context.Context // already cancelled: published work must not be waited for
}

func newNotifyFixture(t testing.TB) *notifyFixture {
	m, err := New(Config{
		URLs: []string{"stratum+tcp://pool.example:3333"}, User: "bc1qtest.fuzz",
		Devices: []Device{idleDevice{}},
		// Disabled, not discarded: formatting records nobody reads would
		// be most of an exec's cost.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := stratum.ParseNotify(json.RawMessage(fuzzNotify))
	if err != nil {
		t.Fatal(err)
	}
	job, err := ParseJob(&p)
	if err != nil {
		t.Fatal(err)
	}
	const diff = 0.001
	target, err := DifficultyTarget(diff)
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	fx := &notifyFixture{m: m, job: job, diff: diff, target: target, stopped: stopped}
	t.Cleanup(fx.closeClient)
	return fx
}

func (fx *notifyFixture) closeClient() {
	if fx.cli != nil {
		fx.cli.Close()
		fx.srv.Close()
		fx.cli, fx.srv = nil, nil
	}
}

// client returns a live client, replacing one an earlier input closed.
func (fx *notifyFixture) client() *stratum.Client {
	if fx.cli != nil && fx.cli.Err() != nil {
		fx.closeClient()
	}
	if fx.cli == nil {
		cli, srv := net.Pipe()
		go io.Copy(io.Discard, srv)
		fx.cli, fx.srv = stratum.NewClient(cli), srv
	}
	return fx.cli
}

// session returns a fresh authorized session with a 4-byte extranonce1, a
// 4-byte extranonce2, version rolling on 1fffe000, difficulty 0.001 and
// fuzzNotify as its current, published job: the state handling
// set_difficulty [0.001] and then fuzzNotify leaves (TestNotifyFixtureState
// holds the two to each other).
func (fx *notifyFixture) session() *session {
	m := fx.m
	s := newSession(m, m.pools[0], m.pools[0].url)
	s.client = fx.client()
	s.en1, s.en2Size = []byte{1, 2, 3, 4}, 4
	s.rolling, s.mask = true, 0x1fffe000
	s.authorized = true
	s.diff, s.target, s.haveDiff = fx.diff, fx.target, true
	rec := &jobRecord{job: fx.job, target: fx.target, diff: fx.diff}
	s.jobs[fx.job.ID] = rec
	s.jobOrder = append(s.jobOrder, fx.job.ID)
	s.current = rec
	m.setDifficulty(fx.diff)
	m.sessionUp(s)
	s.publish()
	return s
}

// The shortcut the fixture takes must be the state the real messages
// produce, or the fuzzer would explore a session no pool can reach.
func TestNotifyFixtureState(t *testing.T) {
	fx := newNotifyFixture(t)
	want := fx.session()
	fx.m.sessionDown(want)

	m := fuzzMiner(t)
	got, done := liveSession(m)
	defer done()
	ctx := context.Background()
	got.handle(ctx, stratum.Notification{Method: "mining.set_difficulty", Params: json.RawMessage(`[0.001]`)})
	got.handle(ctx, stratum.Notification{Method: "mining.notify", Params: json.RawMessage(fuzzNotify)})

	rec, wrec := got.current, want.current
	if got.diff != want.diff || got.target != want.target || !got.haveDiff || !want.haveDiff ||
		!bytes.Equal(got.en1, want.en1) || got.en2Size != want.en2Size || got.mask != want.mask || got.rolling != want.rolling ||
		len(got.jobs) != 1 || len(want.jobs) != 1 || len(got.jobOrder) != 1 || len(want.jobOrder) != 1 ||
		rec.diff != wrec.diff || rec.target != wrec.target {
		t.Fatalf("fixture session %+v differs from handled session %+v", want, got)
	}
	if gj, wj := *rec.job, *wrec.job; gj.ID != wj.ID || gj.PrevHash != wj.PrevHash || !bytes.Equal(gj.Coinb1, wj.Coinb1) ||
		!bytes.Equal(gj.Coinb2, wj.Coinb2) || len(gj.Branch) != len(wj.Branch) || gj.Version != wj.Version ||
		gj.NBits != wj.NBits || gj.NTime != wj.NTime || gj.Clean != wj.Clean || gj.NetTarget != wj.NetTarget {
		t.Fatalf("fixture job %+v differs from parsed job %+v", wj, gj)
	}
	if gt, wt := m.sched.current(), fx.m.sched.current(); wt != nil || gt == nil || gt.rec != rec {
		t.Fatalf("published work: handled %v, fixture (session down) %v", gt, wt)
	}
}

// maxFuzzMessages bounds FuzzMinerNotification's input while fuzzing. Go's
// minimizer tries ~n²/2 candidates for every n-byte input that finds new
// coverage, and with this binary's coverage map each try costs the fuzz
// worker tens of microseconds whatever the harness does: a mutant of a
// 1.3 kB recorded notify kept the worker minimizing until the 60 s limit
// (27 execs reported in 31 s, on a fresh fuzz cache), and the coordinator
// counts no exec until a minimization ends. Under the bound a
// minimization takes a second or two. The long seeds still run, and are
// checked, in plain `go test`.
const maxFuzzMessages = 256

// shortNotify and shortNotifyBranch are valid notifies small enough to fuzz
// from: one-byte coinbase halves, no branch or one entry.
const (
	shortNotify       = `["j2","0f905d563ac60486afeb835cf8c40d46acdaaf1600032b910000000000000000","02","ff",[],"20000000","207fffff","666106c1",false]`
	shortNotifyBranch = `["j3","0f905d563ac60486afeb835cf8c40d46acdaaf1600032b910000000000000000","","",["2fdd3998d4a54d7687fcd5e30b510329c161c4ddd7939d00a3ba2b05ccbe8aed"],"20000000","170355f0","666106c1",true]`
)

// fuzzing reports whether the test runs under -fuzz (as the coordinator or
// one of its workers) rather than over the seeds only.
func fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

// FuzzMinerNotification feeds two arbitrary server→client messages (method
// and params) to a live, authorized miner session that already has a job,
// a difficulty and version rolling: the path of every mining.notify,
// set_difficulty, set_extranonce, set_version_mask and client.reconnect. It
// must never panic, and whatever it accepted must stay within the bounds
// the rest of the miner relies on; the work the scheduler then hands out
// must be built from the current job exactly.
func FuzzMinerNotification(f *testing.F) {
	notifies := recordedNotifyParams(f)
	for _, n := range notifies {
		f.Add("mining.notify", n, "mining.set_difficulty", []byte(`[0.5]`))
	}
	seeds := []struct{ m1, p1, m2, p2 string }{
		{"mining.set_difficulty", `[4096]`, "mining.notify", fuzzNotify},
		{"mining.set_difficulty", `["0.001"]`, "", `null`},
		{"mining.set_difficulty", `[1e-320]`, "mining.set_difficulty", `[-1]`},
		{"mining.set_difficulty", `[1e308]`, "mining.notify", fuzzNotify},
		{"mining.set_extranonce", `["c0ffee01",8]`, "mining.notify", fuzzNotify},
		{"mining.set_extranonce", `["",0]`, "mining.set_version_mask", `["00000000"]`},
		{"mining.set_extranonce", `["ab",32]`, "mining.set_extranonce", `["ab",33]`},
		{"mining.set_version_mask", `["1fffe000"]`, "mining.set_version_mask", `["ffffffff"]`},
		{"mining.set_version_mask", `[{}]`, "mining.set_version_mask", `["123456789"]`},
		{"client.reconnect", `["pool2.example",3334,5]`, "mining.notify", fuzzNotify},
		{"client.reconnect", `["","4444","1e400"]`, "client.reconnect", `[]`},
		{"client.reconnect", `[null,null,"NaN"]`, "client.reconnect", `["a b",1,0]`},
		{"client.reconnect", `["[::1]",1,0]`, "client.reconnect", `["h\u0000",1,0]`},
		{"client.get_version", `[]`, "client.show_message", `["hello"]`},
		{"mining.notify", `["x","zz","00","00",[],"20000000","207fffff","6b06489e",true]`, "mining.frobnicate", `{}`},
		{"mining.notify", `["","00","","",[],"1","2","3",true]`, "mining.notify", `[1,2,3]`},
	}
	for _, s := range seeds {
		f.Add(s.m1, []byte(s.p1), s.m2, []byte(s.p2))
	}
	// Small notifies for the fuzzer to grow from: the seeds above are too
	// long for it (see maxFuzzMessages).
	for _, n := range []string{shortNotify, shortNotifyBranch} {
		f.Add("mining.notify", []byte(n), "mining.set_difficulty", []byte(`[2]`))
		f.Add("mining.set_extranonce", []byte(`["c0ffee",2]`), "mining.notify", []byte(n))
	}
	f.Add("mining.set_version_mask", []byte(`["00ffe000"]`), "mining.notify", []byte(shortNotify))
	for _, n := range []string{shortNotify, shortNotifyBranch} {
		if p, err := stratum.ParseNotify(json.RawMessage(n)); err != nil {
			f.Fatal(err)
		} else if _, err := ParseJob(&p); err != nil {
			f.Fatal(err)
		}
	}
	fx := newNotifyFixture(f)
	limit := math.MaxInt
	if fuzzing() {
		limit = maxFuzzMessages
	}
	f.Fuzz(func(t *testing.T, method1 string, params1 []byte, method2 string, params2 []byte) {
		if len(method1)+len(params1)+len(method2)+len(params2) > limit {
			return
		}
		s := fx.session()
		defer fx.m.sessionDown(s)
		ctx := context.Background()
		s.handle(ctx, stratum.Notification{Method: method1, Params: json.RawMessage(params1), ID: json.RawMessage(`5`)})
		s.handle(ctx, stratum.Notification{Method: method2, Params: json.RawMessage(params2)})
		checkSession(t, s)
		checkWork(t, fx.m, s, fx.stopped)
	})
}

// checkSession asserts the bounds a session's state must keep.
func checkSession(t *testing.T, s *session) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.haveDiff || !(s.diff > 0) || math.IsInf(s.diff, 0) {
		t.Fatalf("difficulty %v (set %v)", s.diff, s.haveDiff)
	}
	if want, _ := DifficultyTarget(s.diff); want != s.target {
		t.Fatalf("target %x does not match difficulty %v", s.target, s.diff)
	}
	if len(s.en1) > maxExtranonce1Size || s.en2Size < 0 || s.en2Size > 32 {
		t.Fatalf("extranonce1 of %d bytes, extranonce2 size %d", len(s.en1), s.en2Size)
	}
	if s.mask&^requestedVersionMask != 0 {
		t.Fatalf("version mask %08x outside %08x", s.mask, uint32(requestedVersionMask))
	}
	if s.current == nil || s.jobs[s.current.job.ID] != s.current {
		t.Fatal("current job missing from the job list")
	}
	if len(s.jobs) > maxSessionJobs || len(s.jobs) != len(s.jobOrder) {
		t.Fatalf("%d jobs, %d in order", len(s.jobs), len(s.jobOrder))
	}
	for id, rec := range s.jobs {
		checkJob(t, rec.job)
		if id != rec.job.ID {
			t.Fatalf("job %q filed as %q", rec.job.ID, id)
		}
		// A live job's target only ever gets harder than the one it came
		// with; it is never easier than the session's difficulty allows.
		if !(rec.diff > 0) {
			t.Fatalf("job %q with difficulty %v", id, rec.diff)
		}
	}
	if rr := s.reconnect; rr != nil {
		u, err := parseStratumURL(rr.addr)
		if err != nil {
			t.Fatalf("reconnect address %q: %v", rr.addr, err)
		}
		if port, err := strconv.Atoi(u.Port()); err != nil || port < 1 || port > 65535 || u.Hostname() == "" {
			t.Fatalf("reconnect address %q", rr.addr)
		}
		if rr.wait < 0 || rr.wait > maxReconnectWait {
			t.Fatalf("reconnect wait %v", rr.wait)
		}
	}
}

// checkJob asserts the documented bounds of a parsed job.
func checkJob(t *testing.T, j *Job) {
	t.Helper()
	if j.ID == "" || len(j.ID) > maxJobIDLen {
		t.Fatalf("job id of %d bytes", len(j.ID))
	}
	if len(j.Coinb1) > maxCoinbaseHalf || len(j.Coinb2) > maxCoinbaseHalf || len(j.Branch) > 32 {
		t.Fatalf("job %q: coinbase halves %d and %d bytes, %d branch entries", j.ID, len(j.Coinb1), len(j.Coinb2), len(j.Branch))
	}
	if j.NetTarget != netTarget(j.NBits) {
		t.Fatalf("job %q: network target does not match nbits %08x", j.ID, j.NBits)
	}
}

// checkWork pulls a slice and checks that it is the session's current job
// as the session sees it now.
func checkWork(t *testing.T, m *Miner, s *session, stopped context.Context) {
	t.Helper()
	tmpl := m.sched.current()
	if !m.isCurrent(s) {
		// client.reconnect closed nothing here, but a closed session must
		// have no work out.
		return
	}
	if tmpl == nil {
		t.Fatal("no work published for a live session with a job")
	}
	s.mu.Lock()
	cur, en1, en2Size, mask := s.current, s.en1, s.en2Size, s.mask
	s.mu.Unlock()
	if tmpl.owner != s || tmpl.rec != cur || !bytes.Equal(tmpl.en1, en1) || tmpl.en2Size != en2Size || tmpl.mask != mask {
		t.Fatalf("published work is not the session's current state")
	}
	// Work is published, so Next must hand a slice out without waiting:
	// stopped is already cancelled and fails any wait at once.
	sl, err := m.sched.Next(stopped, 16)
	if err != nil {
		t.Fatalf("no slice for published work: %v", err)
	}
	if len(sl.Extranonce2) != en2Size || sl.Version&^mask != cur.job.Version&^mask || sl.JobID != cur.job.ID {
		t.Fatalf("slice job %q extranonce2 %x version %08x", sl.JobID, sl.Extranonce2, sl.Version)
	}
	if want := cur.job.Header(en1, sl.Extranonce2, sl.Version, cur.job.NTime, 0); want != sl.Header {
		t.Fatal("slice header is not the job's header")
	}
}

// FuzzPoolGarbage feeds arbitrary bytes from a "pool" into the miner's
// Stratum client. Malformed lines are skipped, so the connection may end
// only at the end of the input (or on an over-long line), never on a
// protocol error.
func FuzzPoolGarbage(f *testing.F) {
	f.Add([]byte("this is not json\n{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1]}\n"))
	f.Add([]byte("{\"id\":null,\"method\":42}\n[1,2]\n\n\r\n{\"id\":1,\"result\":true,\"error\":null}"))
	f.Add([]byte("\v{\"id\":null}\n\f\n \t{\"id\":2}\r\n"))
	f.Add([]byte("{\"id\":null,\"method\":\"mining.notify\",\"params\":" + fuzzNotify + "}\n"))
	f.Add([]byte("\xc2\xa0{}\n{\"METHOD\":1}\n{\"method\":\"a\",\"Method\":2}\n"))
	f.Add([]byte("{\"id\":null,\"method\":\"mining.notify\",\"params\":" + shortNotify + "}\n"))
	limit := math.MaxInt
	if fuzzing() {
		limit = maxFuzzMessages
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A few lines reach every path; longer inputs only make the
		// minimizer's ~n²/2 tries slow (see maxFuzzMessages).
		if len(data) > limit {
			return
		}
		pool, cli := net.Pipe()
		go func() {
			pool.Write(data)
			pool.Close()
		}()
		c := newPoolClient(cli, slog.New(slog.NewTextHandler(io.Discard, nil)))
		defer c.Close()
		for range c.Notifications() {
		}
		<-c.Done()
		err := c.Err()
		if !errors.Is(err, io.EOF) && !errors.Is(err, stratum.ErrLineTooLong) {
			t.Fatalf("connection ended with %v", err)
		}
	})
}

// FuzzConfigureReply: a mining.configure result either grants rolling with
// a mask inside the one the miner asked for, or none.
func FuzzConfigureReply(f *testing.F) {
	for _, s := range []string{
		`{"version-rolling":true,"version-rolling.mask":"1fffe000"}`,
		`{"version-rolling":true,"version-rolling.mask":"ffffffff","minimum-difficulty":true}`,
		`{"version-rolling":true,"version-rolling.mask":"e000"}`,
		`{"version-rolling":false}`, `{"version-rolling":"true"}`, `{"version-rolling":true}`,
		`{"version-rolling":true,"version-rolling.mask":1}`, `null`, `[]`, `true`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, res []byte) {
		mask, err := parseConfigureReply(res)
		if err != nil {
			if mask != 0 {
				t.Fatalf("refused with mask %08x", mask)
			}
			return
		}
		if mask&^requestedVersionMask != 0 {
			t.Fatalf("mask %08x outside %08x", mask, uint32(requestedVersionMask))
		}
	})
}
