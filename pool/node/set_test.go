package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/internal/jsonrpc"
	"github.com/hashforge/hashforge/pow"
)

// logBuffer keeps text log lines, attributes included, so that tests can
// check the switch reasons an operator reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ruleSet is a Set of n nodes, all proved on regtest, on a fake clock, for
// the switching rules; no call reaches its (unused) addresses.
func ruleSet(t *testing.T, n int) (*Set, *time.Time, *logBuffer) {
	t.Helper()
	var urls []string
	for i := range n {
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d", 1+i))
	}
	logs := &logBuffer{}
	s, err := NewSet(urls, "u", "p", SetOptions{Network: &chaincfg.RegressionNetParams, FailLimit: 3,
		BehindGrace: 5 * time.Second, ReturnAfter: 30 * time.Second, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return clock }
	for _, m := range s.members {
		m.checked = true
	}
	return s, &clock, logs
}

// round feeds one probe round: a negative height is a failed probe.
func round(s *Set, heights ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range heights {
		if h < 0 {
			s.observeLocked(i, 0, "", errors.New("connection refused"))
		} else {
			s.observeLocked(i, h, fmt.Sprint(h), nil)
		}
	}
	s.decideLocked(s.now())
}

func wantActive(t *testing.T, s *Set, active, switches int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != active || s.switches != switches {
		t.Fatalf("active node %d after %d switches, want %d after %d", s.active, s.switches, active, switches)
	}
}

func TestSetLeavesDeadNodeAndReturnsWithHysteresis(t *testing.T) {
	s, clock, logs := ruleSet(t, 2)
	round(s, 10, 10)
	wantActive(t, s, 0, 0)
	round(s, -1, 10)
	round(s, -1, 10)
	wantActive(t, s, 0, 0) // two failures are not yet FailLimit
	round(s, -1, 10)
	wantActive(t, s, 1, 1)
	if !strings.Contains(logs.String(), "stopped answering") {
		t.Fatalf("switch reason not logged:\n%s", logs)
	}
	// The first node comes back, goes away again, comes back: the
	// ReturnAfter wait starts over at each return.
	round(s, 10, 10)
	*clock = clock.Add(20 * time.Second)
	round(s, -1, 10)
	round(s, 10, 10)
	*clock = clock.Add(29 * time.Second)
	round(s, 10, 10)
	wantActive(t, s, 1, 1)
	*clock = clock.Add(time.Second)
	round(s, 10, 10)
	wantActive(t, s, 0, 2)
	if !strings.Contains(logs.String(), "higher priority") {
		t.Fatalf("return not logged:\n%s", logs)
	}
}

func TestSetLeavesNodeThatFallsBehind(t *testing.T) {
	s, clock, logs := ruleSet(t, 2)
	// Nodes hear of a block a moment apart: within BehindGrace nothing
	// happens, and catching up starts the grace over.
	round(s, 10, 11)
	*clock = clock.Add(4 * time.Second)
	round(s, 11, 11)
	round(s, 11, 12)
	*clock = clock.Add(4 * time.Second)
	round(s, 11, 12)
	wantActive(t, s, 0, 0)
	*clock = clock.Add(time.Second)
	round(s, 11, 12)
	wantActive(t, s, 1, 1)
	if !strings.Contains(logs.String(), "another node has a higher tip") {
		t.Fatalf("switch reason not logged:\n%s", logs)
	}
}

func TestSetNeverPicksNodeBehind(t *testing.T) {
	s, clock, _ := ruleSet(t, 3)
	for range 100 {
		round(s, 12, 10, 11)
		*clock = clock.Add(time.Minute)
	}
	wantActive(t, s, 0, 0)
	// With the first node gone, the best of the others is the one at the
	// best tip among those answering, not the next in order.
	round(s, -1, 10, 11)
	round(s, -1, 10, 11)
	round(s, -1, 10, 11)
	wantActive(t, s, 2, 1)
	// Nowhere to go: every node is down; the set stays put.
	for range 10 {
		round(s, -1, -1, -1)
	}
	wantActive(t, s, 2, 1)
}

func TestSetLeavesNodeRefusingTemplates(t *testing.T) {
	s, clock, logs := ruleSet(t, 2)
	round(s, 10, 10)
	refuse := fmt.Errorf("getblocktemplate: %w", &RPCError{Code: CodeClientInInitialDL, Message: "Bitcoin is downloading blocks..."})
	s.templateResult(0, refuse)
	s.templateResult(0, nil) // a success in between starts the count over
	s.templateResult(0, refuse)
	s.templateResult(0, refuse)
	wantActive(t, s, 0, 0)
	s.templateResult(0, refuse)
	wantActive(t, s, 1, 1)
	if !strings.Contains(logs.String(), "refuses block templates") {
		t.Fatalf("switch reason not logged:\n%s", logs)
	}
	// It still answers probes, but is passed over for ReturnAfter.
	*clock = clock.Add(29 * time.Second)
	round(s, 10, 10)
	wantActive(t, s, 1, 1)
	*clock = clock.Add(time.Second)
	round(s, 10, 10)
	wantActive(t, s, 0, 2)
	// A transport failure of getblocktemplate counts like a failed probe.
	for range 3 {
		s.templateResult(0, errors.New("getblocktemplate: connection refused"))
	}
	wantActive(t, s, 1, 3)
}

func TestSetSkipsNodeOnAnotherNetwork(t *testing.T) {
	s, _, logs := ruleSet(t, 2)
	round(s, 10, 10)
	s.mu.Lock()
	s.observeLocked(0, 0, "", &NetworkMismatchError{Endpoint: "http://127.0.0.1:1", NodeChain: "mainnet", Want: "regtest"})
	s.decideLocked(s.now())
	s.mu.Unlock()
	wantActive(t, s, 1, 1)
	for range 5 {
		s.mu.Lock()
		s.decideLocked(s.now())
		s.mu.Unlock()
	}
	wantActive(t, s, 1, 1)
	if !strings.Contains(logs.String(), "another network") {
		t.Fatalf("not logged:\n%s", logs)
	}
}

func TestNewSetCredentials(t *testing.T) {
	s, err := NewSet(SplitURLs(" http://a:1 , http://me:secret@b:2,,c:3 "), "flaguser", "flagpass",
		SetOptions{Network: &chaincfg.RegressionNetParams})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ url, user, pass string }{
		{"http://a:1", "flaguser", "flagpass"},
		{"http://b:2", "me", "secret"},
		{"http://c:3", "flaguser", "flagpass"},
	}
	if len(s.members) != len(want) {
		t.Fatalf("%d nodes, want %d", len(s.members), len(want))
	}
	for i, w := range want {
		ep := s.members[i].c.ep
		if ep.URL != w.url || ep.User != w.user || ep.Pass != w.pass {
			t.Errorf("node %d: %s %s:%s, want %s %s:%s", i, ep.URL, ep.User, ep.Pass, w.url, w.user, w.pass)
		}
	}
	if _, err := NewSet([]string{"http://a:1", "http://u:p@a:1"}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams}); err == nil {
		t.Error("the same node twice accepted")
	}
	if _, err := NewSet(nil, "", "", SetOptions{Network: &chaincfg.RegressionNetParams}); err == nil {
		t.Error("no node accepted")
	}
}

// FuzzNodeURLs: whatever the operator's list, the set has one node per
// item, in order, no password in what is logged, and each node's
// credentials from its own URL or else from the flags.
func FuzzNodeURLs(f *testing.F) {
	f.Add("http://127.0.0.1:8332", "u", "p")
	f.Add("http://a:b@h:1, h2:2 ,", "", "")
	f.Add("https://x%2Cy:p%40ss@[::1]:18443/wallet,http://h:1", "user", "")
	f.Add(",,,", "u", "p")
	f.Fuzz(func(t *testing.T, list, user, pass string) {
		urls := SplitURLs(list)
		for _, u := range urls {
			if u == "" || strings.Contains(u, ",") || strings.TrimSpace(u) != u {
				t.Fatalf("item %q of %q", u, list)
			}
		}
		s, err := NewSet(urls, user, pass, SetOptions{Network: &chaincfg.RegressionNetParams})
		if err != nil {
			return
		}
		if len(s.members) != len(urls) {
			t.Fatalf("%d nodes from %d URLs", len(s.members), len(urls))
		}
		for i, m := range s.members {
			if u, err := url.Parse(m.c.Endpoint()); err != nil || u.User != nil {
				t.Fatalf("logged endpoint %q of %q: credentials left in it (%v)", m.c.Endpoint(), urls[i], err)
			}
			_, uu, up, err := jsonrpc.ParseURL(urls[i], "", "")
			if err != nil {
				t.Fatalf("NewSet took %q that does not parse: %v", urls[i], err)
			}
			ep := m.c.ep
			if uu != "" || up != "" {
				if ep.User != uu || ep.Pass != up {
					t.Fatalf("%q: credentials %q:%q, want the URL's %q:%q", urls[i], ep.User, ep.Pass, uu, up)
				}
			} else if ep.User != user || ep.Pass != pass {
				t.Fatalf("%q: credentials %q:%q, want the flags' %q:%q", urls[i], ep.User, ep.Pass, user, pass)
			}
		}
	})
}

// mineTemplate solves a block on an empty template (regtest's target takes
// a few nonces), its coinbase paying OP_TRUE and carrying tag so that
// blocks on the same template differ.
func mineTemplate(t *testing.T, tp *Template, tag uint64) (blockHex, hash string) {
	t.Helper()
	if len(tp.Transactions) != 0 {
		t.Fatalf("template with %d transactions; the test mines empty blocks", len(tp.Transactions))
	}
	sig, err := txscript.NewScriptBuilder().AddInt64(tp.Height).AddData(binary.BigEndian.AppendUint64(nil, tag)).Script()
	if err != nil {
		t.Fatal(err)
	}
	cb := wire.NewMsgTx(1)
	cb.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Index: wire.MaxPrevOutIndex}, SignatureScript: sig, Sequence: wire.MaxTxInSequenceNum})
	cb.AddTxOut(wire.NewTxOut(tp.CoinbaseValue, []byte{txscript.OP_TRUE}))
	b := wire.MsgBlock{Header: wire.BlockHeader{Version: tp.Version, PrevBlock: tp.PreviousBlockHash,
		MerkleRoot: cb.TxHash(), Timestamp: time.Unix(tp.CurTime, 0), Bits: tp.Bits}}
	b.AddTransaction(cb)
	target, err := pow.CompactToTarget(tp.Bits)
	if err != nil {
		t.Fatal(err)
	}
	for {
		h := b.Header.BlockHash()
		if pow.HashMeets((*[32]byte)(&h), target) {
			break
		}
		b.Header.Nonce++
	}
	var buf bytes.Buffer
	if err := b.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf.Bytes()), b.Header.BlockHash().String()
}

// waitBest polls c until its best block is want.
func waitBest(t *testing.T, ctx context.Context, c *Client, want string) {
	t.Helper()
	for {
		if best, err := c.GetBestBlockHash(ctx); err == nil && best == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node %s never reached block %s", c.Endpoint(), want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestBtcdSetSubmitsToEveryNode uses two nodes on the same chain but not
// peered, so that only the pool's submission can bring a block to both.
func TestBtcdSetSubmitsToEveryNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a := devtest.Btcd(t, devstack.BtcdOptions{})
	b := devtest.Btcd(t, devstack.BtcdOptions{NoInitialBlock: true})
	ca, cb := newBtcdClient(t, a), newBtcdClient(t, b)
	best, err := ca.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := ca.GetBlock(ctx, best, 0, &raw); err != nil {
		t.Fatal(err)
	}
	if v, err := cb.SubmitBlock(ctx, raw); err != nil || v != "" {
		t.Fatalf("copy block 1 to the second node: %q %v", v, err)
	}

	logs := &logBuffer{}
	s, err := NewSet([]string{a.RPCURL(), b.RPCURL()}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckNetwork(ctx, &chaincfg.RegressionNetParams); err != nil {
		t.Fatal(err)
	}
	tp, err := s.Active().GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	block, hash := mineTemplate(t, tp, 1)
	if v, err := s.SubmitBlock(ctx, block); err != nil || v != "" {
		t.Fatalf("SubmitBlock: %q %v, want accepted", v, err)
	}
	waitBest(t, ctx, ca, hash)
	waitBest(t, ctx, cb, hash)

	// Both already have it: not accepted, the active node's verdict.
	v, err := s.SubmitBlock(ctx, block)
	if err != nil || !strings.Contains(v, "already have") {
		t.Fatalf("same block again: %q %v, want btcd's already have", v, err)
	}

	// One node down: the other still takes the block.
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if tp, err = s.Active().GetBlockTemplate(ctx, ""); err != nil {
		t.Fatal(err)
	}
	block2, hash2 := mineTemplate(t, tp, 2)
	if v, err := s.SubmitBlock(ctx, block2); err != nil || v != "" {
		t.Fatalf("SubmitBlock with the second node down: %q %v, want accepted", v, err)
	}
	waitBest(t, ctx, ca, hash2)

	// No node answers: an error, for the pool to retry.
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := s.SubmitBlock(ctx, block2); err == nil {
		t.Fatalf("SubmitBlock with every node down: verdict %q and no error", v)
	}
}

func port(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBtcdSetFailover is the scenario on two peered btcd: the
// first node stops, templates come from the second and a block found
// meanwhile reaches its chain; the first comes back, catches up from its
// peer, and the set returns to it after ReturnAfter.
func TestBtcdSetFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	aOpts := devstack.BtcdOptions{Listen: true, DataDir: t.TempDir(), RPCUser: "a", RPCPass: "apass"}
	a := devtest.Btcd(t, aOpts)
	b := devtest.Btcd(t, devstack.BtcdOptions{Listen: true, NoInitialBlock: true, AddPeers: []string{a.P2PHost}})
	ca, cb := newBtcdClient(t, a), newBtcdClient(t, b)
	best, err := ca.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitBest(t, ctx, cb, best)

	logs := &logBuffer{}
	s, err := NewSet([]string{a.RPCURL(), b.RPCURL()}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams,
		ProbeInterval: 50 * time.Millisecond, ReturnAfter: 500 * time.Millisecond, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckNetwork(ctx, &chaincfg.RegressionNetParams); err != nil {
		t.Fatal(err)
	}
	out := make(chan *Template, 4)
	wctx, stopWatch := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Frequent refreshes: a template on the same tip after each switch.
		s.WatchTemplates(wctx, WatchOptions{MaxBackoff: 200 * time.Millisecond, Refresh: 100 * time.Millisecond, Logger: logs.logger()}, out)
	}()
	defer func() { stopWatch(); <-done }()

	tp := receive(t, ctx, out)
	if s.Active() != s.members[0].c {
		t.Fatalf("active node %s at start, want the first", s.Active().Endpoint())
	}
	block1, hash1 := mineTemplate(t, tp, 1)
	if v, err := s.SubmitBlock(ctx, block1); err != nil || v != "" {
		t.Fatalf("block 1: %q %v", v, err)
	}
	waitBest(t, ctx, cb, hash1)

	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Work on block 1 from whichever node; it is valid on the second.
	tp = receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == hash1 })
	block2, hash2 := mineTemplate(t, tp, 2)
	if v, err := s.SubmitBlock(ctx, block2); err != nil || v != "" {
		t.Fatalf("block 2 with the first node down: %q %v", v, err)
	}
	waitBest(t, ctx, cb, hash2)
	// Only the second node can make work on block 2: the set moved.
	tp = receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == hash2 })
	if s.Active() != s.members[1].c {
		t.Fatalf("template on block 2 but active node %s", s.Active().Endpoint())
	}
	if !strings.Contains(logs.String(), "stopped answering") {
		t.Fatalf("switch not logged:\n%s", logs)
	}

	// The first node comes back at its address, syncs block 2 from its
	// peer, and the set goes back to it.
	aOpts.Port, aOpts.P2PPort, aOpts.NoInitialBlock = port(t, a.RPCHost), port(t, a.P2PHost), true
	aOpts.AddPeers = []string{b.P2PHost}
	devtest.Btcd(t, aOpts)
	waitBest(t, ctx, ca, hash2)
	for s.Active() != s.members[0].c {
		select {
		case <-ctx.Done():
			t.Fatalf("never returned to the first node:\n%s", logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, switches := s.Status(); switches != 2 {
		t.Fatalf("%d switches, want 2 (away and back):\n%s", switches, logs)
	}
	if !strings.Contains(logs.String(), "higher priority") {
		t.Fatalf("return not logged:\n%s", logs)
	}
	// Work from the first node again, and its blocks reach both.
	tp = receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == hash2 })
	block3, hash3 := mineTemplate(t, tp, 3)
	if v, err := s.SubmitBlock(ctx, block3); err != nil || v != "" {
		t.Fatalf("block 3: %q %v", v, err)
	}
	waitBest(t, ctx, ca, hash3)
	waitBest(t, ctx, cb, hash3)
}

// TestBtcdSetBehindNode: a node with fewer blocks (its own, shorter chain)
// is never used while the first is healthy above it, and a first node that
// is the one behind is left for the higher tip.
func TestBtcdSetBehindNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	high := devtest.Btcd(t, devstack.BtcdOptions{})
	low := devtest.Btcd(t, devstack.BtcdOptions{})
	ch := newBtcdClient(t, high)
	if _, err := ch.Generate(ctx, 3); err != nil {
		t.Fatal(err)
	}
	highBest, err := ch.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, order := range [][]*devstack.Btcd{{high, low}, {low, high}} {
		logs := &logBuffer{}
		s, err := NewSet([]string{order[0].RPCURL(), order[1].RPCURL()}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams,
			ProbeInterval: 10 * time.Millisecond, BehindGrace: 50 * time.Millisecond, Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		rounds := make(chan struct{}, 1)
		s.afterRound = func() {
			select {
			case rounds <- struct{}{}:
			default:
			}
		}
		out := make(chan *Template, 64)
		wctx, stopWatch := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.WatchTemplates(wctx, WatchOptions{Logger: logs.logger()}, out)
		}()
		if order[0] == high {
			// Many rounds, well past BehindGrace: never a switch.
			for range 30 {
				select {
				case <-rounds:
				case <-ctx.Done():
					t.Fatal("no probe rounds")
				}
			}
			if _, switches := s.Status(); switches != 0 || s.Active() != s.members[0].c {
				t.Fatalf("switched to the node behind:\n%s", logs)
			}
		} else {
			receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == highBest })
			if !strings.Contains(logs.String(), "another node has a higher tip") {
				t.Fatalf("switch reason not logged:\n%s", logs)
			}
		}
		stopWatch()
		<-done
		close(out)
		for tp := range out {
			if order[0] == high && tp.PreviousBlockHash.String() != highBest {
				t.Fatalf("a template from the node behind: on %s", tp.PreviousBlockHash)
			}
		}
	}
}

// TestBtcdSetNetworks: a node on another chain fails the set at start,
// even when the first is right; a node merely unreachable does not, and is
// not used until it answers.
func TestBtcdSetNetworks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	reg := devtest.Btcd(t, devstack.BtcdOptions{})
	sim := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	s, err := NewSet([]string{reg.RPCURL(), sim.RPCURL()}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams})
	if err != nil {
		t.Fatal(err)
	}
	var mm *NetworkMismatchError
	if err := s.CheckNetwork(ctx, &chaincfg.RegressionNetParams); !errors.As(err, &mm) || mm.Endpoint != newBtcdClient(t, sim).Endpoint() {
		t.Fatalf("CheckNetwork with a simnet node in a regtest set: %v, want a mismatch naming it", err)
	}

	// A closed port: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	logs := &logBuffer{}
	s, err = NewSet([]string{down, reg.RPCURL()}, "", "", SetOptions{Network: &chaincfg.RegressionNetParams, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitNetwork(ctx, &chaincfg.RegressionNetParams, nil, 0); err != nil {
		t.Fatalf("WaitNetwork with the first node down: %v", err)
	}
	out := make(chan *Template, 4)
	wctx, stopWatch := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchTemplates(wctx, WatchOptions{Logger: logs.logger()}, out)
	}()
	defer func() { stopWatch(); <-done }()
	best, err := newBtcdClient(t, reg).GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tp := receive(t, ctx, out); tp.PreviousBlockHash.String() != best {
		t.Fatalf("first template on %s, want the reachable node's tip %s", tp.PreviousBlockHash, best)
	}
	if s.Active() != s.members[1].c || !strings.Contains(logs.String(), "has not answered yet") {
		t.Fatalf("active %s; log:\n%s", s.Active().Endpoint(), logs)
	}
}
