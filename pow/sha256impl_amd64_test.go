//go:build !purego

package pow

import (
	"os"
	"strings"
	"testing"
)

// forEachImpl runs f with the SHA extensions' path (where the CPU has
// them) and with the generic one.
func forEachImpl(t *testing.T, f func(*testing.T)) {
	t.Helper()
	saved := useSHANI
	defer func() { useSHANI = saved }()
	if hasSHANI() {
		useSHANI = true
		t.Run("shani", f)
	}
	useSHANI = false
	t.Run("generic", f)
}

// eachImpl is forEachImpl without subtests, for fuzz targets.
func eachImpl(f func(name string)) {
	saved := useSHANI
	defer func() { useSHANI = saved }()
	if hasSHANI() {
		useSHANI = true
		f("shani")
	}
	useSHANI = false
	f("generic")
}

func forEachImplBench(b *testing.B, f func(*testing.B)) {
	saved := useSHANI
	defer func() { useSHANI = saved }()
	if hasSHANI() {
		useSHANI = true
		b.Run("shani", f)
	}
	useSHANI = false
	b.Run("generic", f)
}

// TestSHANIUsed checks the CPUID probe against the kernel's view of the
// CPU: a machine with the SHA extensions must run them.
func TestSHANIUsed(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo to compare the CPUID probe with: %v", err)
	}
	var flags []string
	for line := range strings.Lines(string(info)) {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			flags = strings.Fields(val)
			break
		}
	}
	if flags == nil {
		t.Fatal("no flags line in /proc/cpuinfo")
	}
	has := func(f string) bool {
		for _, g := range flags {
			if g == f {
				return true
			}
		}
		return false
	}
	want := has("sha_ni") && has("ssse3") && has("sse4_1")
	if hasSHANI() != want {
		t.Fatalf("CPUID probe says SHA extensions %v; /proc/cpuinfo says %v", hasSHANI(), want)
	}
	if useSHANI != want {
		t.Fatalf("useSHANI = %v on a CPU whose SHA extensions are %v", useSHANI, want)
	}
}
