//go:build !amd64 || purego

package sha256d

// The SIMD kernels are amd64 assembly; elsewhere (and with -tags purego)
// they are listed as unavailable so that naming one says why it cannot run.
func init() {
	for _, r := range []struct {
		name string
		rank int
	}{{"avx512", 40}, {"shani", 30}, {"avx2", 20}} {
		register(r.name, r.rank, false, nil)
	}
}
