package pool

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/stratum"
)

// startGated serves tp behind a Gate wired to the pool's ban table as
// serve wires them.
func startGated(t *testing.T, tp *testPool, bans *ban.Table) (string, *stratum.Gate) {
	t.Helper()
	gate := stratum.NewGate(stratum.GateLimits{})
	gate.Banned = func(k netip.Prefix) bool { _, ok := bans.Banned(k, time.Now()); return ok }
	bans.OnBan = func(b ban.Ban) { gate.CloseKey(b.Addr, stratum.ErrBanned) }
	return serveStratum(t, &stratum.Server{Handler: tp.srv, Logger: quietLogger(), Gate: gate}), gate
}

func dialFrom(t *testing.T, from, addr string) (*stratum.Client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := stratum.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// waitClosed waits for the pool to hang up on c.
func waitClosed(t *testing.T, c *stratum.Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection still open")
	}
}

// refusedFrom asserts a new connection from "from" gets no answer.
func refusedFrom(t *testing.T, from, addr string) {
	t.Helper()
	c, err := dialFrom(t, from, addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return
		}
		t.Fatal(err)
	}
	if _, err := tcall(t, c, "mining.subscribe", []any{}); err == nil {
		t.Fatal("a banned address was served")
	}
}

func honestMiner(t *testing.T, addr string) *stratum.Client {
	t.Helper()
	c, err := dialFrom(t, "127.0.0.1", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tcall(t, c, "mining.subscribe", []any{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tcall(t, c, "mining.authorize", []any{regtestAddr + ".honest", "x"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func stillServed(t *testing.T, c *stratum.Client) {
	t.Helper()
	if _, err := tcall(t, c, "mining.extranonce.subscribe", []any{}); err != nil {
		t.Fatalf("honest miner: %v", err)
	}
}

func TestBanInvalidShares(t *testing.T) {
	tp := newTestPool(t, nil)
	tp.srv.now = time.Now
	tp.srv.publish(testTemplate(t, 100, 0, false), true)
	bans := ban.New(ban.Config{MinShares: 20, MaxInvalidRatio: 0.5, Duration: time.Hour})
	tp.srv.cfg.Bans = bans
	addr, gate := startGated(t, tp, bans)
	honest := honestMiner(t, addr)

	// Several connections from one address, each sending shares that
	// fail the checks (an extranonce2 of the wrong size).
	var flood []*stratum.Client
	for range 3 {
		c, err := dialFrom(t, "127.0.0.2", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tcall(t, c, "mining.subscribe", []any{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tcall(t, c, "mining.authorize", []any{regtestAddr + ".flood", "x"}); err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
	}
	job := tp.srv.jobs.Current().ID
	sent := 0
	for sent < 100 {
		c := flood[sent%len(flood)]
		_, err := tcall(t, c, "mining.submit", []any{regtestAddr + ".flood", job, "00", "00000000", "00000000"})
		if err == nil {
			t.Fatal("an invalid share was accepted")
		}
		if stratumCode(err) == -1 {
			break // the connection was closed: banned
		}
		sent++
	}
	if sent >= 100 {
		t.Fatal("never banned")
	}
	for _, c := range flood {
		waitClosed(t, c)
	}
	list := bans.List(time.Now())
	if len(list) != 1 || list[0].Addr != netip.MustParsePrefix("127.0.0.2/32") {
		t.Fatalf("bans %+v", list)
	}
	refusedFrom(t, "127.0.0.2", addr)
	if st := gate.Stats(); st.RefusedBanned == 0 {
		t.Fatalf("gate %+v", st)
	}
	stillServed(t, honest)

	// The operator lifts it: the address is served again.
	if !bans.Lift(list[0].Addr) {
		t.Fatal("Lift found no ban")
	}
	c, err := dialFrom(t, "127.0.0.2", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tcall(t, c, "mining.subscribe", []any{}); err != nil {
		t.Fatalf("after lift: %v", err)
	}
}

func TestBanMalformedLinesAndAuthFailures(t *testing.T) {
	tp := newTestPool(t, nil)
	tp.srv.now = time.Now
	tp.srv.publish(testTemplate(t, 100, 0, false), true)
	bans := ban.New(ban.Config{MinLines: 10, MaxMalformedRatio: 0.5, MaxAuthFailures: 5, Duration: time.Hour})
	tp.srv.cfg.Bans = bans
	addr, _ := startGated(t, tp, bans)
	honest := honestMiner(t, addr)

	// Garbage lines over fresh connections (the stratum layer closes one
	// after ten): the address is banned by its ratio.
	for i := 0; i < 20 && len(bans.List(time.Now())) == 0; i++ {
		c, err := dialFrom(t, "127.0.0.3", addr)
		if err != nil {
			break
		}
		for range 4 {
			_ = c.SendRaw([]byte("GET / HTTP/1.1\n"))
		}
		_, _ = tcall(t, c, "mining.subscribe", []any{})
	}
	if l := bans.List(time.Now()); len(l) != 1 || l[0].Addr != netip.MustParsePrefix("127.0.0.3/32") {
		t.Fatalf("bans after garbage %+v", l)
	}

	// Failed authorizations (a password guesser, a misconfigured farm).
	c, err := dialFrom(t, "127.0.0.4", addr)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := tcall(t, c, "mining.authorize", []any{"not-an-address", "x"}); stratumCode(err) != stratum.CodeUnauthorized {
			break
		}
	}
	waitClosed(t, c)
	if l := bans.List(time.Now()); len(l) != 2 || l[1].Addr != netip.MustParsePrefix("127.0.0.4/32") {
		t.Fatalf("bans after auth failures %+v", l)
	}
	stillServed(t, honest)
}
