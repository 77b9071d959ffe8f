//go:build !unix

package pool

import (
	"testing"
	"time"
)

// reportCPU needs getrusage; elsewhere there is no cpu-ns/op.
func reportCPU(*testing.B) func() { return func() {} }

func processCPU() time.Duration { return 0 }
