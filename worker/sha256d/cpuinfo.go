package sha256d

import "github.com/klauspost/cpuid/v2"

// CPUInfo returns the CPU model and the features that decide which kernel
// runs (the ones each registered implementation checks).
func CPUInfo() (model string, features []string) {
	for _, f := range []struct {
		name string
		id   cpuid.FeatureID
	}{
		{"SHA", cpuid.SHA}, {"SSSE3", cpuid.SSSE3}, {"SSE4.1", cpuid.SSE4},
		{"AVX", cpuid.AVX}, {"AVX2", cpuid.AVX2}, {"BMI2", cpuid.BMI2},
		{"AVX512F", cpuid.AVX512F}, {"AVX512VL", cpuid.AVX512VL},
	} {
		if cpuid.CPU.Supports(f.id) {
			features = append(features, f.name)
		}
	}
	return cpuid.CPU.BrandName, features
}
