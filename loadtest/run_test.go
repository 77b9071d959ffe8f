package loadtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// checkingPool is a Stratum server for the engine's own tests: it hands
// every session the real-miner job of testdata/stratum.json at a fixed
// difficulty and checks each submitted share itself (header rebuilt from
// the submit's fields), so the report can be held to what a pool saw. The
// end-to-end tests in cmd/hashforge hold it to the real pool.
type checkingPool struct {
	t          *testing.T
	ln         net.Listener
	notify     stratum.NotifyParams
	difficulty float64
	target     pow.Target
	silent     bool // never answer a submit

	mu         sync.Mutex
	accepted   int
	low        int
	duplicates int
	seen       map[string]bool
	sessions   int
	remotes    map[string]int // sessions by remote IP
	wg         sync.WaitGroup
}

func startCheckingPool(t *testing.T, difficulty float64, silent bool) *checkingPool {
	t.Helper()
	v := realShare(t)
	n, err := stratum.ParseNotify(v.Notify)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startCheckingPoolOn(t, ln, n, difficulty, silent)
}

func startCheckingPoolOn(t *testing.T, ln net.Listener, n stratum.NotifyParams, difficulty float64, silent bool) *checkingPool {
	t.Helper()
	target, _ := pow.DifficultyToTarget(difficulty)
	p := &checkingPool{t: t, ln: ln, notify: n, difficulty: difficulty, target: target, silent: silent, seen: map[string]bool{}, remotes: map[string]int{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *checkingPool) accept() {
	defer p.wg.Done()
	for i := 0; ; i++ {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			p.serve(c, uint32(i))
		}()
	}
}

func (p *checkingPool) serve(c net.Conn, session uint32) {
	en1 := fmt.Sprintf("%08x", session)
	lr := stratum.NewLineReader(c, 0)
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return
		}
		req, err := stratum.DecodeRequest(line)
		if err != nil {
			p.t.Errorf("pool: bad line %q: %v", line, err)
			return
		}
		var out []byte
		switch req.Method {
		case "mining.subscribe":
			out = fmt.Appendf(nil, `{"id":%s,"result":[[["mining.notify","%s"]],"%s",4],"error":null}`+"\n", req.ID, en1, en1)
		case "mining.authorize":
			p.mu.Lock()
			p.sessions++
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			p.remotes[host]++
			p.mu.Unlock()
			nb, _ := json.Marshal(p.notify)
			out = fmt.Appendf(nil, `{"id":%s,"result":true,"error":null}`+"\n"+
				`{"id":null,"method":"mining.set_difficulty","params":[%g]}`+"\n"+
				`{"id":null,"method":"mining.notify","params":%s}`+"\n", req.ID, p.difficulty, nb)
		case "mining.submit":
			if p.silent {
				continue
			}
			out = fmt.Appendf(nil, `{"id":%s,%s}`+"\n", req.ID, p.check(en1, req.Params))
		default:
			p.t.Errorf("pool: unexpected method %q", req.Method)
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// check judges one submit and returns the reply's result and error.
func (p *checkingPool) check(en1 string, params json.RawMessage) string {
	s, err := stratum.ParseSubmit(params)
	if err != nil || s.JobID != p.notify.JobID || len(s.Extranonce2) != 4 || fmt.Sprintf("%08x", s.NTime) != p.notify.NTime {
		p.t.Errorf("pool: bad submit %s: %v", params, err)
		return `"result":null,"error":[20,"bad submit",null]`
	}
	e1, _ := hex.DecodeString(en1)
	h := checkHeader(p.t, p.notify, e1, share{en2: uint64(bytesToUint32(s.Extranonce2)), nonce: s.Nonce})
	key := en1 + hex.EncodeToString(s.Extranonce2) + fmt.Sprint(s.Nonce)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.seen[key]:
		p.duplicates++
		return `"result":null,"error":[22,"duplicate share",null]`
	case !pow.HashMeets(&h, p.target):
		p.low++
		return `"result":null,"error":[23,"low difficulty share",null]`
	}
	p.seen[key] = true
	p.accepted++
	return `"result":true,"error":null`
}

func bytesToUint32(b []byte) uint32 {
	var v uint32
	for _, c := range b {
		v = v<<8 | uint32(c)
	}
	return v
}

// TestRunCountsWhatThePoolSaw runs the engine against checkingPool in each
// mode: the report's counts must be the pool's, exactly.
func TestRunCountsWhatThePoolSaw(t *testing.T) {
	ctx := context.Background()
	t.Run("accept", func(t *testing.T) {
		// Above the job's network difficulty (207fffff): a share meets
		// both targets.
		p := startCheckingPool(t, 1e-7, false)
		rep, err := Run(ctx, Config{URL: "stratum+tcp://" + p.ln.Addr().String(), Miners: 4, Duration: 500 * time.Millisecond,
			User: "addr", Mode: ModeAccept})
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if rep.Sessions != 4 || p.sessions != 4 || rep.Accepted == 0 || rep.Accepted != int64(p.accepted) ||
			p.low != 0 || p.duplicates != 0 || rep.Rejected != 0 || rep.Unanswered != 0 || rep.Submitted != rep.Accepted {
			t.Errorf("report: %d sessions, %d submitted, %d accepted, %d rejected, %d unanswered; pool: %d sessions, %d accepted, %d low, %d duplicates",
				rep.Sessions, rep.Submitted, rep.Accepted, rep.Rejected, rep.Unanswered, p.sessions, p.accepted, p.low, p.duplicates)
		}
		if rep.ReplyP50Ms <= 0 || rep.ReplyP99Ms < rep.ReplyP50Ms || rep.ReplyMaxMs < rep.ReplyP99Ms {
			t.Errorf("reply latency p50 %g p99 %g max %g", rep.ReplyP50Ms, rep.ReplyP99Ms, rep.ReplyMaxMs)
		}
	})
	t.Run("reject", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, false)
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 3, Duration: 300 * time.Millisecond,
			User: "addr.w", Mode: ModeReject})
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if rep.Rejected == 0 || rep.Rejected != int64(p.low) || p.accepted != 0 || rep.Accepted != 0 ||
			rep.RejectedByReason["23 low difficulty share"] != rep.Rejected {
			t.Errorf("report: %d accepted, %d rejected %v; pool: %d accepted, %d low", rep.Accepted, rep.Rejected, rep.RejectedByReason, p.accepted, p.low)
		}
	})
	t.Run("paced", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, false)
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 2, Duration: 300 * time.Millisecond,
			User: "addr", Mode: ModeAccept, Rate: 20})
		if err != nil {
			t.Fatal(err)
		}
		// 20/s for 0.3 s is 6 a miner, 7 at most with the first one at
		// once: pacing holds them back, whatever the scheduler does.
		if rep.Submitted == 0 || rep.Submitted > 2*7 || rep.Accepted != rep.Submitted {
			t.Errorf("paced at 20/s for 0.3 s: %d submitted, %d accepted; want 1..14, all accepted", rep.Submitted, rep.Accepted)
		}
	})
	t.Run("paced on a grid", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, false)
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 4, Duration: 300 * time.Millisecond,
			User: "addr", Mode: ModeAccept, Rate: 20, PaceGrid: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Submitted == 0 || rep.Submitted > 4*7 || rep.Accepted != rep.Submitted {
			t.Errorf("paced at 20/s on a 20 ms grid for 0.3 s: %d submitted, %d accepted; want 1..28, all accepted", rep.Submitted, rep.Accepted)
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, true)
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 2, Duration: 200 * time.Millisecond,
			User: "addr", Mode: ModeAccept, Window: 3, DrainTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Submitted != 6 || rep.Unanswered != 6 || rep.Accepted != 0 {
			t.Errorf("silent pool: %d submitted, %d unanswered, %d accepted; want a full window of 3 each: 6, 6, 0", rep.Submitted, rep.Unanswered, rep.Accepted)
		}
	})
	t.Run("idle and text", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, false)
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 5, Duration: 100 * time.Millisecond, Mode: ModeIdle})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Sessions != 5 || rep.Submitted != 0 {
			t.Errorf("idle: %d sessions, %d submitted; want 5, 0", rep.Sessions, rep.Submitted)
		}
		var b bytes.Buffer
		if err := rep.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"sessions", "accepted", "reply_ms", "notify_spread_ms", "cpu_self_sec"} {
			if !strings.Contains(b.String(), k) {
				t.Errorf("text report lacks %q:\n%s", k, b.String())
			}
		}
	})
	t.Run("source addresses", func(t *testing.T) {
		p := startCheckingPool(t, 1e-7, false)
		ips, err := ParseSourceIPs("127.0.0.1-127.0.0.3")
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(ctx, Config{URL: p.ln.Addr().String(), Miners: 6, Duration: 100 * time.Millisecond, Mode: ModeIdle, SourceIPs: ips})
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		want := map[string]int{"127.0.0.1": 2, "127.0.0.2": 2, "127.0.0.3": 2}
		if rep.Sessions != 6 || len(p.remotes) != 3 || p.remotes["127.0.0.1"] != 2 || p.remotes["127.0.0.2"] != 2 || p.remotes["127.0.0.3"] != 2 {
			t.Errorf("6 sessions over 3 source addresses: %d sessions from %v, want %v", rep.Sessions, p.remotes, want)
		}
	})
	t.Run("nobody there", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		rep, err := Run(ctx, Config{URL: addr, Miners: 3, Duration: 200 * time.Millisecond})
		if err == nil || rep.ConnectErrors != 3 || rep.Sessions != 0 || rep.FirstError == "" {
			t.Errorf("no pool: err %v, %d connect errors, %d sessions, first error %q", err, rep.ConnectErrors, rep.Sessions, rep.FirstError)
		}
	})
}
