package stratum

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func dialClient(t *testing.T, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	c, err := Dial(ctx, "stratum+tcp://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

func TestClientSession(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialClient(t, addr)
	ctx := callCtx(t)

	res, err := c.Call(ctx, "mining.subscribe", []string{"hashforge-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := ParseSubscribeResult(res)
	if err != nil || sub.Extranonce1 != "08000002" || sub.Extranonce2Size != 4 || sub.SessionID == "" {
		t.Fatalf("subscribe: %+v, %v", sub, err)
	}

	res, err = c.Call(ctx, "mining.authorize", []string{"addr.w", "x"})
	if err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s, %v", res, err)
	}
	n := <-c.Notifications()
	if n.Method != "mining.set_difficulty" || n.ID != nil {
		t.Fatalf("notification %+v", n)
	}
	if p, ok := n.Params.(json.RawMessage); !ok || string(p) != "[1024]" {
		t.Fatalf("params %#v, want json.RawMessage [1024]", n.Params)
	}

	_, err = c.Call(ctx, "mining.authorize", []int{1})
	var serr *Error
	if !errors.As(err, &serr) || serr.Code != CodeOther {
		t.Fatalf("bad authorize: err %v, want a *Error with code 20", err)
	}

	// A server→client request surfaces with its id, and the reply goes back.
	if _, err := c.Call(ctx, "ask", nil); err != nil {
		t.Fatal(err)
	}
	if n := <-c.Notifications(); n.Method != "client.show_message" || n.ID != nil {
		t.Fatalf("show_message: %+v", n)
	}
	n = <-c.Notifications()
	if n.Method != "client.get_version" || string(n.ID) != `"v1"` {
		t.Fatalf("get_version: %+v", n)
	}
	if err := c.Reply(ctx, n.ID, "hashforge/1", nil); err != nil {
		t.Fatal(err)
	}
	// The server ignores the reply and the session stays usable.
	if res, err := c.Call(ctx, "echo", []int{7}); err != nil || string(res) != "[7]" {
		t.Fatalf("echo after reply: %s, %v", res, err)
	}

	// Garbage from the client gets an error with a null id, which no Call
	// waits for; the session goes on.
	if err := c.SendRaw([]byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Call(ctx, "echo", nil); err != nil || string(res) != "[]" {
		t.Fatalf("echo after garbage: %s, %v", res, err)
	}
}

func TestClientConcurrentCalls(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h, MaxRequestsPerSecond: 1000})
	c := dialClient(t, addr)
	ctx := callCtx(t)
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			res, err := c.Call(ctx, "echo", []int{i})
			if err == nil {
				var got []int
				if jerr := json.Unmarshal(res, &got); jerr != nil || len(got) != 1 || got[0] != i {
					err = errors.New("reply routed to the wrong call: " + string(res))
				}
			}
			errs <- err
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestClientCallCancelled(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	c := dialClient(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "wait", nil)
		errc <- err
	}()
	<-h.waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
	close(h.release)
	// The late reply finds no caller and is dropped; the client still works.
	if _, err := c.Call(callCtx(t), "echo", nil); err != nil {
		t.Fatal(err)
	}
}

func TestClientServerGoesAway(t *testing.T) {
	h := newTestHandler()
	addr, stop := startServer(t, &Server{Handler: h})
	c := dialClient(t, addr)
	<-h.sessions
	stop()
	select {
	case <-c.Done():
	case <-time.After(guard):
		t.Fatal("client did not notice the server closing")
	}
	if c.Err() == nil {
		t.Fatal("Err() = nil after the connection ended")
	}
	if _, ok := <-c.Notifications(); ok {
		t.Fatal("Notifications must be closed when the connection ends")
	}
	if _, err := c.Call(callCtx(t), "echo", nil); err == nil {
		t.Fatal("Call on a dead connection succeeded")
	}
}

func TestClientRejectsGarbageFromServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte("{\"id\":null,\"method\":\"mining.notify\",\"params\":[]}\nHTTP/1.1 400 Bad Request\n"))
		io.Copy(io.Discard, conn) // hold the connection open: the client must hang up
	}()
	c := dialClient(t, ln.Addr().String())
	if n := <-c.Notifications(); n.Method != "mining.notify" {
		t.Fatalf("first message: %+v", n)
	}
	<-c.Done()
	if c.Err() == nil || errors.Is(c.Err(), ErrClientClosed) {
		t.Fatalf("Err() = %v, want a protocol error", c.Err())
	}
	c.Close()
	if c.Err() == nil || errors.Is(c.Err(), ErrClientClosed) {
		t.Fatal("Close must not overwrite the first error")
	}
}

func TestDialAddress(t *testing.T) {
	for in, want := range map[string]string{
		"pool.example:3333":              "pool.example:3333",
		"stratum+tcp://pool.example:333": "pool.example:333",
		"STRATUM+TCP://10.0.0.1:3333/":   "10.0.0.1:3333",
	} {
		got, err := stripScheme(in)
		if err != nil || got != want {
			t.Errorf("stripScheme(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Dial(context.Background(), "stratum+ssl://pool.example:443"); err == nil {
		t.Fatal("stratum+ssl is not supported and must fail")
	}
}

// With OnProtocolError a client reports each line that is not a Stratum
// message and keeps the session; every other line is dispatched as usual.
func TestClientSkipsProtocolErrors(t *testing.T) {
	good := []string{
		"", " \t\r", `{"id":1,"result":true,"error":null}`, " \t{\"id\":null,\"method\":\"mining.notify\",\"params\":[]}\r",
		`{"id":2}`, `{"method":null}`, `{"method":""}`,
	}
	// What the client would die on, including whitespace that
	// bytes.TrimSpace knows but JSON and the line reader do not.
	bad := []string{"garbage", "[1,2]", `{"method":42}`, `{"id":1`, "\v{}", "\f", "\xc2\xa0{}", "{} \v"}
	srv, cli := net.Pipe()
	var mu sync.Mutex
	var reported []string
	c := NewClientOptions(cli, ClientOptions{OnProtocolError: func(line []byte, err error) {
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v does not wrap ErrProtocol", line, err)
		}
		mu.Lock()
		reported = append(reported, string(line))
		mu.Unlock()
	}})
	defer c.Close()
	go func() {
		for _, l := range append(append(good, bad...), `{"id":null,"method":"last","params":[]}`) {
			io.WriteString(srv, l+"\n")
		}
	}()
	for n := range c.Notifications() {
		if n.Method == "last" {
			break
		}
	}
	if c.Err() != nil {
		t.Fatalf("session ended: %v", c.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != len(bad) {
		t.Fatalf("reported %q, want exactly the malformed %q", reported, bad)
	}
	for i := range bad {
		if reported[i] != bad[i] {
			t.Errorf("reported %q, want %q", reported[i], bad[i])
		}
	}

	// Without the option the first malformed line ends the session.
	srv2, cli2 := net.Pipe()
	c2 := NewClient(cli2)
	go io.WriteString(srv2, "garbage\n")
	<-c2.Done()
	if !errors.Is(c2.Err(), ErrProtocol) {
		t.Fatalf("session ended with %v, want ErrProtocol", c2.Err())
	}
}

// A pool that answers and hangs up at once (a flapping pool, a redirect):
// the answer must reach the caller, whichever of the two the client's
// select sees first.
func TestClientReplyThenCloseKeepsReply(t *testing.T) {
	for i := range 200 {
		srv, cli := net.Pipe()
		c := NewClient(cli)
		go func() {
			lr := NewLineReader(srv, 1<<16)
			line, err := lr.ReadLine()
			if err != nil {
				srv.Close()
				return
			}
			var req struct {
				ID json.RawMessage `json:"id"`
			}
			_ = json.Unmarshal(line, &req)
			_, _ = srv.Write([]byte(`{"id":` + string(req.ID) + `,"result":true,"error":null}` + "\n"))
			srv.Close()
		}()
		res, err := c.Call(callCtx(t), "mining.authorize", []any{"a.w", "x"})
		if err != nil || string(res) != "true" {
			t.Fatalf("run %d: reply lost to the close: %s, %v", i, res, err)
		}
		c.Close()
	}
}
