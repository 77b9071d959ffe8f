package pool

import (
	"testing"

	"github.com/hashforge/hashforge/internal/cpuclock"
)

// reportCPU adds cpu-ns/op: the process's CPU time (user + system, GC
// included) per iteration. On a machine shared with other work it moves
// far less than wall time, which counts the time other processes ran.
func reportCPU(b *testing.B) func() {
	start := cpuclock.Self()
	if start == 0 {
		return func() {} // no getrusage here: no cpu-ns/op
	}
	return func() {
		b.ReportMetric(float64((cpuclock.Self()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
