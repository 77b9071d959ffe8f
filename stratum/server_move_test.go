package stratum

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"testing"
)

// goroutineHandler answers every request with the id of the goroutine
// that handled it.
type goroutineHandler struct {
	testHandler
}

func goroutineID() int {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.Atoi(string(b[:bytes.IndexByte(b, ' ')]))
	return id
}

func (h *goroutineHandler) Handle(s *Session, req *Request) {
	if req.Method == "which" {
		s.Reply(req.ID, goroutineID())
		return
	}
	h.testHandler.Handle(s, req)
}

// An authorized session that goes quiet moves its reader to a fresh
// goroutine, once; it reads on as before, and ends as before.
func TestServerQuietSessionMovesReaderOnce(t *testing.T) {
	h := &goroutineHandler{*newTestHandler()}
	srv := &Server{Handler: h}
	addr, stop := startServer(t, srv)
	which := func(c *rawConn) int {
		t.Helper()
		c.send(`{"id":9,"method":"which","params":[]}`)
		m := c.recv()
		id, err := strconv.Atoi(string(m["result"]))
		if err != nil || string(m["id"]) != "9" {
			t.Fatalf("which: %s", m)
		}
		return id
	}
	var conns []*rawConn
	for range 3 {
		c := dialRaw(t, addr)
		conns = append(conns, c)
		setup := which(c)
		c.send(`{"id":1,"method":"mining.subscribe","params":["t/1"]}`,
			`{"id":2,"method":"mining.authorize","params":["w","x"]}`)
		for range 3 { // two replies and set_difficulty
			c.recv()
		}
		// The move happens when the reader first finds nothing to read,
		// which the next request may or may not beat.
		moved := which(c)
		for moved == setup {
			moved = which(c)
		}
		for range 5 {
			if id := which(c); id != moved {
				t.Fatalf("reader moved again, from goroutine %d to %d", moved, id)
			}
		}
		c.send(`{"id":3,"method":"echo","params":["still here"]}`)
		if m := c.recv(); string(m["result"]) != `["still here"]` {
			t.Fatalf("after the move: %s", m)
		}
	}
	// One ends by the miner hanging up, the others with the server.
	conns[0].Close()
	if ev := h.nextDisconnect(t); ev.err == nil {
		t.Fatal("Disconnected without a cause")
	}
	stop()
	for range 2 {
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
	defer h.mu.Unlock()
	for id, n := range h.disconnected {
		if n != 1 || h.connected[id] != 1 {
			t.Fatalf("session %d: Connected %d, Disconnected %d times", id, h.connected[id], n)
		}
	}
	if srv.Sessions() != 0 {
		t.Fatalf("%d sessions after Serve returned", srv.Sessions())
	}
}
