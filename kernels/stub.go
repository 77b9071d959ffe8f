//go:build !opencl

package kernels

import (
	"context"
	"time"

	"github.com/hashforge/hashforge/worker/sha256d"
)

// Enabled reports whether this build has the OpenCL host.
const Enabled = false

// Devices reports ErrNoOpenCL: this build has no OpenCL host.
func Devices() ([]DeviceInfo, error) { return nil, ErrNoOpenCL }

// Bench reports ErrNoOpenCL: this build has no OpenCL host.
func Bench(context.Context, int, time.Duration) (sha256d.BenchResult, error) {
	return sha256d.BenchResult{}, ErrNoOpenCL
}
