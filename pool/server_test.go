package pool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
	"github.com/hashforge/hashforge/stratum"
)

// memConn is an in-memory Stratum connection: it records every outgoing
// line (replies and notifications) in order.
type memConn struct {
	discard bool // count only (benchmarks)
	closed  atomic.Bool
	sent    atomic.Int64

	mu    sync.Mutex
	lines []string
	authd bool
}

func (m *memConn) SendLine(line []byte) bool {
	if m.closed.Load() {
		return false
	}
	m.sent.Add(1)
	if !m.discard {
		m.mu.Lock()
		m.lines = append(m.lines, strings.TrimSuffix(string(line), "\n"))
		m.mu.Unlock()
	}
	return true
}

func (m *memConn) Reply(id json.RawMessage, result any) {
	b, err := json.Marshal(stratum.Response{ID: id, Result: result})
	if err != nil {
		panic(err)
	}
	m.SendLine(b)
}

func (m *memConn) ReplyError(id json.RawMessage, e *stratum.Error) {
	b, err := json.Marshal(stratum.Response{ID: id, Error: e})
	if err != nil {
		panic(err)
	}
	m.SendLine(b)
}

func (m *memConn) SetAuthorized()     { m.mu.Lock(); m.authd = true; m.mu.Unlock() }
func (m *memConn) RemoteAddr() string { return "mem" }

// take returns and forgets the lines sent so far.
func (m *memConn) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.lines
	m.lines = nil
	return l
}

type wireMsg struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	Result json.RawMessage   `json:"result"`
	Error  []json.RawMessage `json:"error"`
}

func parseLine(t testing.TB, line string) wireMsg {
	t.Helper()
	var m wireMsg
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("line %s: %v", line, err)
	}
	return m
}

func errCode(t testing.TB, m wireMsg) int {
	t.Helper()
	if len(m.Error) == 0 {
		return 0
	}
	var c int
	if err := json.Unmarshal(m.Error[0], &c); err != nil {
		t.Fatal(err)
	}
	return c
}

type fakeSubmitter struct {
	mu      sync.Mutex
	blocks  []string
	verdict string
}

func (f *fakeSubmitter) SubmitBlock(_ context.Context, blockHex string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks = append(f.blocks, blockHex)
	return f.verdict, nil
}

func (f *fakeSubmitter) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.blocks) }

type fakeShares struct {
	mu     sync.Mutex
	shares []record.Share
	// hold keeps the acknowledgements for release; fail refuses shares.
	hold bool
	held []func(error)
	fail error
}

func (f *fakeShares) AddShare(s record.Share, done func(error)) {
	f.mu.Lock()
	if f.fail != nil {
		f.mu.Unlock()
		done(f.fail)
		return
	}
	f.shares = append(f.shares, s)
	if f.hold {
		f.held = append(f.held, done)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	if done != nil {
		done(nil)
	}
}

// release acknowledges the held shares.
func (f *fakeShares) release() {
	f.mu.Lock()
	held := f.held
	f.held, f.hold = nil, false
	f.mu.Unlock()
	for _, d := range held {
		d(nil)
	}
}
func (f *fakeShares) all() []record.Share {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]record.Share(nil), f.shares...)
}

type fakeBlocks struct {
	mu     sync.Mutex
	blocks []record.Block
}

func (f *fakeBlocks) RecordBlock(_ context.Context, b record.Block) error {
	f.mu.Lock()
	f.blocks = append(f.blocks, b)
	f.mu.Unlock()
	return nil
}

// wait returns the recorded blocks once there are n (recording is
// asynchronous).
func (f *fakeBlocks) wait(t testing.TB, n int) []record.Block {
	t.Helper()
	var got []record.Block
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		got = append(got[:0], f.blocks...)
		return len(got) >= n
	})
	return got
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testPool struct {
	srv    *Server
	sub    *fakeSubmitter
	shares *fakeShares
	blocks *fakeBlocks
	clock  *fakeClock
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestPool(t testing.TB, mod func(*Config)) *testPool {
	t.Helper()
	cfg := Config{
		Network:     &chaincfg.RegressionNetParams,
		PoolAddress: regtestAddr,
		CoinbaseTag: "/hashforge/",
		NodeID:      7,
		Logger:      quietLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	tp := &testPool{sub: &fakeSubmitter{}, shares: &fakeShares{}, blocks: &fakeBlocks{},
		clock: &fakeClock{t: time.Unix(1_800_000_000, 0)}}
	srv, err := NewServer(cfg, tp.sub, tp.shares, tp.blocks)
	if err != nil {
		t.Fatal(err)
	}
	srv.now = tp.clock.now
	srv.stats.startedAt = tp.clock.now()
	tp.srv = srv
	return tp
}

var reqID atomic.Int64

func call(s *Server, ss *session, method string, params any) {
	raw, err := json.Marshal(params)
	if err != nil {
		panic(err)
	}
	id := json.RawMessage(fmt.Sprint(reqID.Add(1)))
	s.handle(ss, &stratum.Request{ID: id, Method: method, Params: raw})
}

func TestHandlerSessionFlow(t *testing.T) {
	tp := newTestPool(t, nil)
	tmpl := testTemplate(t, 120, 2, true)
	if !tp.srv.publish(tmpl, true) {
		t.Fatal("publish failed")
	}
	c := &memConn{}
	ss := tp.srv.connect(c)

	// ASIC firmware order: configure before subscribe.
	call(tp.srv, ss, "mining.configure", []any{
		[]string{"version-rolling", "minimum-difficulty", "subscribe-extranonce"},
		map[string]any{"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2, "minimum-difficulty.value": 0.5},
	})
	m := parseLine(t, c.take()[0])
	var conf map[string]any
	if err := json.Unmarshal(m.Result, &conf); err != nil {
		t.Fatalf("configure result %s: %v", m.Result, err)
	}
	if conf["version-rolling"] != true || conf["version-rolling.mask"] != "1fffe000" ||
		conf["minimum-difficulty"] != true || conf["subscribe-extranonce"] != false {
		t.Fatalf("configure result %v", conf)
	}

	call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".w", "x", "00", "00000000", "00000000"})
	if m := parseLine(t, c.take()[0]); errCode(t, m) != stratum.CodeNotSubscribed {
		t.Fatalf("submit before subscribe: %s", m.Error)
	}

	call(tp.srv, ss, "mining.subscribe", []any{"test/1.0"})
	m = parseLine(t, c.take()[0])
	var sr []json.RawMessage
	if err := json.Unmarshal(m.Result, &sr); err != nil || len(sr) != 3 {
		t.Fatalf("subscribe result %s", m.Result)
	}
	var en1 string
	_ = json.Unmarshal(sr[1], &en1)
	if len(en1) != 8 || en1[:2] != "07" || string(sr[2]) != "8" {
		t.Fatalf("extranonce1 %q (node id 7 expected first), size %s", en1, sr[2])
	}

	call(tp.srv, ss, "mining.authorize", []any{"1BoatSLRHtKNngkdXEeobR76b53LETtpyT.w", "x"})
	if m := parseLine(t, c.take()[0]); errCode(t, m) != stratum.CodeUnauthorized || !strings.Contains(string(m.Error[1]), "address") {
		t.Fatalf("mainnet address on regtest: %s", m.Error)
	}

	call(tp.srv, ss, "mining.authorize", []any{regtestAddr + ".rig1", "x"})
	lines := c.take()
	if len(lines) != 3 {
		t.Fatalf("after authorize got %d lines: %v", len(lines), lines)
	}
	if m := parseLine(t, lines[0]); string(m.Result) != "true" {
		t.Fatalf("authorize reply %s", lines[0])
	}
	sd := parseLine(t, lines[1])
	if sd.Method != "mining.set_difficulty" {
		t.Fatalf("want set_difficulty first, got %s", lines[1])
	}
	// Regtest's network difficulty (its minimum) is no ceiling: the
	// session starts at --start-difficulty (1), above the miner's 0.5
	// floor, or the miner would send every other hash as a share.
	var d float64
	_ = json.Unmarshal(sd.Params[0], &d)
	if d != 1 {
		t.Fatalf("difficulty %v, want the start difficulty 1", d)
	}
	nt := parseLine(t, lines[2])
	if nt.Method != "mining.notify" || len(nt.Params) != 9 || string(nt.Params[8]) != "true" {
		t.Fatalf("want a clean notify, got %s", lines[2])
	}

	call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".other", "x", "00", "00000000", "00000000"})
	if m := parseLine(t, c.take()[0]); errCode(t, m) != stratum.CodeUnauthorized {
		t.Fatalf("submit as an unauthorized worker: %s", m.Error)
	}
	call(tp.srv, ss, "mining.get_transactions", []any{})
	if m := parseLine(t, c.take()[0]); errCode(t, m) != stratum.CodeOther {
		t.Fatalf("unknown method: %s", m.Error)
	}
	call(tp.srv, ss, "mining.extranonce.subscribe", []any{})
	call(tp.srv, ss, "mining.suggest_difficulty", []any{0.25})
	told := 0.0
	for _, l := range c.take() {
		m := parseLine(t, l)
		if m.Method == "mining.set_difficulty" {
			told = setDifficulty(t, l)
			continue
		}
		if m.Method == "" && string(m.Result) != "true" {
			t.Fatalf("reply %s", l)
		}
	}
	if told != 0.25 {
		t.Fatalf("suggest_difficulty 0.25 told %v", told)
	}

	// A solved share through the handler: accepted, block submitted
	// before the reply, share handed to the sink. At difficulty 0.25 a
	// share among the first 1000 nonces is almost surely only a block
	// (regtest's target), which is accepted all the same.
	var jobID string
	_ = json.Unmarshal(nt.Params[0], &jobID)
	en2 := "0102030405060708"
	var accepted bool
	for nonce := 0; nonce < 1000 && !accepted; nonce++ {
		call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".rig1", jobID, en2, nt.Params[7], fmt.Sprintf("%08x", nonce)})
		for _, l := range c.take() {
			m := parseLine(t, l)
			if m.Method != "" {
				continue
			}
			accepted = string(m.Result) == "true"
			if !accepted && errCode(t, m) != stratum.CodeLowDifficulty {
				t.Fatalf("submit: %s", l)
			}
		}
	}
	if !accepted {
		t.Fatal("no share accepted")
	}
	if n := tp.sub.count(); n != 1 {
		t.Fatalf("%d blocks submitted, want 1", n)
	}
	if rec := tp.blocks.wait(t, 1); len(rec) != 1 || !rec[0].Accepted {
		t.Fatalf("block not recorded: %+v", rec)
	}
	sh := tp.shares.all()
	if len(sh) != 1 || !sh[0].IsBlock || sh[0].Worker != "rig1" || sh[0].Address != regtestAddr || sh[0].ExtraNonce1 != en1 {
		t.Fatalf("shares %+v", sh)
	}
	st := tp.srv.Stats()
	if st.Accepted != 1 || st.BlocksFound != 1 || st.Rejected["unauthorized"] != 2 || st.Rejected["not subscribed"] != 1 || st.AuthorizedWorkers != 1 || st.Sessions != 1 || st.Hashrate <= 0 {
		t.Fatalf("stats %+v", st)
	}
	tp.srv.disconnect(ss)
	if st := tp.srv.Stats(); st.Sessions != 0 || st.AuthorizedWorkers != 0 {
		t.Fatalf("after disconnect: %+v", st)
	}
}

// subscribeAuthorize brings a memConn session to work-ready.
func subscribeAuthorize(t testing.TB, s *Server, c conn, user string, subParams []any) *session {
	t.Helper()
	ss := s.connect(c)
	call(s, ss, "mining.subscribe", subParams)
	call(s, ss, "mining.authorize", []any{user, ""})
	return ss
}

func TestSessionResume(t *testing.T) {
	tp := newTestPool(t, nil)
	c1 := &memConn{}
	ss1 := subscribeAuthorize(t, tp.srv, c1, regtestAddr, []any{"m"})
	old := ss1.en1Hex
	id := subscriptionID(t, c1)
	if id != tp.srv.sessionID(binary.BigEndian.Uint32(ss1.en1[:])) || strings.Contains(id, old) == false {
		t.Fatalf("subscribe answered session id %q for extranonce1 %s", id, old)
	}
	tp.srv.disconnect(ss1)

	// A fresh session must not get the parked extranonce1, nor one that
	// guesses its id: the bare extranonce1 (what the id used to be), or
	// the extranonce1 with a MAC from elsewhere.
	other := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m"})
	if other.en1Hex == old {
		t.Fatal("parked extranonce1 handed to another miner")
	}
	forged := old + subscriptionID(t, other.c.(*memConn))[2*Extranonce1Size:]
	for _, guess := range []string{old, forged, id[:len(id)-1], id + "00"} {
		if g := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m", guess}); g.en1Hex == old {
			t.Fatalf("session id %q took over extranonce1 %s", guess, old)
		}
	}
	ss2 := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m", id})
	if ss2.en1Hex != old {
		t.Fatalf("resume got %s, want %s", ss2.en1Hex, old)
	}
	if got := subscriptionID(t, ss2.c.(*memConn)); got != id {
		t.Fatalf("resumed session answered id %q, want %q", got, id)
	}
	// In use now: a second resume attempt gets a fresh one.
	ss3 := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m", id})
	if ss3.en1Hex == old {
		t.Fatal("extranonce1 in use handed out twice")
	}
	// Past the resume window the claim is gone.
	tp.srv.disconnect(ss2)
	tp.clock.add(resumeTTL + time.Second)
	ss4 := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m", id})
	if ss4.en1Hex == old {
		t.Fatal("resume honoured after the window")
	}
	// Another pool process (another key) does not honour this one's ids.
	tp2 := newTestPool(t, nil)
	if _, ok := tp2.srv.parseSessionID(id); ok {
		t.Fatal("a session id is valid in another process")
	}
}

// subscriptionID returns the session id of the subscribe reply c got.
func subscriptionID(t testing.TB, c *memConn) string {
	t.Helper()
	c.mu.Lock()
	lines := slices.Clone(c.lines)
	c.mu.Unlock()
	for _, line := range lines {
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal([]byte(line), &r) != nil || r.Result == nil {
			continue
		}
		sub, err := stratum.ParseSubscribeResult(r.Result)
		if err == nil {
			return sub.SessionID
		}
	}
	t.Fatal("no subscribe reply")
	return ""
}

func TestSetExtranonce(t *testing.T) {
	tp := newTestPool(t, nil)
	tp.srv.publish(testTemplate(t, 5, 0, false), true)
	c := &memConn{}
	ss := subscribeAuthorize(t, tp.srv, c, regtestAddr, []any{"m"})
	if err := tp.srv.reassignExtranonce(ss); err == nil {
		t.Fatal("extranonce changed without mining.extranonce.subscribe")
	}
	call(tp.srv, ss, "mining.extranonce.subscribe", []any{})
	old := ss.en1Hex
	c.take()
	if err := tp.srv.reassignExtranonce(ss); err != nil {
		t.Fatal(err)
	}
	lines := c.take()
	if len(lines) != 2 {
		t.Fatalf("lines %v", lines)
	}
	m := parseLine(t, lines[0])
	var en1 string
	_ = json.Unmarshal(m.Params[0], &en1)
	if m.Method != "mining.set_extranonce" || en1 == old || en1 != ss.en1Hex {
		t.Fatalf("set_extranonce %s (old %s)", lines[0], old)
	}
	if n := parseLine(t, lines[1]); n.Method != "mining.notify" || string(n.Params[8]) != "true" {
		t.Fatalf("want a clean job after the change: %s", lines[1])
	}
}

func TestVardiffRetargetAppliesOnNextJob(t *testing.T) {
	tp := newTestPool(t, func(c *Config) {
		c.MinDifficulty = 1e-12
		c.StartDifficulty = 1.0 / (1 << 30) // 1 share in ~4 hashes
	})
	tmpl := testTemplate(t, 1000, 1, true)
	tmpl.Bits = 0x2000ffff // network difficulty 2^-24: room above the share difficulty
	// About one share in 64 here also solves a block; the node refuses
	// them, so the job stays current (an accepted block makes it stale).
	tp.sub.verdict = "rejected: test"
	tp.srv.publish(tmpl, true)
	c := &memConn{}
	ss := subscribeAuthorize(t, tp.srv, c, regtestAddr+".w", []any{"m"})
	lines := c.take()
	var jobID string
	_ = json.Unmarshal(parseLine(t, lines[len(lines)-1]).Params[0], &jobID)
	start, _ := ss.diffs.Current()

	// Shares far faster than the 10 s interval: a retarget up after 30,
	// sent right after the 30th share's reply as set_difficulty and the
	// current job again without clean_jobs.
	accepted, nonce := 0, 0
	var afterLast []string
	for accepted < vardiffWindowShares {
		tp.clock.add(100 * time.Millisecond)
		call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".w", jobID, "0000000000000000", fmt.Sprintf("%08x", tmpl.CurTime), fmt.Sprintf("%08x", nonce)})
		lines := c.take()
		if m := parseLine(t, lines[0]); string(m.Result) == "true" {
			accepted++
			afterLast = lines[1:]
		}
		nonce++
	}
	if len(afterLast) != 2 || parseLine(t, afterLast[0]).Method != "mining.set_difficulty" {
		t.Fatalf("after the retargeting share: %v", afterLast)
	}
	if n := parseLine(t, afterLast[1]); n.Method != "mining.notify" || string(n.Params[8]) != "false" {
		t.Fatalf("job re-sent as %s", afterLast[1])
	}
	cur, _ := ss.diffs.Current()
	if cur != start*vardiffMaxStep {
		t.Fatalf("difficulty %v after a fast window, want %v", cur, start*vardiffMaxStep)
	}

	// Work at the old difficulty on the re-sent job is still accepted:
	// find a share meeting the old target but not the new.
	var oldOnly bool
	for ; nonce < 5000 && !oldOnly; nonce++ {
		call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".w", jobID, "0000000000000001", fmt.Sprintf("%08x", tmpl.CurTime), fmt.Sprintf("%08x", nonce)})
		for _, l := range c.take() {
			m := parseLine(t, l)
			if m.Method != "" {
				continue
			}
			if string(m.Result) != "true" {
				continue
			}
			last := tp.shares.all()
			sh := last[len(last)-1]
			if sh.ActualDiff < cur {
				oldOnly = true
				if sh.Difficulty != start {
					t.Fatalf("old-difficulty share credited at %v, want %v", sh.Difficulty, start)
				}
			}
		}
	}
	if !oldOnly {
		t.Fatal("no share between the old and new targets was accepted")
	}
}

func TestRetargetSendsDifficultyThenJob(t *testing.T) {
	tp := newTestPool(t, func(c *Config) {
		c.MinDifficulty = 1e-12
		c.StartDifficulty = 1.0 / (1 << 30)
	})
	tmpl := testTemplate(t, 1000, 1, true)
	tmpl.Bits = 0x2000ffff
	tp.srv.publish(tmpl, true)
	c := &memConn{}
	ss := subscribeAuthorize(t, tp.srv, c, regtestAddr+".w", []any{"m"})
	c.take()
	j := tp.srv.jobs.Current()
	ss.mu.Lock()
	changed := tp.srv.retargetLocked(ss, 4, j)
	tp.srv.sendJobLocked(ss, j, false)
	ss.mu.Unlock()
	lines := c.take()
	if !changed || len(lines) != 2 || parseLine(t, lines[0]).Method != "mining.set_difficulty" {
		t.Fatalf("lines %v", lines)
	}
	if n := parseLine(t, lines[1]); n.Method != "mining.notify" || string(n.Params[8]) != "false" {
		t.Fatalf("re-sent job %s", lines[1])
	}
}

// Run's throttle runs on the bubble's fake clock: time moves only when
// every goroutine is blocked, so "not yet" is checked exactly, not slept on.
func TestRunCleanAndCoalescedJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const refresh = 30 * time.Second
		tp := newTestPool(t, func(c *Config) { c.JobRefresh = refresh })
		tp.srv.now = time.Now // the bubble's clock, the one Run's timer uses
		c := &memConn{}
		subscribeAuthorize(t, tp.srv, c, regtestAddr, []any{"m"})
		templates := make(chan *node.Template)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tp.srv.Run(ctx, templates) }()

		base := testTemplate(t, 50, 0, false)
		templates <- base
		synctest.Wait()
		first := tp.srv.jobs.Current()
		if first == nil || !first.Clean {
			t.Fatalf("first job %+v, want a clean one", first)
		}
		// Three refreshes in quick succession: held back, then coalesced
		// into one job when the refresh interval is over.
		for i := range 3 {
			u := *base
			u.CurTime += int64(i + 1)
			templates <- &u
		}
		time.Sleep(refresh - time.Nanosecond)
		synctest.Wait()
		if cur := tp.srv.jobs.Current(); cur != first {
			t.Fatalf("job %s sent %v after the last one, want none before %v", cur.ID, refresh-time.Nanosecond, refresh)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		second := tp.srv.jobs.Current()
		if second == first || second.Clean || second.curTime != uint32(base.CurTime+3) || second.Seq <= first.Seq {
			t.Fatalf("coalesced job: clean=%v curtime=+%d seq=%d (first %d)", second.Clean,
				second.curTime-uint32(base.CurTime), second.Seq, first.Seq)
		}
		// A new block goes out at once, clean, however recent the last job.
		nb := *base
		nb.Height++
		nb.PreviousBlockHash = hashOf(t, strings.Repeat("1", 64))
		templates <- &nb
		synctest.Wait()
		if cur := tp.srv.jobs.Current(); cur.Height != nb.Height || !cur.Clean {
			t.Fatalf("after a new block: job at height %d clean=%v, want %d clean", cur.Height, cur.Clean, nb.Height)
		}
		var notifies, cleans int
		for _, l := range c.take() {
			if m := parseLine(t, l); m.Method == "mining.notify" {
				notifies++
				if string(m.Params[8]) == "true" {
					cleans++
				}
			}
		}
		if notifies != 3 || cleans != 2 {
			t.Fatalf("%d notifies (%d clean), want 3 (2 clean)", notifies, cleans)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStatsHashrateWindow(t *testing.T) {
	tp := newTestPool(t, nil)
	if st := tp.srv.Stats(); st.Hashrate != 0 {
		t.Fatalf("hashrate %v with no shares", st.Hashrate)
	}
	for range 600 {
		tp.clock.add(time.Second)
		tp.srv.stats.accept(1, tp.clock.now())
	}
	// One diff-1 share per second is 2^32 H/s.
	if st := tp.srv.Stats(); st.Hashrate < 0.95*4294967296 || st.Hashrate > 1.05*4294967296 {
		t.Fatalf("hashrate %g", st.Hashrate)
	}
	tp.clock.add(11 * time.Minute)
	if st := tp.srv.Stats(); st.Hashrate != 0 {
		t.Fatalf("hashrate %g after 11 idle minutes", st.Hashrate)
	}
}

// TestAcceptedOnlyOnceKept: a valid share is answered "true" only when the
// sink says it is kept, and with a temporary error when nothing can keep
// it, so a miner's failover moves it elsewhere instead of mining for
// nothing.
func TestAcceptedOnlyOnceKept(t *testing.T) {
	tp := newTestPool(t, func(c *Config) { c.MinDifficulty = 1e-9; c.StartDifficulty = 1e-9 })
	tmpl := testTemplate(t, 120, 2, false)
	tmpl.Bits = 0x1d00ffff // difficulty 1: no share here is a block
	if !tp.srv.publish(tmpl, true) {
		t.Fatal("publish failed")
	}
	c := &memConn{}
	ss := subscribeAuthorize(t, tp.srv, c, regtestAddr+".rig", []any{"test/1"})
	var params []json.RawMessage
	for _, l := range c.take() {
		if m := parseLine(t, l); m.Method == "mining.notify" {
			params = m.Params
		}
	}
	if params == nil {
		t.Fatal("no job")
	}
	var jobID string
	_ = json.Unmarshal(params[0], &jobID)
	nonce := 0
	// submit sends shares until one passes the checks (about half do at
	// this difficulty) and returns what was written after it.
	submit := func() []string {
		for {
			nonce++
			n := len(tp.shares.all())
			call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".rig", jobID, "0102030405060708", params[7], fmt.Sprintf("%08x", nonce)})
			lines := c.take()
			if len(lines) == 1 {
				if m := parseLine(t, lines[0]); m.Error != nil && errCode(t, m) == stratum.CodeLowDifficulty {
					continue
				}
			}
			if len(lines) == 0 && len(tp.shares.all()) == n {
				t.Fatal("a share neither answered nor handed to the sink")
			}
			return lines
		}
	}

	tp.shares.mu.Lock()
	tp.shares.fail = errors.New("ledger: shares cannot be kept now")
	tp.shares.mu.Unlock()
	lines := submit()
	if len(lines) != 1 {
		t.Fatalf("refused share: %d lines %v", len(lines), lines)
	}
	if m := parseLine(t, lines[0]); errCode(t, m) != stratum.CodeOther || !strings.Contains(string(m.Error[1]), "cannot record shares") {
		t.Fatalf("share nothing could keep answered %s", lines[0])
	}
	if st := tp.srv.Stats(); st.Accepted != 0 || st.Rejected[reasonNotKept] != 1 {
		t.Fatalf("stats after a refused share: %+v", st)
	}

	tp.shares.mu.Lock()
	tp.shares.fail, tp.shares.hold = nil, true
	tp.shares.mu.Unlock()
	if lines := submit(); len(lines) != 0 {
		t.Fatalf("answered before the share was kept: %v", lines)
	}
	if len(tp.shares.all()) != 1 {
		t.Fatal("share not handed to the sink")
	}
	tp.shares.release()
	lines = c.take()
	if len(lines) != 1 || string(parseLine(t, lines[0]).Result) != "true" {
		t.Fatalf("after the share was kept: %v", lines)
	}
	if st := tp.srv.Stats(); st.Accepted != 1 {
		t.Fatalf("stats after the kept share: %+v", st)
	}
}

// orderLog records the order of a found block's steps.
type orderLog struct {
	mu    sync.Mutex
	steps []string
}

func (o *orderLog) add(s string) { o.mu.Lock(); o.steps = append(o.steps, s); o.mu.Unlock() }

type orderJournal struct {
	log    *orderLog
	blocks []record.Block
}

func (j *orderJournal) JournalBlock(b record.Block, decided bool) error {
	j.log.add(fmt.Sprintf("journal decided=%v", decided))
	j.blocks = append(j.blocks, b)
	return nil
}

type orderSubmitter struct{ log *orderLog }

func (s orderSubmitter) SubmitBlock(context.Context, string) (string, error) {
	s.log.add("submitblock")
	return "", nil
}

// TestBlockJournaledBeforeSubmitAndReply: a found block is in the journal
// before submitblock (the finder survives a crash during it) and again
// with its verdict before the miner's reply.
func TestBlockJournaledBeforeSubmitAndReply(t *testing.T) {
	ol := &orderLog{}
	oj := &orderJournal{log: ol}
	cfg := Config{Network: &chaincfg.RegressionNetParams, PoolAddress: regtestAddr, CoinbaseTag: "/hf/",
		MinDifficulty: 1e-9, StartDifficulty: 1e-9, Logger: quietLogger(), BlockJournal: oj}
	srv, err := NewServer(cfg, orderSubmitter{ol}, &fakeShares{}, &fakeBlocks{})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.publish(testTemplate(t, 120, 2, true), true) {
		t.Fatal("publish failed")
	}
	c := &memConn{}
	ss := subscribeAuthorize(t, srv, c, regtestAddr+".rig", []any{"test/1"})
	var params []json.RawMessage
	for _, l := range c.take() {
		if m := parseLine(t, l); m.Method == "mining.notify" {
			params = m.Params
		}
	}
	var jobID string
	_ = json.Unmarshal(params[0], &jobID)
	for nonce := 0; nonce < 1000; nonce++ {
		call(srv, ss, "mining.submit", []any{regtestAddr + ".rig", jobID, "0102030405060708", params[7], fmt.Sprintf("%08x", nonce)})
		accepted := false
		for _, l := range c.take() {
			if m := parseLine(t, l); m.Method == "" && string(m.Result) == "true" {
				accepted = true
			}
		}
		if accepted {
			ol.add("reply")
			break
		}
	}
	want := []string{"journal decided=false", "submitblock", "journal decided=true", "reply"}
	if fmt.Sprint(ol.steps) != fmt.Sprint(want) {
		t.Fatalf("steps %v, want %v", ol.steps, want)
	}
	b := oj.blocks[1]
	if !b.Accepted || b.Address != regtestAddr || b.Worker != "rig" || len(b.Header) != 160 || b.Coinbase == "" || b.Hash != oj.blocks[0].Hash {
		t.Fatalf("journaled block %+v", b)
	}
}

// A session flooding valid shares faster than they are kept waits in its
// own reader once maxSharesInFlight are in flight; other sessions' shares
// still reach the sink at once.
func TestFloodingSessionWaitsAlone(t *testing.T) {
	tp := newTestPool(t, func(c *Config) { c.MinDifficulty = 1e-12; c.StartDifficulty = 1e-12 })
	tmpl := testTemplate(t, 120, 2, false)
	tmpl.Bits = 0x1d00ffff // no share is a block
	if !tp.srv.publish(tmpl, true) {
		t.Fatal("publish failed")
	}
	tp.shares.mu.Lock()
	tp.shares.hold = true
	tp.shares.mu.Unlock()
	job := func(c *memConn) (string, json.RawMessage) {
		for _, l := range c.take() {
			if m := parseLine(t, l); m.Method == "mining.notify" {
				var id string
				_ = json.Unmarshal(m.Params[0], &id)
				return id, m.Params[7]
			}
		}
		t.Fatal("no job")
		return "", nil
	}
	ca, cb := &memConn{discard: false}, &memConn{}
	a := subscribeAuthorize(t, tp.srv, ca, regtestAddr+".flood", []any{"m"})
	b := subscribeAuthorize(t, tp.srv, cb, regtestAddr+".honest", []any{"m"})
	jobA, ntimeA := job(ca)
	jobB, ntimeB := job(cb)
	const flood = maxSharesInFlight + 10
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := range flood {
			call(tp.srv, a, "mining.submit", []any{regtestAddr + ".flood", jobA, "0102030405060708", ntimeA, fmt.Sprintf("%08x", i)})
		}
	}()
	for len(tp.shares.all()) < maxSharesInFlight {
		select {
		case <-floodDone:
			t.Fatal("the flood was never held back")
		default:
			runtime.Gosched()
		}
	}
	call(tp.srv, b, "mining.submit", []any{regtestAddr + ".honest", jobB, "0102030405060708", ntimeB, "00000001"})
	if got := len(tp.shares.all()); got != maxSharesInFlight+1 {
		t.Fatalf("%d shares handed over with the flood held at %d: the honest share did not pass", got, maxSharesInFlight)
	}
	select {
	case <-floodDone:
		t.Fatal("flooding session went on past its limit")
	default:
	}
	tp.shares.release()
	<-floodDone
	if got := len(tp.shares.all()); got != flood+1 {
		t.Fatalf("%d shares handed over, want %d", got, flood+1)
	}
}

// TestSessionResumeAfterRestart: with the pool's shared key, a restarted
// node gives its previous process's miners their extranonce1 back for a
// resume window after its start; a node with another id never hands out
// an extranonce1 of this node's.
func TestSessionResumeAfterRestart(t *testing.T) {
	key := []byte("the pool's resume key")
	withKey := func(c *Config) { c.ResumeKey = key }
	tp := newTestPool(t, withKey)
	ss := subscribeAuthorize(t, tp.srv, &memConn{}, regtestAddr, []any{"m"})
	old, id := ss.en1Hex, subscriptionID(t, ss.c.(*memConn))

	restarted := newTestPool(t, withKey)
	restarted.srv.en1.started = restarted.clock.now()
	back := subscribeAuthorize(t, restarted.srv, &memConn{}, regtestAddr, []any{"m", id})
	if back.en1Hex != old {
		t.Fatalf("after a restart the id gave %s, want %s", back.en1Hex, old)
	}
	// Taken now: a second claim gets a fresh one.
	if again := subscribeAuthorize(t, restarted.srv, &memConn{}, regtestAddr, []any{"m", id}); again.en1Hex == old {
		t.Fatal("extranonce1 handed out twice after a restart")
	}

	other := newTestPool(t, func(c *Config) { withKey(c); c.NodeID = 9 })
	other.srv.en1.started = other.clock.now()
	if _, ok := other.srv.parseSessionID(id); !ok {
		t.Fatal("the pool's key does not verify on another node")
	}
	if g := subscribeAuthorize(t, other.srv, &memConn{}, regtestAddr, []any{"m", id}); g.en1Hex == old || g.en1[0] != 9 {
		t.Fatalf("node 9 gave %s for node 7's id", g.en1Hex)
	}

	late := newTestPool(t, withKey)
	late.srv.en1.started = late.clock.now()
	late.clock.add(resumeTTL + time.Second)
	if g := subscribeAuthorize(t, late.srv, &memConn{}, regtestAddr, []any{"m", id}); g.en1Hex == old {
		t.Fatal("resume honoured past the window after a restart")
	}
}
