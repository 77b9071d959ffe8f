package stratum

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessionList is a Handler that only keeps its sessions.
type sessionList struct {
	mu       sync.Mutex
	sessions []*Session
}

func (l *sessionList) Connected(s *Session) {
	l.mu.Lock()
	l.sessions = append(l.sessions, s)
	l.mu.Unlock()
}
func (l *sessionList) Handle(*Session, *Request)    {}
func (l *sessionList) Disconnected(*Session, error) {}

// BenchmarkFanOutSockets is one job broadcast to FANOUT_SESSIONS (default
// 10,000) miners over loopback TCP, timed from the first hand-off until
// the miners have read it all (ns/op); handoff-ns/op is the sending loop
// alone, written-ns/op until the line was written to every socket (what
// hashforge_notify_fanout_seconds measures). The miners live in a child
// process, so this process holds one descriptor per session, as a pool
// does; the two share the machine's cores, as they would not in a pool.
func BenchmarkFanOutSockets(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("FANOUT_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	var notify NotifyParams
	if err := json.Unmarshal(loadVectors(b)["computed-branch-of-3"].Notify, &notify); err != nil {
		b.Fatal(err)
	}
	line, err := EncodeNotification("mining.notify", notify)
	if err != nil {
		b.Fatal(err)
	}
	h := &sessionList{}
	srv := &Server{Handler: h, Logger: slog.New(slog.DiscardHandler), AuthTimeout: time.Hour}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	helper := exec.Command(os.Args[0], "-test.run=^TestFanOutHelper$")
	helper.Env = append(os.Environ(), fmt.Sprintf("STRATUM_FANOUT_HELPER=%s,%d,%d", ln.Addr(), n, len(line)))
	stdin, _ := helper.StdinPipe()
	stdout, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = helper.Wait() }()
	rounds := bufio.NewReader(stdout)
	if l, err := rounds.ReadString('\n'); err != nil || l != "ready\n" {
		b.Fatalf("helper: %q, %v", l, err)
	}
	for deadline := time.Now().Add(time.Minute); srv.Sessions() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions connected", srv.Sessions(), n)
		}
	}
	h.mu.Lock()
	sessions := h.sessions
	h.mu.Unlock()

	done := make(chan time.Duration, 1)
	var handoff, written time.Duration
	b.ReportAllocs()
	for b.Loop() {
		fo := TrackFanOut(func(d time.Duration) { done <- d }, line)
		t0 := time.Now()
		for _, s := range sessions {
			if !s.SendLine(line) {
				b.Fatal("session dropped")
			}
		}
		handoff += time.Since(t0)
		fo.Seal()
		written += <-done
		if l, err := rounds.ReadString('\n'); err != nil || l != "round\n" {
			b.Fatalf("helper: %q, %v", l, err)
		}
	}
	b.ReportMetric(float64(handoff.Nanoseconds())/float64(b.N), "handoff-ns/op")
	b.ReportMetric(float64(written.Nanoseconds())/float64(b.N), "written-ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/session")
}

// TestFanOutHelper is BenchmarkFanOutSockets' miners: it connects, says
// "ready", reads and discards until its stdin closes.
func TestFanOutHelper(t *testing.T) {
	spec := os.Getenv("STRATUM_FANOUT_HELPER")
	if spec == "" {
		t.Skip("helper process for BenchmarkFanOutSockets")
	}
	f := strings.Split(spec, ",")
	addr := f[0]
	n, _ := strconv.Atoi(f[1])
	lineLen, _ := strconv.Atoi(f[2])
	// "round" once every miner has a whole broadcast more, as far as
	// the bytes tell: the benchmark's end-to-end clock.
	var mu sync.Mutex
	var total, next int64 = 0, int64(n * lineLen)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 4096)
			for {
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				mu.Lock()
				total += int64(k)
				for total >= next {
					fmt.Println("round")
					next += int64(n * lineLen)
				}
				mu.Unlock()
			}
		}()
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}
