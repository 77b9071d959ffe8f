package sha256d

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/pow"
)

// StdlibName is the Bench name of the baseline: a plain loop of
// sha256.Sum256(sha256.Sum256(header)).
const StdlibName = "stdlib"

// BenchResult is one measurement of Bench.
type BenchResult struct {
	Impl         string  `json:"impl"`
	Threads      int     `json:"threads"`
	MHs          float64 `json:"mhs"`
	MHsPerThread float64 `json:"mhs_per_thread"`
	Hashes       uint64  `json:"hashes"`
	Seconds      float64 `json:"seconds"`
}

// benchChunk is the nonce count one goroutine scans between clock checks:
// small enough to stop promptly, large enough that the check costs nothing.
const benchChunk = 1 << 16

// Bench hashes with impl (a registered name or "stdlib") on threads
// goroutines for about d and reports the rate. The header and the
// never-met target model steady-state mining: no winners, early exits taken.
func Bench(ctx context.Context, impl string, threads int, d time.Duration) (BenchResult, error) {
	if threads < 1 {
		return BenchResult{}, fmt.Errorf("sha256d bench: threads must be ≥ 1, got %d", threads)
	}
	var newScan func() func(w *Work, nonce uint32) uint64
	if impl == StdlibName {
		newScan = func() func(*Work, uint32) uint64 { return stdlibChunk }
	} else {
		im, err := Lookup(impl)
		if err != nil {
			return BenchResult{}, fmt.Errorf("sha256d bench: %w", err)
		}
		newScan = func() func(*Work, uint32) uint64 {
			s := im.New()
			found := make([]uint32, 0, 16)
			return func(w *Work, nonce uint32) uint64 {
				found = s.Scan(w, nonce, nonce+benchChunk-1, found[:0])
				return benchChunk
			}
		}
	}

	var header [80]byte
	for i := range header {
		header[i] = byte(i*37 + 11)
	}
	var target [32]byte
	w := NewWork(&header, &target)

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		total atomic.Uint64
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	go func() { <-ctx.Done(); stop.Store(true) }()
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			scan := newScan()
			nonce := uint32(t) << 28 // disjoint ranges, as real workers get
			var n uint64
			for !stop.Load() {
				n += scan(w, nonce)
				nonce += benchChunk
			}
			total.Add(n)
		}(t)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := context.Cause(ctx); err != nil && err != context.DeadlineExceeded {
		return BenchResult{}, fmt.Errorf("sha256d bench: %w", err)
	}
	hashes := total.Load()
	mhs := float64(hashes) / secs / 1e6
	return BenchResult{
		Impl: impl, Threads: threads, MHs: mhs, MHsPerThread: mhs / float64(threads),
		Hashes: hashes, Seconds: secs,
	}, nil
}

// stdlibChunk is the baseline every kernel is compared with.
func stdlibChunk(w *Work, nonce uint32) uint64 {
	h := w.header
	var sink byte
	for i := uint32(0); i < benchChunk; i++ {
		binary.LittleEndian.PutUint32(h[76:], nonce+i)
		sum := pow.SHA256d(h[:])
		sink |= sum[0]
	}
	benchSink.Store(uint32(sink))
	return benchChunk
}

var benchSink atomic.Uint32
