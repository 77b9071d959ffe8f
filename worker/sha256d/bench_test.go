package sha256d

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// reportRates reports MH/s of wall time and, where the OS tells the thread's
// CPU time, MH/s per CPU second (steadier on a shared machine).
func reportRates(b *testing.B, hashes float64, cpu time.Duration) {
	b.ReportMetric(hashes/b.Elapsed().Seconds()/1e6, "MH/s")
	if cpu > 0 {
		b.ReportMetric(hashes/cpu.Seconds()/1e6, "MH/cpu-s")
	}
}

func benchHeader() (*[80]byte, *[32]byte) {
	var header [80]byte
	for i := range header {
		header[i] = byte(i*37 + 11)
	}
	var target [32]byte // nothing wins: the steady state of mining
	return &header, &target
}

func BenchmarkScan(b *testing.B) {
	header, target := benchHeader()
	w := NewWork(header, target)
	for _, impl := range Implementations() {
		b.Run(impl.Name, func(b *testing.B) {
			if !impl.Available {
				skipUnavailable(b, impl.Name)
			}
			defer lockThread()()
			s := impl.New()
			chunk := uint32(1 << 16)
			if impl.Name == "generic" {
				chunk = 1 << 12
			}
			found := make([]uint32, 0, 8)
			var nonce uint32
			b.ReportAllocs()
			cpu0 := threadCPU()
			for b.Loop() {
				found = s.Scan(w, nonce, nonce+chunk-1, found[:0])
				nonce += chunk
			}
			reportRates(b, float64(b.N)*float64(chunk), threadCPU()-cpu0)
		})
	}
}

// BenchmarkStdlib is the baseline: a plain loop of
// sha256.Sum256(sha256.Sum256(header)) with the nonce stored each time.
func BenchmarkStdlib(b *testing.B) {
	header, _ := benchHeader()
	h := *header
	defer lockThread()()
	b.ReportAllocs()
	cpu0 := threadCPU()
	var nonce uint32
	var sink byte
	for b.Loop() {
		binary.LittleEndian.PutUint32(h[76:], nonce)
		first := sha256.Sum256(h[:])
		sum := sha256.Sum256(first[:])
		sink ^= sum[31]
		nonce++
	}
	_ = sink
	reportRates(b, float64(b.N), threadCPU()-cpu0)
}

func TestBenchRunner(t *testing.T) {
	for _, name := range []string{StdlibName, Default().Name} {
		r, err := Bench(t.Context(), name, 2, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if r.Hashes == 0 || r.MHs <= 0 || r.Threads != 2 || r.Impl != name {
			t.Errorf("%s: implausible result %+v", name, r)
		}
	}
	if _, err := Bench(t.Context(), "bogus", 1, time.Millisecond); err == nil {
		t.Error("Bench accepted an unknown implementation")
	}
	if model, _ := CPUInfo(); model == "" {
		t.Log("CPU model unknown")
	}
}
