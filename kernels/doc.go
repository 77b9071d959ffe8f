// Package kernels holds the OpenCL SHA-256d kernel (sha256d.cl, embedded)
// and, in builds with the opencl tag, its cgo host: device listing, program
// build, buffers, enqueue and a per-device work size tuned at start.
//
// Without the tag the package builds without cgo and every entry point
// returns ErrNoOpenCL, so the default binary stays static.
//
// The kernel reports candidates: nonces whose hash has a top 32-bit word
// at most the target's. The host hashes every candidate again on the CPU
// (pow.SHA256d, sha256d.Meets) and returns only confirmed nonces, so a
// faulty device or driver can waste time but never produce a bad share.
package kernels

import (
	_ "embed"
	"errors"
	"time"
)

// Source is the OpenCL C source of the sha256d_scan kernel.
//
//go:embed sha256d.cl
var Source string

// ErrNoOpenCL is returned by every entry point of a build without the
// opencl tag.
var ErrNoOpenCL = errors.New("this build has no OpenCL support (rebuild with -tags opencl)")

// DeviceInfo describes one OpenCL device. Index is the N of --device
// opencl:N: devices numbered across all platforms in the order the ICD
// loader reports them.
type DeviceInfo struct {
	Index          int    `json:"index"`
	Platform       string `json:"platform"`
	Name           string `json:"name"`
	Vendor         string `json:"vendor"`
	Type           string `json:"type"` // GPU, CPU, accelerator, other
	Version        string `json:"version"`
	Driver         string `json:"driver"`
	ComputeUnits   int    `json:"compute_units"`
	ClockMHz       int    `json:"clock_mhz"`
	GlobalMemBytes uint64 `json:"global_mem_bytes"`
}

// Tuning bounds: one launch should take about launchTarget, enough to make
// the per-launch host round trip negligible, short enough that a new job
// reaches the device promptly (the host checks for stale work between
// launches) and that a display GPU stays responsive.
const (
	launchTarget = 30 * time.Millisecond
	launchMin    = 20 * time.Millisecond
	maxBatch     = 1 << 30
)

// defaultSlots is the capacity of a launch's candidate buffer. Launch sizes
// are capped so that the expected number of candidates stays below
// slots/8 (see batchLimit); overflow is then a many-sigma event, and even
// then the host rescans the launch's range on the CPU.
const defaultSlots = 256

// batchLimit caps a launch so that at a per-nonce candidate probability of
// (hi+1)/2^32 it expects at most slots/8 candidates. Real share targets
// (difficulty ≥ 1, hi = 0) leave launches uncapped; only test and regtest
// targets near the top of the range shrink them.
func batchLimit(hi uint32, slots uint32) uint64 {
	limit := (uint64(slots) << 32) / (8 * (uint64(hi) + 1))
	return max(limit, 1)
}
