package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serveReal serves env's server through Serve, the way hashforge serve
// does (capped listener, timeouts), on 127.0.0.1. It returns the address.
func serveReal(t *testing.T, env *testEnv) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.web.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dialer connects from a given loopback address: all of 127/8 is this
// machine, so one test plays several clients.
func dialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
}

func clientFrom(src string) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: dialer(src).DialContext}}
}

// keepAlive is a raw HTTP/1.1 connection, so the test knows exactly
// which connection each request uses.
type keepAlive struct {
	c net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr, src string) *keepAlive {
	t.Helper()
	c, err := dialer(src).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c: c, r: bufio.NewReader(c)}
}

// wantRefused connects from src and expects the connection to end
// unanswered: the server resets it at once, which the client may already
// see while connecting.
func wantRefused(t *testing.T, addr, src, what string) {
	t.Helper()
	c, err := dialer(src).Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	k := &keepAlive{c: c, r: bufio.NewReader(c)}
	if code, err := k.get("/healthz"); err == nil {
		t.Fatalf("%s: answered %d", what, code)
	}
}

// get sends one request and returns its status, or the error that ended
// the connection instead.
func (k *keepAlive) get(path string) (int, error) {
	k.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: pool\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitClosed waits for the server to close the connection: a read ends
// with EOF or a reset, not with the test's own deadline.
func (k *keepAlive) waitClosed(t *testing.T, what string) {
	t.Helper()
	k.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := k.r.ReadByte()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("%s: connection still open (read: %v)", what, err)
	}
}

func metricLine(t *testing.T, c *http.Client, base, name string) string {
	t.Helper()
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return grepLines(string(b), name)
}

// The file descriptor exhaustion the attacker caused: connections that
// never close. With the caps, one address gets MaxConnsPerIP connections
// and no more, another address is served all along, and all together get
// MaxConns.
func TestHTTPConnectionCaps(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.MaxConns, c.Limits.MaxConnsPerIP = 6, 3
	}, nil)
	addr := serveReal(t, env)
	other := clientFrom("127.0.0.2")
	base := "http://" + addr

	var held []*keepAlive
	for i := range 3 {
		k := dialKeepAlive(t, addr, "127.0.0.1")
		if code, err := k.get("/healthz"); err != nil || code != 200 {
			t.Fatalf("connection %d: %d, %v", i, code, err)
		}
		held = append(held, k)
	}
	// The fourth from the same address is closed unanswered.
	wantRefused(t, addr, "127.0.0.1", "a connection past the per-IP cap")
	// Another address is served meanwhile, and sees the refusal counted.
	if got := metricLine(t, other, base, `hashforge_http_connections_refused_total{reason="per_ip"}`); got != `hashforge_http_connections_refused_total{reason="per_ip"} 1` {
		t.Fatalf("refusals: %q", got)
	}
	// 127.0.0.1's three and the scrape's own connection.
	if got := metricLine(t, other, base, "hashforge_http_connections "); got != "hashforge_http_connections 4" {
		t.Fatalf("connections: %q", got)
	}
	if got := metricLine(t, other, base, "hashforge_http_client_ips "); got != "hashforge_http_client_ips 2" {
		t.Fatalf("client IPs: %q", got)
	}

	// Once they are closed, their slots are free; then fill the total
	// cap from several addresses: the next is refused whatever its
	// address.
	for _, k := range held {
		k.c.Close()
	}
	other.CloseIdleConnections()
	waitUntil(t, "every connection closed", func() bool { return env.web.conns.Load().Stats().Open == 0 })
	for i := range 6 {
		k := dialKeepAlive(t, addr, fmt.Sprintf("127.0.1.%d", i+1))
		if code, err := k.get("/healthz"); err != nil || code != 200 {
			t.Fatalf("filling the total cap, %d: %d, %v", i, code, err)
		}
	}
	wantRefused(t, addr, "127.0.2.1", "a connection past the total cap")
	if st := env.web.conns.Load().Stats(); st.RefusedTotal != 1 || st.RefusedPerIP != 1 || st.Open != 6 {
		t.Fatalf("stats after the total cap: %+v", st)
	}
}

// Connections that hold a slot without using it are closed by the
// server: an idle keep-alive after IdleTimeout, a silent one after
// ReadHeaderTimeout. With one slot per address, the address can connect
// again once its connection has been closed.
func TestHTTPIdleConnectionsClosed(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.MaxConnsPerIP = 1
		c.Limits.IdleTimeout = 200 * time.Millisecond
		c.Limits.ReadHeaderTimeout = 200 * time.Millisecond
	}, nil)
	addr := serveReal(t, env)

	k := dialKeepAlive(t, addr, "127.0.0.1")
	if code, err := k.get("/healthz"); err != nil || code != 200 {
		t.Fatalf("first request: %d, %v", code, err)
	}
	k.waitClosed(t, "idle keep-alive connection")
	again := dialKeepAlive(t, addr, "127.0.0.1")
	if code, err := again.get("/healthz"); err != nil || code != 200 {
		t.Fatalf("after the idle one closed: %d, %v", code, err)
	}
	again.waitClosed(t, "second idle connection")

	silent := dialKeepAlive(t, addr, "127.0.0.1")
	silent.waitClosed(t, "silent connection")
	last := dialKeepAlive(t, addr, "127.0.0.1")
	if code, err := last.get("/healthz"); err != nil || code != 200 {
		t.Fatalf("after the silent one closed: %d, %v", code, err)
	}
}

func dialFeedFrom(t *testing.T, addr, src string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{NetDialContext: dialer(src).DialContext, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/api/v1/ws", nil)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// wantFeedRefused checks that an upgrade from src is refused with status,
// and that a plain GET of the feed's URL (the dashboard's way to tell
// "full" from "down") gets the same answer.
func wantFeedRefused(t *testing.T, addr, src string, status int) {
	t.Helper()
	_, resp, err := dialFeedFrom(t, addr, src)
	if err == nil || resp == nil || resp.StatusCode != status {
		t.Fatalf("feed from %s: %v %v, want %d", src, resp, err, status)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("feed refusal without Retry-After")
	}
	plain, err := clientFrom(src).Get("http://" + addr + "/api/v1/ws")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	json.NewDecoder(plain.Body).Decode(&body)
	plain.Body.Close()
	if plain.StatusCode != status || body.Error == "" {
		t.Fatalf("plain GET of the feed from %s: %d %q, want %d", src, plain.StatusCode, body.Error, status)
	}
}

// The live feed is shared fairly: one address gets MaxFeedsPerIP feeds,
// all together get MaxFeeds, each refusal is counted, and a slot is free
// again as soon as its feed has gone.
func TestFeedCaps(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.MaxFeeds, c.Limits.MaxFeedsPerIP = 3, 2
	}, nil)
	addr := serveReal(t, env)

	first, _, err := dialFeedFrom(t, addr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialFeedFrom(t, addr, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	wantFeedRefused(t, addr, "127.0.0.1", http.StatusTooManyRequests)
	if _, _, err := dialFeedFrom(t, addr, "127.0.0.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	wantFeedRefused(t, addr, "127.0.0.3", http.StatusServiceUnavailable)
	m := metricLine(t, clientFrom("127.0.0.4"), "http://"+addr, "hashforge_ws_refused_total")
	if want := "hashforge_ws_refused_total{reason=\"full\"} 2\nhashforge_ws_refused_total{reason=\"per_ip\"} 2"; m != want {
		t.Fatalf("refusals:\n%s\nwant\n%s", m, want)
	}

	// A plain GET while there is room is not a refusal (the upgrade
	// fails instead), and takes no slot.
	first.Close()
	waitUntil(t, "the first feed gone", func() bool { return env.web.hub.count() == 2 })
	if resp, err := clientFrom("127.0.0.1").Get("http://" + addr + "/api/v1/ws"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET with room: %v %v, want 400", resp, err)
	}
	if _, _, err := dialFeedFrom(t, addr, "127.0.0.1"); err != nil {
		t.Fatalf("after a feed left: %v", err)
	}
}

// The server's read and write timeouts, far shorter here than the feed's
// life, do not cut a websocket: it outlives them many times over and
// keeps receiving.
func TestHTTPTimeoutsSpareTheFeed(t *testing.T) {
	const timeout = 100 * time.Millisecond
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.ReadHeaderTimeout, c.Limits.ReadTimeout, c.Limits.WriteTimeout, c.Limits.IdleTimeout = timeout, timeout, timeout, timeout
	}, func(s *Server) {
		s.hub.timing.statsEvery = 20 * time.Millisecond
		s.hub.timing.pingPeriod = 30 * time.Millisecond
	})
	addr := serveReal(t, env)
	c, _, err := dialFeedFrom(t, addr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n := 0
	for time.Since(start) < 10*timeout {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m feedMsg
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("feed cut after %v and %d messages: %v", time.Since(start), n, err)
		}
		n++
	}
	// And a plain request still gets its answer within the timeouts.
	if code, err := dialKeepAlive(t, addr, "127.0.0.2").get("/api/v1/stats"); err != nil || code != 200 {
		t.Fatalf("stats: %d %v", code, err)
	}
}

// Every limit is visible: in /metrics and in /api/v1/stats.
func TestLimitsExposed(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.MaxConns, c.Limits.MaxFeedsPerIP, c.Limits.IdleTimeout = 77, 5, 90*time.Second
	}, nil)
	addr := serveReal(t, env)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hashforge_http_max_connections{scope="total"} 77`,
		`hashforge_http_max_connections{scope="per_ip"} 64`,
		`hashforge_http_timeout_seconds{timeout="idle"} 90`,
		`hashforge_http_timeout_seconds{timeout="read_header"} 10`,
		`hashforge_http_timeout_seconds{timeout="write"} 30`,
		`hashforge_http_max_header_bytes 65536`,
		`hashforge_ws_max_clients{scope="total"} 1024`,
		`hashforge_ws_max_clients{scope="per_ip"} 5`,
		`hashforge_http_connections 1`,
		`hashforge_http_connections_refused_total{reason="total"} 0`,
		`hashforge_ws_refused_total{reason="full"} 0`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var s struct{ Limits map[string]float64 }
	get(t, "http://"+addr+"/api/v1/stats", 200, &s)
	for k, v := range map[string]float64{"http_max_conns": 77, "http_max_conns_per_ip": 64, "http_idle_timeout_seconds": 90,
		"http_read_header_timeout_seconds": 10, "http_read_timeout_seconds": 30, "http_write_timeout_seconds": 30,
		"http_max_header_bytes": 65536, "ws_max_clients": 1024, "ws_max_clients_per_ip": 5, "feed_fallback_poll_seconds": 10} {
		if got, ok := s.Limits[k]; !ok || got != v {
			t.Errorf("stats limits[%s] = %v, want %v", k, got, v)
		}
	}
	if len(s.Limits) != 10 {
		t.Errorf("stats limits: %v", s.Limits)
	}
	// A header past the cap is refused with 431, as before.
	k := dialKeepAlive(t, addr, "127.0.0.1")
	fmt.Fprintf(k.c, "GET /healthz HTTP/1.1\r\nHost: pool\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 70<<10))
	if r, err := http.ReadResponse(k.r, nil); err != nil || r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized header: %v %v", r, err)
	}
}

func TestLimitsValidated(t *testing.T) {
	for _, l := range []Limits{{MaxConns: -1, FeedPollInterval: time.Second}, {IdleTimeout: -1, FeedPollInterval: time.Second}, {MaxConns: 1}} {
		if err := l.validate(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := DefaultLimits().validate(); err != nil {
		t.Error(err)
	}
}
