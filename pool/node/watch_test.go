package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

// longPollCore behaves like Bitcoin Core's getblocktemplate long polling:
// a long poll is held until the chain tip changes (Core also answers on
// mempool changes, which this chain never has), whatever the client does
// meanwhile; the HTTP request's end is the only sign that a client gave up.
// It counts the long polls it holds at once and the ones given up.
type longPollCore struct {
	t *testing.T

	mu        sync.Mutex
	tip       int       // the tip is block tip; its hash is tipHash(tip)
	changed   chan bool // closed when the tip changes
	held      int       // long polls being held now
	maxHeld   int
	abandoned int // long polls the client cancelled before the node answered
	plain     int // plain getblocktemplate calls
}

func newLongPollCore(t *testing.T) *longPollCore {
	return &longPollCore{t: t, changed: make(chan bool)}
}

func tipHash(n int) string { return fmt.Sprintf("%064x", 0xb10c000+n) }

// watch runs c.WatchTemplates with opts (logging to a recordHandler unless
// opts has a logger) until stop is called or the test ends, and returns
// its templates.
func watch(t *testing.T, ctx context.Context, c *Client, opts WatchOptions) (out <-chan *Template, stop func()) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(&recordHandler{})
	}
	wctx, cancel := context.WithCancel(ctx)
	ch := make(chan *Template)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.WatchTemplates(wctx, opts, ch)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return ch, stop
}

// newLongPollClient serves f over HTTP for the test's duration and returns
// a client of it.
func newLongPollClient(t *testing.T, f *longPollCore) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *longPollCore) mine() {
	f.mu.Lock()
	f.tip++
	close(f.changed)
	f.changed = make(chan bool)
	f.mu.Unlock()
}

func (f *longPollCore) stats() (held, maxHeld, abandoned, plain int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held, f.maxHeld, f.abandoned, f.plain
}

func (f *longPollCore) template() map[string]any {
	m := coreTemplate(f.t, true)
	m["previousblockhash"] = tipHash(f.tip)
	m["longpollid"] = tipHash(f.tip) + "0"
	return m
}

func (f *longPollCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		ID     any               `json:"id"`
		Method string            `json:"method"`
		Params []json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("request is not JSON: %q", body)
		return
	}
	var result any
	f.mu.Lock()
	switch req.Method {
	case "getbestblockhash":
		result = tipHash(f.tip)
	case "getblocktemplate":
		var p struct {
			LongPollID string `json:"longpollid"`
		}
		if len(req.Params) > 0 {
			json.Unmarshal(req.Params[0], &p)
		}
		if p.LongPollID == "" {
			f.plain++
			result = f.template()
			break
		}
		f.held++
		f.maxHeld = max(f.maxHeld, f.held)
		for p.LongPollID == f.template()["longpollid"] {
			changed := f.changed
			f.mu.Unlock()
			select {
			case <-changed:
			case <-r.Context().Done():
			}
			f.mu.Lock()
			if r.Context().Err() != nil {
				f.held--
				f.abandoned++
				f.mu.Unlock()
				return
			}
		}
		f.held--
		result = f.template()
	default:
		f.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]any{"id": req.ID, "result": nil,
			"error": map[string]any{"code": -32601, "message": "Method not found"}})
		return
	}
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"id": req.ID, "result": result, "error": nil})
}

// TestWatchHoldsOneLongPoll runs the watcher against a node that holds long
// polls like Bitcoin Core, over a hundred refresh periods of a quiet chain:
// never more than one long poll may be outstanding, none may be given up,
// and new blocks must still arrive through it.
func TestWatchHoldsOneLongPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	core := newLongPollCore(t)
	c := newLongPollClient(t, core)
	out, stop := watch(t, ctx, c, WatchOptions{Refresh: 2 * time.Millisecond, PollInterval: time.Millisecond,
		FallbackPollInterval: time.Hour})

	for n := 0; n < 100; n++ {
		if tp := receive(t, ctx, out); tp.PreviousBlockHash.String() != tipHash(0) {
			t.Fatalf("template on %s before any block", tp.PreviousBlockHash.String())
		}
	}
	for block := 1; block <= 3; block++ {
		// The refreshes were fetched; make sure the long poll is in
		// place before the block, so the block must come through it or
		// a refresh, never through a second long poll.
		for {
			if held, _, _, _ := core.stats(); held == 1 {
				break
			}
			receive(t, ctx, out)
		}
		core.mine()
		receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == tipHash(block) })
		for n := 0; n < 50; n++ {
			receive(t, ctx, out)
		}
	}
	_, maxHeld, abandoned, plain := core.stats()
	if maxHeld != 1 {
		t.Errorf("%d long polls outstanding at once, want exactly 1", maxHeld)
	}
	if abandoned != 0 {
		t.Errorf("%d long polls given up before the node answered", abandoned)
	}
	if plain < 200 {
		t.Errorf("%d plain getblocktemplate calls, want one per refresh (250 or more)", plain)
	}
	// At shutdown, and only then, the long poll is cancelled: the node
	// sees the request end (when it notices the closed connection).
	stop()
	wait, cancelWait := context.WithTimeout(context.Background(), testTimeout)
	defer cancelWait()
	for {
		if held, _, _, _ := core.stats(); held == 0 {
			break
		}
		select {
		case <-time.After(time.Millisecond):
		case <-wait.Done():
			t.Fatal("the long poll outlived the watcher")
		}
	}
}

// TestWatchNotices checks that a ZMQ-style notice of a new block fetches a
// template at once, with no long poll and no fast polling to find it.
func TestWatchNotices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	core := newLongPollCore(t)
	c := newLongPollClient(t, core)
	notices := make(chan string)
	out, _ := watch(t, ctx, c, WatchOptions{Refresh: time.Hour, FallbackPollInterval: time.Hour, DisableLongPoll: true,
		Notices: notices})

	receive(t, ctx, out)
	// A notice of the block the template already builds on fetches nothing.
	notices <- tipHash(0)
	core.mine()
	notices <- tipHash(1)
	if tp := receive(t, ctx, out); tp.PreviousBlockHash.String() != tipHash(1) {
		t.Fatalf("after a notice: template on %s, want %s", tp.PreviousBlockHash.String(), tipHash(1))
	}
	if _, _, _, plain := core.stats(); plain != 2 {
		t.Errorf("%d getblocktemplate calls, want 2 (start, the one new block)", plain)
	}
}

// longPollCounter is a reverse proxy in front of a real node that counts
// the getblocktemplate long polls passing through it: held at once, and
// given up by the client before the node answered.
type longPollCounter struct {
	next http.Handler

	mu                        sync.Mutex
	held, maxHeld, abandoned  int
	longPolls, plainTemplates int
}

func (p *longPollCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	isLongPoll := bytes.Contains(body, []byte(`"longpollid"`))
	p.mu.Lock()
	if bytes.Contains(body, []byte(`"getblocktemplate"`)) && !isLongPoll {
		p.plainTemplates++
	}
	if isLongPoll {
		p.longPolls++
		p.held++
		p.maxHeld = max(p.maxHeld, p.held)
	}
	p.mu.Unlock()
	p.next.ServeHTTP(w, r)
	if isLongPoll {
		p.mu.Lock()
		p.held--
		if r.Context().Err() != nil {
			p.abandoned++
		}
		p.mu.Unlock()
	}
}

func (p *longPollCounter) stats() (held, maxHeld, abandoned, plain int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.maxHeld, p.abandoned, p.plainTemplates
}

// TestBtcdHoldsOneLongPoll runs the watcher against a real btcd through a
// counting proxy, with a refresh every 2 ms: however many refreshes, one
// long poll at a time, none given up, and new blocks still arrive.
func TestBtcdHoldsOneLongPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	b := devtest.Btcd(t, devstack.BtcdOptions{})
	direct := newBtcdClient(t, b)
	target, err := url.Parse(b.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := &longPollCounter{next: httputil.NewSingleHostReverseProxy(target)}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	proxied, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxied.User = target.User
	c, err := New(proxied.String(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := watch(t, ctx, c, WatchOptions{Refresh: 2 * time.Millisecond, FallbackPollInterval: time.Hour})

	receive(t, ctx, out)
	for range 3 {
		for n := 0; n < 50; n++ {
			receive(t, ctx, out)
		}
		hashes, err := direct.Generate(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == hashes[0] })
	}
	_, maxHeld, abandoned, plain := proxy.stats()
	if maxHeld != 1 || abandoned != 0 || plain < 150 {
		t.Errorf("%d long polls at once (want 1), %d given up (want 0), %d refreshes (want 150 or more)", maxHeld, abandoned, plain)
	}
}
