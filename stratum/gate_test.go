package stratum

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dialFrom connects from a given loopback address (127.0.0.0/8 is all
// local on Linux), so one test can play several clients.
func dialFrom(t *testing.T, from, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(guard))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

// subscribed sends a subscribe and waits for its reply: the connection
// is then a session the Gate has admitted.
func (c *rawConn) subscribed() *rawConn {
	c.t.Helper()
	c.send(`{"id":1,"method":"mining.subscribe","params":[]}`)
	if m := c.recv(); string(m["id"]) != "1" || string(m["error"]) != "null" {
		c.t.Fatalf("subscribe reply %v", m)
	}
	return c
}

func (c *rawConn) authorized() *rawConn {
	c.t.Helper()
	c.subscribed()
	c.send(`{"id":2,"method":"mining.authorize","params":["worker","x"]}`)
	if m := c.recv(); string(m["id"]) != "2" || string(m["result"]) != "true" {
		c.t.Fatalf("authorize reply %v", m)
	}
	c.recv() // set_difficulty
	return c
}

// refused asserts the server closes a connection from "from" without a
// word. The reset may even beat the dial's return.
func refused(t *testing.T, from, addr string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(guard))
	rc := &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
	if msgs := rc.expectClosed(); len(msgs) != 0 {
		t.Fatalf("refused connection got %v", msgs)
	}
}

func TestGateEvictsUnauthorizedFirst(t *testing.T) {
	h := newTestHandler()
	gate := NewGate(GateLimits{MaxSessions: 3})
	addr, _ := startServer(t, &Server{Handler: h, Gate: gate})

	miner := dialRaw(t, addr).authorized()
	idle1 := dialRaw(t, addr).subscribed()
	idle2 := dialRaw(t, addr).subscribed()

	// Full: the oldest unauthorized session gives way to the newcomer.
	late := dialRaw(t, addr).subscribed()
	idle1.expectClosed()
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrEvicted) {
		t.Fatalf("evicted session ended with %v", ev.err)
	}
	// Once every session has authorized, a newcomer is refused.
	idle2.send(`{"id":2,"method":"mining.authorize","params":["w2","x"]}`)
	idle2.recv()
	late.send(`{"id":2,"method":"mining.authorize","params":["w3","x"]}`)
	late.recv()
	refused(t, "127.0.0.1", addr)

	st := gate.Stats()
	if st.Open != 3 || st.Unauthorized != 0 || st.Evicted != 1 || st.RefusedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The miners that authorized kept working throughout.
	miner.send(`{"id":9,"method":"echo","params":[1]}`)
	if m := miner.recv(); string(m["id"]) != "9" {
		t.Fatalf("miner reply %v", m)
	}
}

func TestGatePerIPCap(t *testing.T) {
	h := newTestHandler()
	gate := NewGate(GateLimits{MaxSessionsPerIP: 2})
	addr, _ := startServer(t, &Server{Handler: h, Gate: gate})

	dialFrom(t, "127.0.0.1", addr).authorized()
	idle := dialFrom(t, "127.0.0.1", addr).subscribed()
	// The address is full: its own unauthorized session gives way.
	dialFrom(t, "127.0.0.1", addr).authorized()
	idle.expectClosed()
	refused(t, "127.0.0.1", addr)
	// Another address is not held back by the first one's cap.
	dialFrom(t, "127.0.0.2", addr).authorized()

	st := gate.Stats()
	if st.Open != 3 || st.IPs != 2 || st.RefusedPerIP != 1 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGateSharedByServers(t *testing.T) {
	gate := NewGate(GateLimits{MaxSessions: 2})
	a, _ := startServer(t, &Server{Handler: newTestHandler(), Gate: gate})
	b, _ := startServer(t, &Server{Handler: newTestHandler(), Gate: gate})
	dialRaw(t, a).authorized()
	c := dialRaw(t, b).authorized()
	refused(t, "127.0.0.1", a)
	refused(t, "127.0.0.1", b)
	// A session ending gives its slot back to either port.
	c.Close()
	deadline := time.Now().Add(guard)
	for gate.Stats().Open != 1 {
		if time.Now().After(deadline) {
			t.Fatal("slot not given back")
		}
		time.Sleep(time.Millisecond)
	}
	dialRaw(t, a).authorized()
}

func TestGateBans(t *testing.T) {
	h := newTestHandler()
	banned := netip.MustParsePrefix("127.0.0.2/32")
	var on atomic.Bool
	gate := NewGate(GateLimits{})
	gate.Banned = func(k netip.Prefix) bool { return on.Load() && k == banned }
	addr, _ := startServer(t, &Server{Handler: h, Gate: gate})

	honest := dialFrom(t, "127.0.0.1", addr).authorized()
	bad := dialFrom(t, "127.0.0.2", addr).authorized()
	if got := gate.CloseKey(banned, ErrBanned); got != 1 {
		t.Fatalf("CloseKey closed %d sessions, want 1", got)
	}
	bad.expectClosed()
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrBanned) {
		t.Fatalf("banned session ended with %v", ev.err)
	}
	on.Store(true) // set before the next accept, which the dial below causes
	refused(t, "127.0.0.2", addr)
	if st := gate.Stats(); st.RefusedBanned != 1 {
		t.Fatalf("stats %+v", st)
	}
	honest.send(`{"id":9,"method":"echo","params":[1]}`)
	if m := honest.recv(); string(m["id"]) != "9" {
		t.Fatalf("honest reply %v", m)
	}
}

func TestGateList(t *testing.T) {
	var l gateList
	s := make([]*GateSlot, 4)
	for i := range s {
		s[i] = &GateSlot{}
		l.push(s[i], peerLinks)
	}
	l.remove(s[0], peerLinks) // head
	l.remove(s[2], peerLinks) // middle
	l.remove(s[3], peerLinks) // tail
	l.remove(s[3], peerLinks) // twice: no-op
	if l.n != 1 || l.head != s[1] || l.tail != s[1] {
		t.Fatalf("list n=%d head=%v tail=%v", l.n, l.head, l.tail)
	}
	l.remove(s[1], peerLinks)
	if l.n != 0 || l.head != nil || l.tail != nil {
		t.Fatal("list not empty")
	}
}
