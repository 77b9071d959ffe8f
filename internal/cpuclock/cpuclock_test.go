//go:build unix

package cpuclock

import (
	"crypto/sha256"
	"testing"
)

func TestSelfCountsWork(t *testing.T) {
	start := Self()
	b := make([]byte, 1<<20)
	for range 64 { // tens of milliseconds of CPU: past any accounting tick
		s := sha256.Sum256(b)
		b[0] = s[0]
	}
	if Self() <= start {
		t.Fatalf("CPU time did not advance over work: %v then %v", start, Self())
	}
}
