package stratum

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
)

// startTLSServer runs srv behind a real TLS listener (a self-signed pair
// made for the test) and returns its address and a client config that
// trusts the pair.
func startTLSServer(t *testing.T, srv *Server) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := tlsreload.WriteSelfSigned(cf, kf, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	certs, err := tlsreload.Load(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, tls.NewListener(tcp, certs.Config())) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	<-srv.Ready()
	pemBytes, err := os.ReadFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	return tcp.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}

func dialTLSClient(t *testing.T, addr string, cfg *tls.Config) (*Client, *tls.Conn) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c, conn
}

// TestServerOverTLS: a session on a tls.Conn (no raw socket: blocking
// reads, and writes by a goroutine of its own) subscribes, authorizes,
// gets notifications and replies.
func TestServerOverTLS(t *testing.T) {
	h := newTestHandler()
	addr, cfg := startTLSServer(t, &Server{Handler: h})
	c, _ := dialTLSClient(t, addr, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := c.Call(ctx, "mining.subscribe", []any{"tls-test"}); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Call(ctx, "mining.authorize", []any{"addr.w", "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize = %s, %v", res, err)
	}
	if n := <-c.Notifications(); n.Method != "mining.set_difficulty" {
		t.Fatalf("notification %q, want mining.set_difficulty", n.Method)
	}
	s := <-h.sessions
	if !s.Authorized() {
		t.Fatal("session not authorized")
	}
	// A broadcast from another goroutine goes through the shared writers.
	if !s.Notify("mining.notify", []any{"job1"}) {
		t.Fatal("notify refused")
	}
	if n := <-c.Notifications(); n.Method != "mining.notify" || !strings.Contains(fmt.Sprintf("%s", n.Params), "job1") {
		t.Fatalf("notification %q %s", n.Method, n.Params)
	}
	if res, err := c.Call(ctx, "echo", []any{"after"}); err != nil || !strings.Contains(string(res), "after") {
		t.Fatalf("echo = %s, %v", res, err)
	}
}

// TestTLSStuckReadersDoNotDelayBroadcasts: TLS sessions that stop reading
// (more of them than there are shared writers) must not hold a shared
// writer, so a healthy session hears every broadcast made after them.
func TestTLSStuckReadersDoNotDelayBroadcasts(t *testing.T) {
	h := newTestHandler()
	srv := &Server{Handler: h, SendQueue: 1 << 16, WriteTimeout: time.Hour}
	addr, cfg := startTLSServer(t, srv)

	stuckN := runtime.GOMAXPROCS(0) + 2 // more than the shared writers
	var stuck []*Session
	for range stuckN {
		tcp, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = tcp.(*net.TCPConn).SetReadBuffer(4096)
		tc := tls.Client(tcp, cfg)
		t.Cleanup(func() { tc.Close() })
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		stuck = append(stuck, <-h.sessions)
	}
	healthy, _ := dialTLSClient(t, addr, cfg)
	healthySess := <-h.sessions

	blob, err := EncodeNotification("test.blob", []string{strings.Repeat("ab", 32<<10)})
	if err != nil {
		t.Fatal(err)
	}
	small, err := EncodeNotification("test.job", []string{"j"})
	if err != nil {
		t.Fatal(err)
	}
	// 200 rounds of 64 KiB are 12.8 MB a stuck session: far past what a
	// loopback socket with a 4 KiB receive buffer holds, so each stuck
	// session's writer is blocked in Write long before the end.
	var stuckWritten sync.WaitGroup
	stuckWritten.Add(1)
	written := make(chan struct{})
	go func() { stuckWritten.Wait(); close(written) }()
	for round := range 200 {
		var fo *FanOut
		if round == 199 {
			fo = TrackFanOut(func(time.Duration) { stuckWritten.Done() }, blob)
		}
		for _, s := range stuck {
			if !s.SendLine(blob) {
				t.Fatalf("round %d: stuck session dropped (%v)", round, s.Err())
			}
		}
		if fo != nil {
			fo.Seal()
		}
		if !healthySess.SendLine(small) {
			t.Fatalf("round %d: healthy session dropped", round)
		}
		select {
		case n := <-healthy.Notifications():
			if n.Method != "test.job" {
				t.Fatalf("healthy got %q", n.Method)
			}
		case <-time.After(guard):
			t.Fatalf("round %d: healthy session starved behind stuck TLS sessions", round)
		}
	}
	// The stuck sessions really were stuck: their last broadcast is not
	// written (nobody reads it), so the test did exercise blocked writers.
	select {
	case <-written:
		t.Fatal("the stuck sessions took 12.8 MB each: nothing was blocked")
	default:
	}
}

// TestTLSSilentClientClosed: a client that opens TCP on the TLS port and
// never starts the handshake holds its slot only until the auth timeout.
func TestTLSSilentClientClosed(t *testing.T) {
	h := newTestHandler()
	addr, _ := startTLSServer(t, &Server{Handler: h, AuthTimeout: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("silent client still connected")
		}
		break
	}
	if ev := h.nextDisconnect(t); !errors.Is(ev.err, ErrAuthTimeout) {
		t.Fatalf("Disconnected(%v), want ErrAuthTimeout", ev.err)
	}
}
