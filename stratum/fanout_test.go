package stratum

import (
	"sync/atomic"
	"testing"
	"time"
)

// A followed broadcast completes once every session it was handed to has
// written it, exactly once, also when one of them ended instead.
func TestFanOutCompletesOnWrites(t *testing.T) {
	h := newTestHandler()
	addr, _ := startServer(t, &Server{Handler: h})
	var clients []*rawConn
	var sessions []*Session
	for range 3 {
		clients = append(clients, dialRaw(t, addr))
		sessions = append(sessions, <-h.sessions)
	}
	sessions[2].Close("gone")
	h.nextDisconnect(t)

	line := []byte(`{"id":null,"method":"mining.notify","params":[]}` + "\n")
	var calls atomic.Int32
	done := make(chan time.Duration, 2)
	fo := TrackFanOut(func(d time.Duration) { calls.Add(1); done <- d }, line)
	for _, s := range sessions {
		s.SendLine(line)
	}
	other := []byte("{}\n") // not followed: never waited for
	sessions[0].SendLine(other)
	fo.Seal()
	for _, c := range clients[:2] {
		if m := c.recv(); string(m["method"]) != `"mining.notify"` {
			t.Fatalf("got %v", m)
		}
	}
	select {
	case d := <-done:
		if d <= 0 {
			t.Fatalf("fan-out took %v", d)
		}
	case <-time.After(guard):
		t.Fatal("fan-out never completed")
	}
	sessions[1].SendLine(line) // after Seal: not counted
	clients[1].recv()
	fo.Seal()
	time.Sleep(10 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("observed %d times", n)
	}
}
