//go:build unix

package pool

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashforge/hashforge/stratum"
)

// BenchmarkIdleSessionMemory measures what an idle authorized miner costs
// the pool: N loopback connections subscribe and authorize, receive their
// difficulty and job, and go quiet; the Go heap, goroutine stacks and RSS
// grow by the reported bytes per session. The miners are raw sockets
// outside the Go runtime, so only the server side is counted. Run with
// -benchtime 1x; IDLE_SESSIONS sets N (default 2000).
func BenchmarkIdleSessionMemory(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("IDLE_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("IDLE_HEAPPROFILE") != "" {
		// Every allocation, not a sample: a session's few hundred bytes
		// are far below the default sampling rate.
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	tp := newTestPool(b, nil)
	tp.srv.publish(testTemplate(b, 850000, 3, true), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	st := &stratum.Server{Handler: tp.srv, Logger: quietLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = st.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	sa := &syscall.SockaddrInet4{Port: ln.Addr().(*net.TCPAddr).Port, Addr: [4]byte{127, 0, 0, 1}}

	heap0, stack0, rss0 := memNow()
	fds := make([]int, 0, n)
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	buf := make([]byte, 64<<10)
	for i := range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if err := syscall.Connect(fd, sa); err != nil {
			b.Fatal(err)
		}
		hello := fmt.Sprintf(`{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}`+"\n"+
			`{"id":2,"method":"mining.authorize","params":["%s.w%d","x"]}`+"\n", regtestAddr, i)
		if _, err := syscall.Write(fd, []byte(hello)); err != nil {
			b.Fatal(err)
		}
		// Read until the job arrives: the session is then fully set up.
		var got []byte
		for !bytes.Contains(got, []byte("mining.notify")) {
			k, err := syscall.Read(fd, buf)
			if err != nil || k <= 0 {
				b.Fatalf("session %d: read %d, %v after %q", i, k, err, got)
			}
			got = append(got, buf[:k]...)
		}
	}
	time.Sleep(200 * time.Millisecond) // writers finish and exit
	if got := st.Sessions(); got != n {
		b.Fatalf("%d sessions live, want %d", got, n)
	}
	heap1, stack1, rss1 := memNow()
	if path := os.Getenv("IDLE_HEAPPROFILE"); path != "" {
		// What the sessions hold, while they are live.
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	for b.Loop() { // the measurement above is the benchmark; Loop resets metrics
	}
	b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/session")
	b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/session")
	b.ReportMetric(float64(heap1+stack1-heap0-stack0)/float64(n), "B/session")
	b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/session")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/session")
}

// memNow is the live heap and stack bytes after a full collection, and
// the process's resident set.
func memNow() (heap, stack, rss int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return int64(ms.HeapAlloc), int64(ms.StackInuse), rss
}
