package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWriteStatusText(t *testing.T) {
	s := Stats{
		Pool:       "stratum+tcp://pool.example:3333",
		Connected:  true,
		Difficulty: 2048,
		Hashrate:   3.5e6,
		Devices: []DeviceStats{
			{Name: "cpu", Hashrate: 1.5e6},
			{Name: "opencl:0", Hashrate: 2e6},
		},
		Submitted: 17, Accepted: 12, Rejected: 2, Stale: 1, Lost: 2, Discarded: 4,
		BestShare: 123456,
		Hashes:    987654321,
		Uptime:    95 * time.Second,
	}
	var b bytes.Buffer
	writeStatus(&b, "status", s, false)
	line := b.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want one line, got %q", line)
	}
	for _, want := range []string{
		"status 3.50 MH/s",           // total hashrate first
		"cpu 1.50 MH/s",              // per device
		"opencl:0 2.00 MH/s",         // per device
		"A:12 R:2 S:1 L:2 D:4",       // share outcomes
		"diff 2.05k",                 // current difficulty
		"best 123k",                  // best share
		"stratum+tcp://pool.example", // pool URL
	} {
		if !strings.Contains(line, want) {
			t.Errorf("status line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "disconnected") || strings.Contains(line, "hashes in") {
		t.Errorf("status line %q", line)
	}

	// Disconnected, one device, nothing lost: no device list, no L:/D:/HW:.
	b.Reset()
	s.Connected = false
	s.Devices = s.Devices[:1]
	s.Lost, s.Discarded = 0, 0
	writeStatus(&b, "summary", s, false)
	line = b.String()
	for _, want := range []string{"summary 3.50 MH/s", "A:12 R:2 S:1 |", "(disconnected)", "987654321 hashes in 1m35s"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary line %q lacks %q", line, want)
		}
	}
	for _, unwanted := range []string{"[", "L:", "D:", "HW:"} {
		if strings.Contains(line, unwanted) {
			t.Errorf("summary line %q has %q", line, unwanted)
		}
	}
}

func TestWriteStatusJSON(t *testing.T) {
	s := Stats{
		Time: time.Date(2024, 6, 6, 12, 0, 0, 0, time.UTC), Pool: "stratum+tcp://p:1", Connected: true,
		Difficulty: 0.5, Hashrate: 1234.5,
		Devices:   []DeviceStats{{Name: "cpu", Hashrate: 1234.5, Hashes: 99}},
		Submitted: 6, Accepted: 3, Rejected: 1, Stale: 1, Lost: 1, Discarded: 2, HWErrors: 1,
	}
	var b bytes.Buffer
	writeStatus(&b, "status", s, true)
	if bytes.Count(b.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("want one line, got %q", b.String())
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"kind": "status", "pool": "stratum+tcp://p:1", "connected": true, "difficulty": 0.5, "hashrate": 1234.5,
		"submitted": 6.0, "accepted": 3.0, "rejected": 1.0, "stale": 1.0, "lost": 1.0, "discarded": 2.0, "hw_errors": 1.0,
		"time": "2024-06-06T12:00:00Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	devs, _ := got["devices"].([]any)
	if len(devs) != 1 || devs[0].(map[string]any)["name"] != "cpu" || devs[0].(map[string]any)["hashrate"] != 1234.5 {
		t.Errorf("devices %v", got["devices"])
	}
}

// runBenchmark mines without a pool for a while and returns the output lines.
func runBenchmark(t *testing.T, cfg Config, until func(*Miner) bool) []string {
	t.Helper()
	var out bytes.Buffer
	var mu sync.Mutex
	cfg.Benchmark = true
	cfg.BenchmarkDiff = 1.0 / (1 << 20)
	cfg.Threads = 1
	cfg.Output = lockedWriter{&out, &mu}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.After(testWait)
	for !until(m) {
		select {
		case <-deadline:
			cancel()
			t.Fatal("timed out")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

func TestJSONStatusLines(t *testing.T) {
	start := time.Now()
	cfg := Config{JSONStats: true, StatusInterval: 20 * time.Millisecond}
	got := runBenchmark(t, cfg, func(m *Miner) bool {
		return m.Stats().Accepted >= 2 && time.Since(start) > 300*time.Millisecond // several intervals
	})
	if len(got) < 4 {
		t.Fatalf("%d lines: %q", len(got), got)
	}
	for i, l := range got {
		var s struct {
			Kind     string        `json:"kind"`
			Hashrate float64       `json:"hashrate"`
			Devices  []DeviceStats `json:"devices"`
			Pool     string        `json:"pool"`
		}
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		want := "status"
		if i == len(got)-1 {
			want = "summary"
		}
		if s.Kind != want || s.Pool != "benchmark" || len(s.Devices) != 1 {
			t.Errorf("line %d: %q", i, l)
		}
	}
}

func TestQuietPrintsOnlySummary(t *testing.T) {
	start := time.Now()
	got := runBenchmark(t, Config{Quiet: true, StatusInterval: 10 * time.Millisecond}, func(m *Miner) bool {
		return m.Stats().Accepted >= 1 && time.Since(start) > 200*time.Millisecond
	})
	if len(got) != 1 || !strings.HasPrefix(got[0], "summary ") {
		t.Errorf("quiet output %q, want the summary line only", got)
	}
}

func TestMeterEMA(t *testing.T) {
	var m meter
	t0 := time.Unix(1000, 0)
	if r := m.sample(t0); r != 0 {
		t.Fatalf("first sample rate %v", r)
	}
	// The first interval primes the average with its own rate.
	m.hashes.Add(5000)
	if r := m.sample(t0.Add(time.Second)); r != 5000 {
		t.Fatalf("primed rate %v, want 5000", r)
	}
	// No time passed: nothing changes.
	m.hashes.Add(1e6)
	if r := m.sample(t0.Add(time.Second)); r != 5000 {
		t.Fatalf("rate after a zero interval %v", r)
	}
	// Reference: r += (1 − e^(−dt/τ))·(inst − r), τ = 10 s.
	want := 5000.0
	now := t0.Add(time.Second)
	total := uint64(5000 + 1e6)
	for i, step := range []struct {
		dt     time.Duration
		hashes uint64
	}{{time.Second, 20000}, {2 * time.Second, 40000}, {500 * time.Millisecond, 0}, {10 * time.Second, 200000}} {
		now = now.Add(step.dt)
		m.hashes.Add(step.hashes)
		var inst float64
		if i == 0 {
			// The 1e6 hashes of the zero interval count in this one.
			inst = float64(step.hashes+1e6) / step.dt.Seconds()
		} else {
			inst = float64(step.hashes) / step.dt.Seconds()
		}
		want += (1 - math.Exp(-step.dt.Seconds()/10)) * (inst - want)
		total += step.hashes
		if got := m.sample(now); math.Abs(got-want) > 1e-9*want {
			t.Errorf("step %d: rate %v, want %v", i, got, want)
		}
	}
	if m.current() != m.rate || m.hashes.Load() != total {
		t.Error("current() or the counter disagree")
	}
	// A steady rate converges to that rate, whatever the sample interval.
	var s meter
	now = t0
	s.sample(now)
	for range 100 {
		now = now.Add(3 * time.Second)
		s.hashes.Add(3 * 7000)
		s.sample(now)
	}
	if r := s.current(); math.Abs(r-7000) > 1e-6 {
		t.Errorf("steady rate %v, want 7000", r)
	}
}

func TestFormatHashrate(t *testing.T) {
	for in, want := range map[float64]string{0: "0.00 H/s", 999: "999.00 H/s", 1500: "1.50 kH/s", 2.5e9: "2.50 GH/s", 3e18: "3000.00 PH/s"} {
		if got := FormatHashrate(in); got != want {
			t.Errorf("FormatHashrate(%v) = %q, want %q", in, got, want)
		}
	}
}
