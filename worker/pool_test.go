package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashforge/hashforge/stratum"
)

// The scripted pool below checks shares with its own code (crypto/sha256 and
// big.Int), not with the miner's, so a bug shared by both cannot hide.

const (
	testDiff   = 1.0 / (1 << 16) // a share every ~65536 hashes
	testWait   = 60 * time.Second
	testCoinb1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3201320b2f503253482f627463642f049f48066b0c00000000"
	testCoinb2 = "112f676f506f6f6c2f717047652d4f4e7a6800000000030000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf90011102401000000160014caa8fe5b0c592fca08b70f3b7d821ea4dbfbd62c00e1f5050000000016001427cac5503836765cd10751d27ab4a6e17d7a80d400000000"
)

type share struct {
	session    string
	job        string
	en1        string
	version    uint32
	hasVersion bool
	valid      bool
	why        string
	nParams    int
}

// flap is what a flapping pool saw: a miner's session it dropped (on the
// session's first mining.submit) or a probe's accepted mining.authorize (a
// connection that sent no mining.configure, as the miner's sessions do).
type flap struct {
	at   time.Time
	drop bool
}

type poolSession struct {
	id     string
	sess   *stratum.Session
	en1s   map[string]bool // extranonce1 values shares may use
	en1    string
	masks  []uint32 // masks shares may use (old and new during a change)
	authed bool
	// configured: the connection sent mining.configure, as the miner's
	// sessions do and its probes do not.
	configured bool
	dropped    bool
}

type testPool struct {
	t    *testing.T
	ln   net.Listener
	srv  *stratum.Server
	addr string
	stop context.CancelFunc
	done chan struct{}

	mu         sync.Mutex
	mask       uint32 // 0: refuse mining.configure
	nbits      string // of new jobs; 1d00ffff (no share is a block) when empty
	en2Size    int
	jobs       map[string]stratum.NotifyParams
	cur        stratum.NotifyParams
	nextJob    int
	nextSess   int
	sessions   map[*stratum.Session]*poolSession
	byID       map[string]*poolSession
	shares     []share
	subscribes [][]string // params of every mining.subscribe
	authorizes int        // every mining.authorize, refused ones too
	flaps      []flap     // with dropOnSubmit: drops and probes, in order
	methods    []string
	params     map[string][]json.RawMessage // params of every request, by method
	changed    chan struct{}

	refuseAuth    bool // answer mining.authorize with error 24
	dropAfterAuth bool // close the session right after a successful authorize
	// dropOnSubmit closes a session at its first mining.submit: the miner
	// has then seen its authorize succeed, which a drop right after the
	// reply does not promise.
	dropOnSubmit bool
	silentSubmit bool // never answer mining.submit
}

func startPool(t *testing.T, addr string, mask uint32) *testPool {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return startPoolOn(t, ln, "stratum+tcp://", mask)
}

// startPoolOn serves the scripted pool on ln, which miners reach at
// scheme + ln's address.
func startPoolOn(t *testing.T, ln net.Listener, scheme string, mask uint32) *testPool {
	t.Helper()
	p := &testPool{
		t: t, ln: ln, addr: scheme + ln.Addr().String(), mask: mask, en2Size: 1,
		jobs: map[string]stratum.NotifyParams{}, sessions: map[*stratum.Session]*poolSession{},
		byID: map[string]*poolSession{}, changed: make(chan struct{}), done: make(chan struct{}),
		params: map[string][]json.RawMessage{},
	}
	p.newJob(true)
	p.srv = &stratum.Server{Handler: p, MaxRequestsPerSecond: 100000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go func() { p.srv.Serve(ctx, ln); close(p.done) }()
	t.Cleanup(p.close)
	return p
}

func (p *testPool) close() {
	p.stop()
	<-p.done
}

// newJob makes a job with a random prevhash and a two-entry branch.
func (p *testPool) newJob(clean bool) stratum.NotifyParams {
	p.nextJob++
	if p.nbits == "" {
		p.nbits = "1d00ffff"
	}
	rnd := func() string {
		var b [32]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	j := stratum.NotifyParams{
		JobID: fmt.Sprintf("j%d", p.nextJob), PrevHash: rnd(), Coinb1: testCoinb1, Coinb2: testCoinb2,
		MerkleBranch: []string{rnd(), rnd()}, Version: "20000000", NBits: p.nbits, NTime: "6b06489e", CleanJobs: clean,
	}
	if clean {
		clear(p.jobs)
	}
	p.jobs[j.JobID] = j
	p.cur = j
	return j
}

func (p *testPool) event() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitFor polls cond under the lock, woken by every pool event.
func (p *testPool) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.After(testWait)
	for {
		p.mu.Lock()
		ok := cond()
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (p *testPool) Connected(s *stratum.Session) {}

func (p *testPool) Disconnected(s *stratum.Session, err error) {
	p.mu.Lock()
	delete(p.sessions, s)
	p.event()
	p.mu.Unlock()
}

func (p *testPool) Handle(s *stratum.Session, req *stratum.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.event()
	p.methods = append(p.methods, req.Method)
	p.params[req.Method] = append(p.params[req.Method], append(json.RawMessage{}, req.Params...))
	switch req.Method {
	case "mining.configure":
		p.session(s).configured = true
		if p.mask == 0 {
			s.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "unknown method"))
			return
		}
		s.Reply(req.ID, map[string]any{"version-rolling": true, "version-rolling.mask": fmt.Sprintf("%08x", p.mask)})
		ps := p.session(s)
		ps.masks = []uint32{p.mask}
	case "mining.subscribe":
		var params []string
		json.Unmarshal(req.Params, &params)
		p.subscribes = append(p.subscribes, params)
		ps := p.session(s)
		if len(params) > 1 {
			if old := p.byID[params[1]]; old != nil {
				ps.id, ps.en1 = old.id, old.en1
				ps.en1s = map[string]bool{old.en1: true}
			}
		}
		p.byID[ps.id] = ps
		s.Reply(req.ID, stratum.SubscribeResult(ps.id, ps.en1, p.en2Size))
	case "mining.authorize":
		p.authorizes++
		if p.refuseAuth {
			s.ReplyError(req.ID, stratum.Errorf(stratum.CodeUnauthorized, "unauthorized worker"))
			return
		}
		ps := p.session(s)
		ps.authed = true
		if p.dropOnSubmit && !ps.configured {
			p.flaps = append(p.flaps, flap{at: time.Now()})
		}
		s.SetAuthorized()
		s.Reply(req.ID, true)
		s.Notify("mining.set_difficulty", []any{testDiff})
		s.Notify("mining.notify", p.cur)
		if p.dropAfterAuth {
			s.Close("test pool drops every session after authorize")
		}
	case "mining.extranonce.subscribe", "mining.suggest_difficulty":
		s.Reply(req.ID, true)
	case "mining.submit":
		if ps := p.session(s); p.dropOnSubmit && !ps.dropped {
			// Recorded before the drop: the miner can only react later.
			ps.dropped = true
			p.flaps = append(p.flaps, flap{at: time.Now(), drop: true})
			s.Close("test pool drops every session at its first share")
			return
		}
		sh := p.verify(p.session(s), req.Params)
		p.shares = append(p.shares, sh)
		if p.silentSubmit {
			return
		}
		if sh.valid {
			s.Reply(req.ID, true)
		} else {
			s.ReplyError(req.ID, stratum.Errorf(stratum.CodeLowDifficulty, "%s", sh.why))
		}
	default:
		s.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "unknown method"))
	}
}

func (p *testPool) session(s *stratum.Session) *poolSession {
	ps := p.sessions[s]
	if ps == nil {
		p.nextSess++
		en1 := fmt.Sprintf("%08x", 0xa0000000+p.nextSess)
		ps = &poolSession{id: fmt.Sprintf("sid%d", p.nextSess), sess: s, en1: en1, en1s: map[string]bool{en1: true}}
		p.sessions[s] = ps
	}
	return ps
}

func sha256dRef(b []byte) []byte {
	a := sha256.Sum256(b)
	c := sha256.Sum256(a[:])
	return c[:]
}

// verify rebuilds the header from the submit, independently of the miner.
func (p *testPool) verify(ps *poolSession, params json.RawMessage) share {
	var raw []string
	if err := json.Unmarshal(params, &raw); err != nil || len(raw) < 5 {
		return share{why: "bad params"}
	}
	sh := share{session: ps.id, job: raw[1], nParams: len(raw)}
	job, ok := p.jobs[raw[1]]
	if !ok {
		sh.why = "unknown or stale job"
		return sh
	}
	en2, _ := hex.DecodeString(raw[2])
	if len(en2) != p.en2Size {
		sh.why = "extranonce2 size"
		return sh
	}
	be := func(s string) uint32 { v, _ := strconv.ParseUint(s, 16, 32); return uint32(v) }
	version := be(job.Version)
	if len(raw) == 6 {
		bits := be(raw[5])
		sh.hasVersion = true
		okMask := false
		for _, m := range ps.masks {
			if bits&^m == 0 {
				okMask = true
			}
		}
		if !okMask {
			sh.why = "version bits outside mask"
			return sh
		}
		version = version | bits // job version has no bits inside any test mask
	}
	sh.version = version
	// Any en1 this session may still use; the share records which one.
	for en1 := range ps.en1s {
		cb := append(append(append(mustDecode(job.Coinb1), mustDecode(en1)...), en2...), mustDecode(job.Coinb2)...)
		root := sha256dRef(cb)
		for _, b := range job.MerkleBranch {
			root = sha256dRef(append(append([]byte{}, root...), mustDecode(b)...))
		}
		var h bytes.Buffer
		binary.Write(&h, binary.LittleEndian, version)
		prev := mustDecode(job.PrevHash)
		for i := 0; i < 32; i += 4 {
			h.Write([]byte{prev[i+3], prev[i+2], prev[i+1], prev[i]})
		}
		h.Write(root)
		binary.Write(&h, binary.LittleEndian, be(raw[3]))
		binary.Write(&h, binary.LittleEndian, be(job.NBits))
		binary.Write(&h, binary.LittleEndian, be(raw[4]))
		hash := sha256dRef(h.Bytes())
		for i, j := 0, 31; i < j; i, j = i+1, j-1 {
			hash[i], hash[j] = hash[j], hash[i]
		}
		if new(big.Int).SetBytes(hash).Cmp(refTarget(testDiff)) <= 0 {
			sh.valid, sh.en1 = true, en1
			return sh
		}
	}
	sh.why = "hash above target"
	return sh
}

func mustDecode(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// broadcast sends a notification to every authorized session.
func (p *testPool) broadcast(method string, params any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, ps := range p.sessions {
		if ps.authed {
			s.Notify(method, params)
		}
	}
}

func (p *testPool) validShares(cond func(share) bool) int {
	n := 0
	for _, s := range p.shares {
		if s.valid && (cond == nil || cond(s)) {
			n++
		}
	}
	return n
}

func (p *testPool) assertNoInvalid() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.shares {
		if !s.valid {
			p.t.Errorf("invalid share from the miner: %+v", s)
		}
	}
}

func testMiner(t *testing.T, urls ...string) (*Miner, context.CancelFunc) {
	t.Helper()
	return testMinerCfg(t, Config{URLs: urls})
}

func testMinerCfg(t *testing.T, cfg Config) (*Miner, context.CancelFunc) {
	t.Helper()
	cfg.User = "bcrt1qtest.w1"
	cfg.Threads = 1
	cfg.Slicing = Slicing{Min: 4096, Max: 1 << 16, Duration: 20 * time.Millisecond}
	cfg.Output = io.Discard
	cfg.BackoffMin = 20 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	cfg.ConfigureTimeout = 2 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.nonceBits == 0 {
		cfg.nonceBits = 10 // version rolling within a second
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return m, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(string(bytes.TrimSpace(b)))
	}
	return len(b), nil
}

func TestPoolFlowSharesVerified(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	m, stop := testMiner(t, p.addr)
	p.waitFor("30 valid shares, some version-rolled", func() bool {
		return p.validShares(nil) >= 30 && p.validShares(func(s share) bool { return s.version != 0x20000000 }) > 0
	})
	// Sent on the side of the handshake, so it may trail the first shares.
	p.waitFor("mining.extranonce.subscribe", func() bool { return len(p.params["mining.extranonce.subscribe"]) > 0 })
	stop()
	p.assertNoInvalid()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.methods[0] != "mining.configure" || p.methods[1] != "mining.subscribe" {
		t.Errorf("handshake order %v", p.methods[:4])
	}
	if got := p.params["mining.extranonce.subscribe"]; len(got) != 1 || string(got[0]) != "[]" {
		t.Errorf("mining.extranonce.subscribe params %s, want one call with []", got)
	}
	if got := p.params["mining.suggest_difficulty"]; len(got) != 0 {
		t.Errorf("mining.suggest_difficulty sent without --suggest-diff: %s", got)
	}
	if got := p.subscribes[0]; len(got) != 1 || got[0] != "hashforge/"+Version {
		t.Errorf("subscribe params %q", got)
	}
	for _, s := range p.shares {
		if !s.hasVersion || s.version&^0x1fffe000 != 0x20000000 {
			t.Errorf("share version %08x (has bits %v)", s.version, s.hasVersion)
		}
	}
	st := m.Stats()
	if st.Accepted < 30 || st.Rejected != 0 || st.HWErrors != 0 || st.Difficulty != testDiff {
		t.Errorf("stats %+v", st)
	}
	// Every share the pool saw was counted as submitted, and each one has
	// exactly one outcome.
	if st.Submitted != uint64(len(p.shares)) || st.Accepted+st.Rejected+st.Stale+st.Lost != st.Submitted {
		t.Errorf("pool saw %d shares; stats submitted %d = accepted %d + rejected %d + stale %d + lost %d?",
			len(p.shares), st.Submitted, st.Accepted, st.Rejected, st.Stale, st.Lost)
	}
}

func TestCleanJobStopsOldWork(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	_, stop := testMiner(t, p.addr)
	defer stop()
	p.waitFor("shares on the first job", func() bool { return p.validShares(nil) >= 5 })
	p.mu.Lock()
	old := p.cur.JobID
	job := p.newJob(true)
	p.mu.Unlock()
	p.broadcast("mining.notify", job)
	var mark int
	p.waitFor("shares on the clean job", func() bool {
		n := p.validShares(func(s share) bool { return s.job == job.JobID })
		if n == 1 {
			mark = len(p.shares)
		}
		return n >= 10
	})
	p.mu.Lock()
	for _, s := range p.shares[mark:] {
		if s.job == old {
			t.Errorf("share for the old job %s after the clean job: %+v", old, s)
		}
	}
	p.mu.Unlock()
	stop()
	// Shares for the old job that were in flight when the clean job went
	// out are refused by the pool as stale; anything else must be valid.
	p.mu.Lock()
	for _, s := range p.shares {
		if !s.valid && !(s.job == old && s.why == "unknown or stale job") {
			t.Errorf("invalid share %+v", s)
		}
	}
	p.mu.Unlock()
}

func TestSetExtranonceAndVersionMask(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	_, stop := testMiner(t, p.addr)
	defer stop()
	p.waitFor("first shares", func() bool { return p.validShares(nil) >= 5 })

	const newEn1 = "c0ffee01"
	p.mu.Lock()
	for s, ps := range p.sessions {
		ps.en1s[newEn1] = true
		s.Notify("mining.set_extranonce", []any{newEn1, 1})
	}
	p.mu.Unlock()
	var mark int
	p.waitFor("shares with the new extranonce1", func() bool {
		n := p.validShares(func(s share) bool { return s.en1 == newEn1 })
		if n == 1 {
			mark = len(p.shares)
		}
		return n >= 10
	})
	p.mu.Lock()
	for _, s := range p.shares[mark:] {
		if s.en1 != newEn1 {
			t.Errorf("share with the old extranonce1 after the change: %+v", s)
		}
	}
	const newMask = 0x00001fe0
	for s, ps := range p.sessions {
		ps.masks = append(ps.masks, newMask)
		s.Notify("mining.set_version_mask", []any{fmt.Sprintf("%08x", newMask)})
	}
	p.mu.Unlock()
	p.waitFor("shares rolling the new mask", func() bool {
		n := p.validShares(func(s share) bool { return s.version&newMask != 0 })
		if n == 1 {
			mark = len(p.shares)
		}
		return n >= 5
	})
	p.mu.Lock()
	for _, s := range p.shares[mark:] {
		if s.version&^(newMask|0x20000000) != 0 {
			t.Errorf("share outside the new mask: %08x", s.version)
		}
	}
	p.mu.Unlock()
	stop()
	p.assertNoInvalid()
}

func TestReconnectResumesSession(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	_, stop := testMiner(t, p.addr)
	defer stop()
	p.waitFor("shares", func() bool { return p.validShares(nil) >= 3 })
	p.mu.Lock()
	for s := range p.sessions {
		s.Close("test drops the connection")
	}
	p.mu.Unlock()
	p.waitFor("a resumed session with shares", func() bool {
		return len(p.subscribes) >= 2 && p.authorizes >= 2 && p.validShares(nil) >= 6
	})
	p.mu.Lock()
	first, second := p.subscribes[0], p.subscribes[1]
	p.mu.Unlock()
	if len(first) != 1 || len(second) != 2 || second[1] != "sid1" {
		t.Errorf("subscribe params %q then %q, want the session id sid1 resent", first, second)
	}
	stop()
	// Shares in flight when the connection dropped are lost, not invalid.
	p.assertNoInvalid()
}

func TestFailoverAndReturnToPrimary(t *testing.T) {
	// Reserve an address for the primary, then leave it closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	primaryAddr := ln.Addr().String()
	ln.Close()
	backup := startPool(t, "", 0x1fffe000)
	m, stop := testMinerCfg(t, Config{URLs: []string{"stratum+tcp://" + primaryAddr, backup.addr}, ProbeInterval: 100 * time.Millisecond})
	defer stop()
	backup.waitFor("shares on the backup", func() bool { return backup.validShares(nil) >= 3 })
	if st := m.Stats(); st.Pool != backup.addr {
		t.Errorf("stats pool %q, want %q", st.Pool, backup.addr)
	}
	primary := startPool(t, primaryAddr, 0x1fffe000)
	primary.waitFor("shares on the primary", func() bool { return primary.validShares(nil) >= 3 })
	backup.waitFor("the backup session to end", func() bool { return len(backup.sessions) == 0 })
	stop()
	backup.assertNoInvalid()
	primary.assertNoInvalid()
}

func TestClientReconnectHonoured(t *testing.T) {
	a := startPool(t, "", 0x1fffe000)
	b := startPool(t, "", 0x1fffe000)
	_, stop := testMiner(t, a.addr)
	defer stop()
	a.waitFor("shares on a", func() bool { return a.validShares(nil) >= 2 })
	_, port, _ := net.SplitHostPort(b.ln.Addr().String())
	// Empty host: same host, new port; the port as a string, as some pools send it.
	a.broadcast("client.reconnect", []any{"", port, 0})
	b.waitFor("shares on b", func() bool { return b.validShares(nil) >= 2 })
	a.waitFor("a to be left", func() bool { return len(a.sessions) == 0 })
	stop()
	a.assertNoInvalid()
	b.assertNoInvalid()
}

func TestGarbageFromPool(t *testing.T) {
	p := startPool(t, "", 0) // refuses mining.configure too
	// Without version rolling a one-byte extranonce2 needs a larger nonce
	// space to last the test.
	m, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, nonceBits: 24})
	defer stop()
	p.waitFor("shares", func() bool { return p.validShares(nil) >= 2 })
	p.mu.Lock()
	for s := range p.sessions {
		for _, line := range []string{
			"this is not json",
			`{"id":null,"method":"mining.notify","params":`,
			`[1,2,3]`,
			`{"id":null,"method":42,"params":[]}`,
			`{"id":7,"method":"mining.frobnicate","params":[]}`,
			`{"id":null,"method":"mining.notify","params":[1,2,3]}`,
			`{"id":null,"method":"mining.notify","params":["x","zz","00","00",[],"20000000","207fffff","6b06489e",true]}`,
			`{"id":null,"method":"mining.set_difficulty","params":["abc"]}`,
			`{"id":null,"method":"mining.set_difficulty","params":[-5]}`,
			`{"id":null,"method":"mining.set_extranonce","params":[12,"x"]}`,
			`{"id":null,"method":"mining.set_version_mask","params":[{}]}`,
			`{"id":null,"method":"client.reconnect","params":[{},[]]}`,
			`{"id":8,"method":"client.get_version","params":[]}`,
			`{"id":9,"method":"client.show_message","params":["hello from the test pool"]}`,
		} {
			s.SendLine([]byte(line + "\n"))
		}
	}
	n := len(p.shares)
	p.mu.Unlock()
	p.waitFor("more shares on the same connection", func() bool { return p.validShares(nil) >= n+5 })
	stop()
	p.assertNoInvalid()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.subscribes) != 1 {
		t.Errorf("miner reconnected (%d subscribes); garbage must not end the session", len(p.subscribes))
	}
	for _, s := range p.shares {
		if s.nParams != 5 {
			t.Errorf("share with %d params from a pool without version rolling", s.nParams)
		}
	}
	if m.Stats().HWErrors != 0 {
		t.Error("hardware errors")
	}
}

func TestDeviceSpecs(t *testing.T) {
	// Builds with -tags opencl test the device in device_opencl_test.go.
	if _, err := ParseDevices("opencl:0", 1, "", Slicing{}); openCLDevice == nil && (err == nil || !bytes.Contains([]byte(err.Error()), []byte("this build has no OpenCL support"))) {
		t.Errorf("opencl device: %v", err)
	}
	if _, err := ParseDevices("gpu", 1, "", Slicing{}); err == nil {
		t.Error("unknown device accepted")
	}
	if _, err := ParseDevices("cpu", 1, "no-such-impl", Slicing{}); err == nil {
		t.Error("unknown implementation accepted")
	}
	d, err := ParseDevices("", 2, "", Slicing{})
	if err != nil || len(d) != 1 || d[0].Name() != "cpu" {
		t.Errorf("default device %v %v", d, err)
	}
}

func TestBenchmarkMode(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	m, err := New(Config{Benchmark: true, BenchmarkDiff: 1.0 / (1 << 20), Threads: 1, JSONStats: true,
		Output: lockedWriter{&out, &mu}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.After(testWait)
	for m.Stats().Accepted < 3 {
		select {
		case <-deadline:
			t.Fatal("no benchmark shares")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var last struct {
		Kind     string `json:"kind"`
		Accepted uint64 `json:"accepted"`
		Hashes   uint64 `json:"hashes"`
	}
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &last); err != nil || last.Kind != "summary" || last.Accepted < 3 || last.Hashes == 0 {
		t.Errorf("summary line %q (%v)", lines[len(lines)-1], err)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// watchedDevice runs a device through a WorkSource that counts the calls
// waiting for work, so a test sees the devices idle instead of sleeping and
// counting what did not arrive.
type watchedDevice struct {
	Device
	waiting atomic.Int32 // Next calls not yet returned
}

func (d *watchedDevice) Run(ctx context.Context, src WorkSource, res Results) error {
	return d.Device.Run(ctx, watchedSource{src, d}, res)
}

type watchedSource struct {
	WorkSource
	d *watchedDevice
}

func (s watchedSource) Next(ctx context.Context, size uint64) (*Slice, error) {
	s.d.waiting.Add(1)
	defer s.d.waiting.Add(-1)
	return s.WorkSource.Next(ctx, size)
}

// waitUntil polls cond until it holds, failing the test after testWait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testWait); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// On a network where a share solves the block, the rest of that job's work
// is worthless: the miner stops hashing it until the next job arrives.
func TestBlockPausesUntilNextJob(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	p.mu.Lock()
	p.nbits = "207fffff" // regtest: every share is a block
	solvedJob := p.newJob(true)
	p.mu.Unlock()
	cpu, err := NewCPUDevice(1, "", Slicing{Min: 4096, Max: 1 << 16, Duration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dev := &watchedDevice{Device: cpu}
	m, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, blockPause: time.Hour, Devices: []Device{dev}})
	defer stop()
	p.waitFor("a block share", func() bool { return p.validShares(nil) >= 1 })
	// The pause holds once the block share's reply is in, every candidate
	// found before it is drained, and the device waits for work while the
	// solved job is still the current one. From there only a new job (or
	// the hour-long block pause) can hand the device work again.
	waitUntil(t, "the device idle on the solved job", func() bool {
		return m.accepted.Load() >= 1 && m.inflight.Load() == 0 && len(m.candidates) == 0 &&
			dev.waiting.Load() == 1 && m.sched.solvedBy(m.sched.current())
	})
	onSolved := func() (n int) {
		for _, s := range p.shares {
			if s.job == solvedJob.JobID {
				n++
			}
		}
		return n
	}
	p.mu.Lock()
	before := len(p.shares)
	solvedShares := onSolved()
	job := p.newJob(true)
	p.mu.Unlock()
	if st := m.Stats(); st.Submitted != uint64(before) {
		t.Errorf("miner submitted %d shares, pool saw %d", st.Submitted, before)
	}
	p.broadcast("mining.notify", job)
	p.waitFor("a share on the next job", func() bool {
		return p.validShares(func(s share) bool { return s.job == job.JobID }) >= 1
	})
	p.mu.Lock()
	if n := onSolved(); n != solvedShares {
		t.Errorf("%d shares on the solved job after the pause began, want none", n-solvedShares)
	}
	p.mu.Unlock()
	p.assertNoInvalid()
}

// A pool that accepts the block share but sends no new job must not leave
// the miner idle for good.
func TestBlockPauseEnds(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	p.mu.Lock()
	p.nbits = "207fffff"
	job := p.newJob(true)
	p.mu.Unlock()
	_, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, blockPause: 50 * time.Millisecond})
	defer stop()
	p.waitFor("shares after several pauses on one job", func() bool {
		return p.validShares(func(s share) bool { return s.job == job.JobID }) >= 20
	})
	p.assertNoInvalid()
}

func TestSuggestDifficultySent(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	_, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, SuggestDiff: 0.5})
	defer stop()
	p.waitFor("mining.suggest_difficulty and shares", func() bool {
		return len(p.params["mining.suggest_difficulty"]) > 0 && p.validShares(nil) >= 1
	})
	stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	var got []float64
	if raw := p.params["mining.suggest_difficulty"]; len(raw) != 1 || json.Unmarshal(raw[0], &got) != nil || len(got) != 1 || got[0] != 0.5 {
		t.Errorf("mining.suggest_difficulty params %s, want one call with [0.5]", raw)
	}
	if len(p.params["mining.extranonce.subscribe"]) != 1 {
		t.Errorf("mining.extranonce.subscribe sent %d times", len(p.params["mining.extranonce.subscribe"]))
	}
}

// A primary that goes away in the middle of a session: the miner moves to
// the backup, and back to the primary once it is up again.
func TestFailoverWhenPrimaryDropsAndReturn(t *testing.T) {
	primary := startPool(t, "", 0x1fffe000)
	primaryAddr := primary.ln.Addr().String()
	backup := startPool(t, "", 0x1fffe000)
	m, stop := testMinerCfg(t, Config{URLs: []string{primary.addr, backup.addr}, ProbeInterval: 50 * time.Millisecond})
	defer stop()
	primary.waitFor("shares on the primary", func() bool { return primary.validShares(nil) >= 3 })
	primary.close()
	backup.waitFor("shares on the backup", func() bool { return backup.validShares(nil) >= 3 })
	if st := m.Stats(); st.Pool != backup.addr {
		t.Errorf("stats pool %q, want %q", st.Pool, backup.addr)
	}
	again := startPool(t, primaryAddr, 0x1fffe000)
	again.waitFor("shares on the primary again", func() bool { return again.validShares(nil) >= 3 })
	backup.waitFor("the backup session to end", func() bool { return len(backup.sessions) == 0 })
	stop()
	primary.assertNoInvalid()
	backup.assertNoInvalid()
	again.assertNoInvalid()
}

// A primary that authorizes and then drops every session at once (here at
// its first share, so the miner surely saw the authorize) is a failing
// pool, not a working one with a bad connection: the miner fails over
// instead of redialling it every BackoffMin forever, comes back to it ever
// more rarely while it keeps doing that, and for good once it is fixed.
func TestFlappingPrimaryFailsOver(t *testing.T) {
	primary := startPool(t, "", 0x1fffe000)
	primary.mu.Lock()
	primary.dropOnSubmit = true
	primary.mu.Unlock()
	backup := startPool(t, "", 0x1fffe000)
	const probe = 50 * time.Millisecond
	_, stop := testMinerCfg(t, Config{URLs: []string{primary.addr, backup.addr}, ProbeInterval: probe})
	defer stop()

	// The first session and four returns, each through a probe. Each
	// probe after a drop must come at least the probe hold later (50,
	// 100, 200, 400 ms; probing every 50 ms would come back after 50 ms
	// each time). A loaded machine only makes the gaps longer.
	const sessions = 5
	countDrops := func() (n int) {
		for _, f := range primary.flaps {
			if f.drop {
				n++
			}
		}
		return n
	}
	primary.waitFor("five sessions dropped by the flapping primary", func() bool { return countDrops() >= sessions })
	primary.mu.Lock()
	seen := slices.Clone(primary.flaps)
	primary.dropOnSubmit = false
	primary.mu.Unlock()
	var (
		hold    time.Duration
		dropped time.Time
		probed  = true
	)
	for i, f := range seen {
		if !f.drop {
			if gap := f.at.Sub(dropped); gap < hold {
				t.Errorf("probe %v after the primary dropped the miner, want at least the hold %v", gap, hold)
			}
			probed = true
			continue
		}
		if !probed {
			t.Errorf("event %d: a session at the primary without a probe since the last drop: redialled, not failed over", i)
		}
		hold = min(max(2*hold, probe), maxProbeHold*probe)
		dropped, probed = f.at, false
	}
	primary.waitFor("shares on the fixed primary", func() bool { return primary.validShares(nil) >= 3 })
	backup.waitFor("the backup session to end", func() bool { return len(backup.sessions) == 0 })
	stop()
	primary.assertNoInvalid()
	backup.assertNoInvalid()
}

// A lone pool that keeps dropping sessions right after authorize is
// redialled with a growing delay, not every BackoffMin.
func TestFlappingPoolBacksOff(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	p.mu.Lock()
	p.dropAfterAuth = true
	p.mu.Unlock()
	start := time.Now()
	_, stop := testMinerCfg(t, Config{URLs: []string{p.addr}})
	defer stop()
	// BackoffMin is 20 ms and BackoffMax 200 ms in testMinerCfg: reconnecting
	// every 10..20 ms, eight sessions take well under 200 ms; with the
	// backoff growing (10..20, 20..40, 40..80, 80..160, then 100..200 ms)
	// they take at least 10+20+40+80+3·100 = 450 ms.
	p.waitFor("eight sessions", func() bool { return p.authorizes >= 8 })
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("eight sessions within %v: no backoff", d)
	}
}

// Probing the primary must include authorize: a pool that subscribes but
// refuses the worker is not "back", and the miner stays on its backup.
func TestProbeChecksAuthorize(t *testing.T) {
	primary := startPool(t, "", 0x1fffe000)
	primary.mu.Lock()
	primary.refuseAuth = true
	primary.mu.Unlock()
	backup := startPool(t, "", 0x1fffe000)
	_, stop := testMinerCfg(t, Config{URLs: []string{primary.addr, backup.addr}, ProbeInterval: 50 * time.Millisecond})
	defer stop()
	backup.waitFor("shares on the backup", func() bool { return backup.validShares(nil) >= 3 })
	primary.mu.Lock()
	before := primary.authorizes
	primary.mu.Unlock()
	primary.waitFor("several probes", func() bool { return primary.authorizes >= before+5 })
	backup.mu.Lock()
	subs, sessions := len(backup.subscribes), len(backup.sessions)
	backup.mu.Unlock()
	if subs != 1 || sessions != 1 {
		t.Errorf("backup saw %d subscribes and has %d sessions; the miner left it for a pool that refuses the worker", subs, sessions)
	}
	stop()
	backup.assertNoInvalid()
	primary.mu.Lock()
	defer primary.mu.Unlock()
	if len(primary.shares) != 0 {
		t.Errorf("%d shares sent to the refusing primary", len(primary.shares))
	}
}

// Shares whose reply never comes are counted as lost, so the outcomes
// still add up to what was submitted.
func TestLostShares(t *testing.T) {
	p := startPool(t, "", 0x1fffe000)
	p.mu.Lock()
	p.silentSubmit = true
	p.mu.Unlock()
	m, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, CallTimeout: 100 * time.Millisecond})
	defer stop()
	for deadline := time.Now().Add(testWait); m.Stats().Lost < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no lost shares counted")
		}
	}
	stop()
	st := m.Stats()
	if st.Accepted != 0 || st.Accepted+st.Rejected+st.Stale+st.Lost != st.Submitted {
		t.Errorf("submitted %d, accepted %d, rejected %d, stale %d, lost %d", st.Submitted, st.Accepted, st.Rejected, st.Stale, st.Lost)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if uint64(len(p.shares)) != st.Submitted {
		t.Errorf("pool saw %d shares, miner submitted %d", len(p.shares), st.Submitted)
	}
}
