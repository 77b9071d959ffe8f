//go:build amd64 && !purego

package sha256d

import "github.com/klauspost/cpuid/v2"

// The SHA-NI kernels use SSE4.1 (pinsrd) and SSSE3 (palignr) besides SHA.
var (
	shaniNeeds = []cpuid.FeatureID{cpuid.SHA, cpuid.SSSE3, cpuid.SSE4}
	hasSHANI   = cpuid.CPU.Supports(shaniNeeds...)
)

func init() {
	register("shani", 30, hasSHANI, shaniNeeds, func() Scanner { return shani{} })
}

//go:noescape
func shaniScan1(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)

//go:noescape
func shaniScan2(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)

//go:noescape
func shaniScan3(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)

//go:noescape
func shaniScan4(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)

type shani struct{}

func (shani) Name() string { return "shani" }

// Scan uses two lanes, the most that keep all state and message groups in
// XMM registers; the three- and four-lane variants, which spill message
// groups to the stack, measured slower on Zen 3 (docs/performance.md).
func (shani) Scan(w *Work, first, last uint32, found []uint32) []uint32 {
	return scanLanes(w, first, last, found, 2, shaniScan2)
}
