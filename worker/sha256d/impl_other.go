//go:build !amd64 || purego

package sha256d

// The SIMD kernels are amd64 assembly; elsewhere (and with -tags purego)
// they are listed as unavailable so that naming one says why it cannot run.
func init() {
	register("avx512", 40, false, nil, nil)
	register("shani", 30, false, nil, nil)
	register("avx2", 20, false, nil, nil)
}
