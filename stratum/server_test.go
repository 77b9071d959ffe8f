package stratum

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard bounds how long a broken test may hang; no assertion depends on it.
const guard = 20 * time.Second

type discEvent struct {
	s   *Session
	err error
}

type testHandler struct {
	mu           sync.Mutex
	connected    map[uint64]int
	disconnected map[uint64]int
	handled      int
	sessions     chan *Session
	disc         chan discEvent
	release      chan struct{}
	waiting      chan struct{}
}

func newTestHandler() *testHandler {
	return &testHandler{
		connected:    map[uint64]int{},
		disconnected: map[uint64]int{},
		sessions:     make(chan *Session, 64),
		disc:         make(chan discEvent, 64),
		release:      make(chan struct{}),
		waiting:      make(chan struct{}, 64),
	}
}

func (h *testHandler) Connected(s *Session) {
	h.mu.Lock()
	h.connected[s.ID()]++
	h.mu.Unlock()
	h.sessions <- s
}

func (h *testHandler) Handle(s *Session, req *Request) {
	h.mu.Lock()
	ok := h.connected[s.ID()] == 1 && h.disconnected[s.ID()] == 0
	h.handled++
	h.mu.Unlock()
	if !ok {
		panic("Handle outside Connected..Disconnected")
	}
	switch req.Method {
	case "mining.subscribe":
		s.Reply(req.ID, SubscribeResult(fmt.Sprintf("%x", s.ID()), "08000002", 4))
	case "mining.authorize":
		if _, err := ParseAuthorize(req.Params); err != nil {
			s.ReplyError(req.ID, err.(*Error))
			return
		}
		s.SetAuthorized()
		s.Reply(req.ID, true)
		s.Notify("mining.set_difficulty", []float64{1024})
	case "echo":
		s.Reply(req.ID, req.Params)
	case "ask":
		s.Notify("client.show_message", []string{"hello"})
		s.SendLine([]byte(`{"id":"v1","method":"client.get_version","params":[]}` + "\n"))
		s.Reply(req.ID, true)
	case "wait":
		h.waiting <- struct{}{}
		select {
		case <-h.release:
		case <-s.Done():
		}
		s.Reply(req.ID, true)
	case "bye":
		s.ReplyError(req.ID, Errorf(CodeUnauthorized, "go away"))
		s.Close("asked to leave")
	case "panic":
		panic("handler bug")
	default:
		s.ReplyError(req.ID, Errorf(CodeOther, "unknown method"))
	}
}

func (h *testHandler) Disconnected(s *Session, err error) {
	h.mu.Lock()
	h.disconnected[s.ID()]++
	h.mu.Unlock()
	h.disc <- discEvent{s, err}
}

// nextDisconnect waits for the next Disconnected call.
func (h *testHandler) nextDisconnect(t *testing.T) discEvent {
	t.Helper()
	select {
	case ev := <-h.disc:
		return ev
	case <-time.After(guard):
		t.Fatal("no Disconnected call")
		return discEvent{}
	}
}

// startServer runs srv on a loopback port until the test ends.
func startServer(t *testing.T, srv *Server) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	<-srv.Ready()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v after cancel, want nil", err)
				}
			case <-time.After(guard):
				t.Error("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return srv.Addr().String(), stop
}

type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(guard))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(lines ...string) {
	c.t.Helper()
	if _, err := io.WriteString(c, strings.Join(lines, "\n")+"\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one message and returns its members raw.
func (c *rawConn) recv() map[string]json.RawMessage {
	c.t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", line, err)
	}
	return m
}

// expectClosed reads until the server closes the connection, returning
// what arrived before.
func (c *rawConn) expectClosed() []map[string]json.RawMessage {
	c.t.Helper()
	var msgs []map[string]json.RawMessage
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("connection still open")
			}
			return msgs
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			c.t.Fatalf("server sent invalid JSON %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
}

func wantErrorReply(t *testing.T, m map[string]json.RawMessage, id string, code int) {
	t.Helper()
	if string(m["id"]) != id {
		t.Fatalf("id = %s, want %s (%v)", m["id"], id, m)
	}
	if string(m["result"]) != "null" {
		t.Fatalf("result = %s, want null on error", m["result"])
	}
	var e Error
	if err := json.Unmarshal(m["error"], &e); err != nil || e.Code != code {
		t.Fatalf("error = %s, want code %d", m["error"], code)
	}
	if !strings.HasSuffix(string(m["error"]), ",null]") {
		t.Fatalf("error = %s, want [code, message, null]", m["error"])
	}
}

func TestServerRepliesInOrder(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)

	// One write carrying many requests: replies must come back in order,
	// each with its id verbatim and an explicit "error": null.
	ids := []string{`1`, `"two"`, `null`, `-4`, `"5"`, `6e0`}
	var lines []string
	for i, id := range ids {
		lines = append(lines, fmt.Sprintf(`{"id":%s,"method":"echo","params":[%d]}`, id, i))
	}
	lines = append(lines, `{"id":7,"method":"mining.subscribe","params":["test/1.0"]}`)
	c.send(lines...)
	for i, id := range ids {
		m := c.recv()
		if string(m["id"]) != id {
			t.Fatalf("reply %d: id %s, want %s", i, m["id"], id)
		}
		if e, ok := m["error"]; !ok || string(e) != "null" {
			t.Fatalf("reply %d: error member %q present=%v, want explicit null", i, e, ok)
		}
		if got, want := string(m["result"]), fmt.Sprintf("[%d]", i); got != want {
			t.Fatalf("reply %d: result %s, want %s", i, got, want)
		}
	}
	m := c.recv()
	var sub json.RawMessage = m["result"]
	r, err := ParseSubscribeResult(sub)
	if err != nil || r.Extranonce1 != "08000002" || r.Extranonce2Size != 4 {
		t.Fatalf("subscribe result %s: %+v %v", sub, r, err)
	}

	c.send(`{"id":8,"method":"mining.nonsense","params":[]}`)
	wantErrorReply(t, c.recv(), "8", CodeOther)
}

func TestServerMalformedKeepsSession(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)
	c.send(
		`this is not json`,
		`[1,2,3]`,
		`{"id":3,"method":42}`,
		`{"id":4,"method":"echo","params":"nope"}`,
		`{"id":5,"result":true,"error":null}`, // a reply to us: ignored
		`{"id":6,"method":"echo","params":["alive"]}`,
	)
	wantErrorReply(t, c.recv(), "null", CodeOther)
	wantErrorReply(t, c.recv(), "null", CodeOther)
	wantErrorReply(t, c.recv(), "3", CodeOther)
	wantErrorReply(t, c.recv(), "4", CodeOther)
	m := c.recv()
	if string(m["id"]) != "6" || compact(t, m["result"]) != `["alive"]` {
		t.Fatalf("session did not survive malformed input: %v", m)
	}
}

func TestServerTooManyMalformed(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)
	var junk []string
	for range maxMalformed + 1 {
		junk = append(junk, "GET / HTTP/1.1")
	}
	c.send(junk...)
	msgs := c.expectClosed()
	if len(msgs) != maxMalformed+1 {
		t.Fatalf("got %d error replies before close, want %d", len(msgs), maxMalformed+1)
	}
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrTooManyMalformed) {
		t.Fatalf("Disconnected(%v), want ErrTooManyMalformed", ev.err)
	}
}

func TestServerLineTooLong(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)
	c.send(`{"id":1,"method":"echo","params":[]}`)
	c.recv()

	// A megabyte with no newline: the server must give up after the limit
	// instead of buffering it. The write fails once the server hangs up.
	go func() {
		chunk := []byte(strings.Repeat("A", 64<<10))
		for range 16 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	if msgs := c.expectClosed(); len(msgs) != 0 {
		t.Fatalf("want no reply to an oversized line, got %v", msgs)
	}
	ev := h.nextDisconnect(t)
	if !errors.Is(ev.err, ErrLineTooLong) {
		t.Fatalf("Disconnected(%v), want ErrLineTooLong", ev.err)
	}
}

// A session above its request rate is paced, never dropped: every request
// is answered, and the reader waited as long as the rate says.
func TestServerFloodIsPaced(t *testing.T) {
	h := newTestHandler()
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	var slept time.Duration
	var logs syncBuffer
	srv := &Server{Handler: h, MaxRequestsPerSecond: 5,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		sleep: func(_ context.Context, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(d)
			slept += d
		}}
	addr, _ := startServer(t, srv)
	c := dialRaw(t, addr)
	var lines []string
	for i := range 50 {
		lines = append(lines, fmt.Sprintf(`{"id":%d,"method":"echo","params":[]}`, i))
	}
	c.send(lines...)
	for i := range 50 {
		msg := c.recv()
		if id := string(msg["id"]); id != fmt.Sprint(i) {
			t.Fatalf("reply %d has id %s", i, id)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The burst of 10 is free, the other 40 come at 5 per second.
	if want := 8 * time.Second; slept < want-time.Millisecond || slept > want+time.Millisecond {
		t.Fatalf("slept %v for 50 requests at 5/s with a burst of 10, want %v", slept, want)
	}
	// One WARN for the session, at the first request over the limit, with
	// the count read so far (the 11th, past the burst of 10).
	if got := logs.String(); strings.Count(got, "over its request rate") != 1 || !strings.Contains(got, "requests=11") {
		t.Fatalf("want one rate WARN with requests=11, logged:\n%s", got)
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newTokenBucket(10, t0)
	for i := range 20 {
		if w := b.take(t0); w != 0 {
			t.Fatalf("request %d of the burst waits %v", i, w)
		}
	}
	if w := b.take(t0); w != 100*time.Millisecond {
		t.Fatalf("first request past the burst waits %v, want 1/rate", w)
	}
	// The reader waited; the next request past that point waits 1/rate.
	if w := b.take(t0.Add(100 * time.Millisecond)); w != 100*time.Millisecond {
		t.Fatalf("paced request waits %v, want 1/rate", w)
	}
	if w := b.take(t0); w != 200*time.Millisecond { // a clock step back mints nothing
		t.Fatalf("after a clock step back waits %v", w)
	}
	b = newTokenBucket(10, t0)
	for i := range 20 {
		if w := b.take(t0.Add(time.Hour)); w != 0 {
			t.Fatalf("refill capped below burst at %d", i)
		}
	}
	if w := b.take(t0.Add(time.Hour)); w == 0 {
		t.Fatal("refill exceeded the burst")
	}
}

func TestServerSlowConsumerDropped(t *testing.T) {
	h := newTestHandler()
	srv := &Server{Handler: h, SendQueue: 4, WriteTimeout: time.Hour}
	addr, _ := startServer(t, srv)

	// The stuck miner connects with a tiny receive window and never reads.
	stuck := dialRaw(t, addr)
	if err := stuck.Conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	stuckSess := <-h.sessions

	healthy, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	healthySess := <-h.sessions

	line, err := EncodeNotification("test.blob", []string{strings.Repeat("ab", 4096)})
	if err != nil {
		t.Fatal(err)
	}
	// Broadcast until the stuck session is dropped. The healthy one gets
	// every line; waiting for it keeps its own queue short.
	sent := 0
	for stuckSess.SendLine(line) {
		if !healthySess.SendLine(line) {
			t.Fatalf("healthy session dropped after %d lines", sent)
		}
		sent++
		select {
		case n := <-healthy.Notifications():
			if n.Method != "test.blob" {
				t.Fatalf("healthy got %q", n.Method)
			}
		case <-time.After(guard):
			t.Fatalf("healthy session starved after %d lines", sent)
		}
		if sent > 1_000_000 {
			t.Fatal("stuck session never dropped")
		}
	}
	if stuckSess.SendLine(line) || stuckSess.Notify("x", nil) {
		t.Fatal("sending to a dropped session must report false")
	}
	ev := h.nextDisconnect(t)
	if ev.s != stuckSess || !errors.Is(ev.err, ErrSlowConsumer) {
		t.Fatalf("Disconnected(session %d, %v), want session %d with ErrSlowConsumer", ev.s.ID(), ev.err, stuckSess.ID())
	}

	// Fan-out carries on for everyone else.
	if !healthySess.SendLine(line) {
		t.Fatal("healthy session refused a line")
	}
	if n := <-healthy.Notifications(); n.Method != "test.blob" {
		t.Fatalf("healthy got %q after the drop", n.Method)
	}
	if got := srv.Sessions(); got != 1 {
		t.Fatalf("Sessions() = %d, want 1", got)
	}
}

func TestServerAuthTimeout(t *testing.T) {
	h := newTestHandler()
	const timeout = 50 * time.Millisecond
	addr, _ := startServer(t, &Server{Handler: h, AuthTimeout: timeout})

	authed := dialRaw(t, addr)
	authed.send(`{"id":1,"method":"mining.authorize","params":["addr.w","x"]}`)
	if m := authed.recv(); string(m["result"]) != "true" {
		t.Fatalf("authorize: %v", m)
	}
	if m := authed.recv(); !strings.Contains(string(m["method"]), "set_difficulty") {
		t.Fatalf("want set_difficulty right after authorize, got %v", m)
	}

	lazy := dialRaw(t, addr)
	lazy.send(`{"id":1,"method":"mining.subscribe","params":[]}`)
	lazy.recv()
	lazy.expectClosed()
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrAuthTimeout) {
		t.Fatalf("Disconnected(%v), want ErrAuthTimeout", ev.err)
	}

	// The authorized session outlived the deadline that closed the other.
	authed.send(`{"id":2,"method":"echo","params":[]}`)
	if m := authed.recv(); string(m["id"]) != "2" {
		t.Fatalf("authorized session: %v", m)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h, IdleTimeout: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	c.expectClosed()
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrIdleTimeout) {
		t.Fatalf("Disconnected(%v), want ErrIdleTimeout", ev.err)
	}
}

func TestServerHandlerPanicIsolated(t *testing.T) {
	h := newTestHandler()
	var logs syncBuffer
	addr, _ := startServer(t, &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	good := dialRaw(t, addr)
	bad := dialRaw(t, addr)
	bad.send(`{"id":1,"method":"panic","params":[]}`, `{"id":2,"method":"echo","params":[]}`)
	if msgs := bad.expectClosed(); len(msgs) != 0 {
		t.Fatalf("the panicking session went on serving: %v", msgs)
	}
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrHandlerPanic) {
		t.Fatalf("Disconnected(%v), want ErrHandlerPanic", ev.err)
	}
	if log := logs.String(); !strings.Contains(log, "handler bug") || !strings.Contains(log, "testHandler).Handle") {
		t.Fatalf("panic not logged with its stack:\n%s", log)
	}
	good.send(`{"id":3,"method":"echo","params":[]}`)
	if m := good.recv(); string(m["id"]) != "3" {
		t.Fatalf("other session: %v", m)
	}
}

func TestServerCloseFlushesLastWords(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)
	c.send(`{"id":1,"method":"bye","params":[]}`)
	msgs := c.expectClosed()
	if len(msgs) != 1 {
		t.Fatalf("got %v, want the error reply before the close", msgs)
	}
	wantErrorReply(t, msgs[0], "1", CodeUnauthorized)
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrSessionClosed) || !strings.Contains(ev.err.Error(), "asked to leave") {
		t.Fatalf("Disconnected(%v), want ErrSessionClosed with the reason", ev.err)
	}
}

func TestServerShutdown(t *testing.T) {
	h := newTestHandler()
	srv := &Server{Handler: h}
	addr, stop := startServer(t, srv)
	var conns []*rawConn
	for range 3 {
		c := dialRaw(t, addr)
		c.send(`{"id":1,"method":"echo","params":[]}`)
		c.recv()
		conns = append(conns, c)
	}
	// One session is inside Handle when the server stops.
	conns[0].send(`{"id":2,"method":"wait","params":[]}`)
	if got := srv.Sessions(); got != 3 {
		t.Fatalf("Sessions() = %d, want 3", got)
	}
	stop() // fails the test unless Serve returns nil

	if got := srv.Sessions(); got != 0 {
		t.Fatalf("Sessions() = %d after Serve returned, want 0", got)
	}
	// Serve waits for every Disconnected, each exactly once.
	for range 3 {
		select {
		case ev := <-h.disc:
			if !errors.Is(ev.err, ErrServerClosed) {
				t.Fatalf("Disconnected(%v), want ErrServerClosed", ev.err)
			}
		default:
			t.Fatal("Serve returned before every Disconnected call")
		}
	}
	h.mu.Lock()
	for id, n := range h.disconnected {
		if n != 1 || h.connected[id] != 1 {
			t.Fatalf("session %d: Connected %d, Disconnected %d times", id, h.connected[id], n)
		}
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.expectClosed()
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("listener still accepting after shutdown")
	}
}

func TestServeRequiresHandler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := (&Server{}).Serve(context.Background(), ln); err == nil {
		t.Fatal("Serve without a Handler must fail")
	}
}

func TestServeReturnsListenerError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = (&Server{Handler: newTestHandler()}).Serve(context.Background(), ln)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a dead listener = %v, want the accept error", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing from many sessions.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Requests answered with an error are paced at MaxErrorsPerSecond; valid
// ones only by the much higher MaxRequestsPerSecond, so a farm proxy's
// shares never wait behind a limit meant for floods.
func TestServerErrorsPacedValidNot(t *testing.T) {
	h := newTestHandler()
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	var slept time.Duration
	var logs syncBuffer
	srv := &Server{Handler: h, MaxErrorsPerSecond: 5,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		sleep: func(_ context.Context, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(d)
			slept += d
		}}
	addr, _ := startServer(t, srv)
	c := dialRaw(t, addr)
	// 2,000 valid requests at once: well within the default overall guard.
	var lines []string
	for i := range 2000 {
		lines = append(lines, fmt.Sprintf(`{"id":%d,"method":"echo","params":[]}`, i))
	}
	c.send(lines...)
	for i := range 2000 {
		if id := string(c.recv()["id"]); id != fmt.Sprint(i) {
			t.Fatalf("reply %d has id %s", i, id)
		}
	}
	mu.Lock()
	if slept != 0 {
		t.Fatalf("valid requests were paced for %v", slept)
	}
	mu.Unlock()
	// 50 requests answered with errors: a burst of 10, then 5 per second.
	lines = lines[:0]
	for i := range 50 {
		lines = append(lines, fmt.Sprintf(`{"id":%d,"method":"nope","params":[]}`, i))
	}
	c.send(lines...)
	for i := range 50 {
		wantErrorReply(t, c.recv(), fmt.Sprint(i), CodeOther)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := 8 * time.Second; slept < want-time.Millisecond || slept > want+time.Millisecond {
		t.Fatalf("slept %v for 50 errors at 5/s with a burst of 10, want %v", slept, want)
	}
	if got := logs.String(); strings.Count(got, "over its error rate") != 1 {
		t.Fatalf("want one error-rate WARN, logged:\n%s", got)
	}
}

// Replies may come from any goroutine, concurrently, also after the
// session ended (the ledger answers accepted shares once they are
// durable): every reply sent while the session lives arrives, whole.
func TestServerRepliesFromOtherGoroutines(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialRaw(t, addr)
	s := <-h.sessions
	const senders, each = 4, 50 // fewer than SendQueue: none can be dropped
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				s.Reply(json.RawMessage(fmt.Sprint(g*each+i)), true)
			}
		})
	}
	seen := map[string]bool{}
	for range senders * each {
		m := c.recv()
		if string(m["result"]) != "true" || seen[string(m["id"])] {
			t.Fatalf("bad or repeated reply %v", m)
		}
		seen[string(m["id"])] = true
	}
	wg.Wait()
	c.Close()
	h.nextDisconnect(t)
	s.Reply(json.RawMessage("1"), true) // after the end: dropped, no panic
	s.ReplyError(json.RawMessage("1"), nil)
	if s.SendLine([]byte("x\n")) {
		t.Fatal("SendLine on an ended session reported success")
	}
}

// A write deadline set by a reply long ago must not kill the session at
// the next broadcast: the shared writers' non-blocking writes go through
// the same poller, which refuses any write once the deadline has passed.
func TestServerBroadcastAfterOldWriteDeadline(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h, WriteTimeout: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send(`{"id":1,"method":"mining.subscribe","params":[]}`)
	c.recv()
	s := <-h.sessions
	// The reply above set a write deadline; let it pass.
	time.Sleep(200 * time.Millisecond)
	s.Notify("mining.set_difficulty", []float64{2})
	if m := c.recv(); string(m["method"]) != `"mining.set_difficulty"` {
		t.Fatalf("got %v", m)
	}
	c.send(`{"id":2,"method":"echo","params":[1]}`)
	if m := c.recv(); string(m["id"]) != "2" {
		t.Fatalf("session gone after the broadcast: %v (%v)", m, s.Err())
	}
}
