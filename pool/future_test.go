package pool

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/pool/node"
)

// futureConn is a memConn that takes future jobs, as a Stratum V2
// channel does; they are kept apart from its other lines.
type futureConn struct {
	memConn
	futures chan string
}

func (f *futureConn) SendFutureJob(line []byte) bool {
	f.futures <- strings.TrimSuffix(string(line), "\n")
	return true
}

// notifyJob is the job id and clean flag of a mining.notify line.
func notifyJob(t *testing.T, line string) (id string, clean bool) {
	t.Helper()
	m := parseLine(t, line)
	if m.Method != "mining.notify" || len(m.Params) != 9 {
		t.Fatalf("not a notify: %s", line)
	}
	_ = json.Unmarshal(m.Params[0], &id)
	_ = json.Unmarshal(m.Params[8], &clean)
	return id, clean
}

// runTestPool is a test pool whose Run takes the templates sent on the
// channel until the test ends.
func runTestPool(t *testing.T) (*testPool, chan<- *node.Template) {
	tp := newTestPool(t, nil)
	templates := make(chan *node.Template)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tp.srv.Run(ctx, templates) }()
	t.Cleanup(func() { cancel(); <-done })
	return tp, templates
}

// futureStart runs a test pool on a template at height 300 with two
// ready sessions, one that takes future jobs and a V1 one.
func futureStart(t *testing.T) (tp *testPool, templates chan<- *node.Template, base *node.Template, first *Job,
	fc *futureConn, v1 *memConn) {
	tp, templates = runTestPool(t)
	base = testTemplate(t, 300, 5, true)
	templates <- base
	first = waitJob(t, tp, nil)
	fc = &futureConn{futures: make(chan string, 4)}
	subscribeAuthorize(t, tp.srv, fc, regtestAddr+".v2", []any{})
	v1 = &memConn{}
	subscribeAuthorize(t, tp.srv, v1, regtestAddr+".v1", []any{})
	return
}

func TestFutureJobAheadAndActivated(t *testing.T) {
	// A session that takes future jobs gets the next height's job right
	// after its first job; a V1 session gets none.
	tp, templates, base, first, fc, v1 := futureStart(t)
	var futureID string
	select {
	case line := <-fc.futures:
		futureID, _ = notifyJob(t, line)
	case <-time.After(10 * time.Second):
		t.Fatal("no future job")
	}
	f := tp.srv.jobs.future.Load()
	if f == nil || f.height != 301 || f.id != futureID || futureID == first.ID {
		t.Fatalf("future job %+v, sent %q", f, futureID)
	}
	fc.take()
	v1.take()

	// Our block on the tip: the empty job on it is the future job,
	// under its id, for every session.
	next := strings.Repeat("0", 8) + strings.Repeat("cd", 28)
	tp.srv.ExternalBlock(AnnouncedBlock{Height: 300, Hash: next, PrevHash: base.PreviousBlockHash.String(),
		Time: base.CurTime + 5, Ours: true})
	ahead := waitJob(t, tp, first)
	if ahead.ID != futureID || !ahead.ahead || ahead.Height != 301 || ahead.prevDisplay != next {
		t.Fatalf("activated job %s (future %s) ahead %v height %d prev %s", ahead.ID, futureID, ahead.ahead, ahead.Height, ahead.prevDisplay)
	}
	for _, c := range []*memConn{&fc.memConn, v1} {
		if id, clean := nextNotify(t, c); id != futureID || !clean {
			t.Fatalf("job %s clean %v; want the future job %s, clean", id, clean, futureID)
		}
	}
	// The next future job, for the height after, goes out at once.
	select {
	case line := <-fc.futures:
		if id, _ := notifyJob(t, line); id == futureID {
			t.Fatal("the activated job sent again as a future job")
		}
		if f := tp.srv.jobs.future.Load(); f == nil || f.height != 302 {
			t.Fatalf("next future job %+v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no future job for the height after")
	}

	// The node's template on the same tip is a new job; the future job
	// for 302 stands.
	own := testTemplate(t, 301, 3, true)
	own.PreviousBlockHash = hashOf(t, next)
	templates <- own
	full := waitJob(t, tp, ahead)
	if full.ID == futureID || full.ahead || len(full.txData) != 3 {
		t.Fatalf("node's job %s ahead %v txs %d", full.ID, full.ahead, len(full.txData))
	}
	// Run takes the next template only when it is done with this one,
	// the sending of future jobs included.
	refresh := *own
	refresh.CurTime++
	templates <- &refresh
	select {
	case line := <-fc.futures:
		t.Fatalf("a future job again for the same height: %s", line)
	default:
	}
}

// nextNotify waits for the next mining.notify on c and returns its job id
// and clean flag (the lines before it are dropped).
func nextNotify(t *testing.T, c *memConn) (id string, clean bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, l := range c.take() {
			if m := parseLine(t, l); m.Method == "mining.notify" {
				return notifyJob(t, l)
			}
		}
	}
	t.Fatal("no mining.notify")
	return "", false
}

// TestFutureJobNotInSolo: SOLO pays each finder its own
// coinbase, so no shared future job can be made.
func TestFutureJobNotInSolo(t *testing.T) {
	tp := newTestPool(t, func(c *Config) { c.Solo = true })
	base := testTemplate(t, 300, 0, true)
	if !tp.srv.publish(base, true) {
		t.Fatal("publish")
	}
	tp.srv.sendFuture(tp.srv.jobs.Current(), base)
	if f := tp.srv.jobs.future.Load(); f != nil {
		t.Fatalf("future job in SOLO: %+v", f)
	}
}

// TestFutureJobActivatedByTemplate: when the node's template on a new tip
// comes first (a block from outside the pool), sessions holding the future
// job get it started on that tip just before the template's job; V1
// sessions get the template's job alone.
func TestFutureJobActivatedByTemplate(t *testing.T) {
	tp, templates, _, first, fc, v1 := futureStart(t)
	futureID, _ := notifyJob(t, <-fc.futures)
	fc.take()
	v1.take()

	nb := testTemplate(t, 301, 3, true)
	nb.PreviousBlockHash = hashOf(t, strings.Repeat("0", 8)+strings.Repeat("5e", 28))
	templates <- nb
	// Run takes the next template only when it is done with this one:
	// every line for nb has been sent.
	refresh := *nb
	refresh.CurTime++
	templates <- &refresh
	full := tp.srv.jobs.Current()
	if full == first || full.Height != 301 || len(full.txData) != 3 {
		t.Fatalf("current job at height %d with %d txs; want the template's at 301 with 3", full.Height, len(full.txData))
	}
	var ids []string
	for _, l := range fc.take() {
		if m := parseLine(t, l); m.Method == "mining.notify" {
			id, _ := notifyJob(t, l)
			ids = append(ids, id)
		}
	}
	if len(ids) != 2 || ids[0] != futureID || ids[1] != full.ID {
		t.Fatalf("V2 session's jobs %v; want the future job %s then the template's %s", ids, futureID, full.ID)
	}
	if j, err := tp.srv.jobs.Lookup(futureID); err != nil || j.prevHash != full.prevHash || len(j.txData) != 0 {
		t.Fatalf("activated future job: %v", err)
	}
	var v1ids []string
	for _, l := range v1.take() {
		if m := parseLine(t, l); m.Method == "mining.notify" {
			id, _ := notifyJob(t, l)
			v1ids = append(v1ids, id)
		}
	}
	if len(v1ids) != 1 || v1ids[0] != full.ID {
		t.Fatalf("V1 session's jobs %v; want the template's %s alone", v1ids, full.ID)
	}
}
