//go:build amd64 && !purego

package sha256d

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// kernelsBuilt: this build has the assembly kernels.
const kernelsBuilt = true

type kernelVariant struct {
	name  string
	impl  string // the registered implementation it belongs to
	lanes uint32
	ok    bool
	fn    laneKernel
}

func kernelVariants() []kernelVariant {
	return []kernelVariant{
		{"shani1", "shani", 1, hasSHANI, shaniScan1},
		{"shani2", "shani", 2, hasSHANI, shaniScan2},
		{"shani3", "shani", 3, hasSHANI, shaniScan3},
		{"shani4", "shani", 4, hasSHANI, shaniScan4},
		{"avx2", "avx2", 8, hasAVX2, avx2Scan},
		{"avx512", "avx512", 16, hasAVX512, avx512Scan},
	}
}

// TestKernelDataLayout pins the offsets the generated assembly uses.
func TestKernelDataLayout(t *testing.T) {
	var k kernelData
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"midABEF", unsafe.Offsetof(k.midABEF), 0},
		{"midCDGH", unsafe.Offsetof(k.midCDGH), 16},
		{"s2ABEF", unsafe.Offsetof(k.s2ABEF), 32},
		{"s2CDGH", unsafe.Offsetof(k.s2CDGH), 48},
		{"wk23", unsafe.Offsetof(k.wk23), 64},
		{"g0", unsafe.Offsetof(k.g0), 80},
		{"c5", unsafe.Offsetof(k.c5), 96},
		{"c7", unsafe.Offsetof(k.c7), 112},
		{"hi", unsafe.Offsetof(k.hi), 128},
		{"c4", unsafe.Offsetof(k.c4), 144},
		{"v4", unsafe.Offsetof(k.v4), 160},
		{"vmid", unsafe.Offsetof(k.vmid), 416},
		{"vj", unsafe.Offsetof(k.vj), 672},
	} {
		if c.got != c.want {
			t.Errorf("kernelData.%s at %d, assembly expects %d", c.name, c.got, c.want)
		}
	}
}

// TestKernelVariants runs every lane count of every kernel, including the
// ones Scan does not pick, against the reference.
func TestKernelVariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, v := range kernelVariants() {
		t.Run(v.name, func(t *testing.T) {
			if !v.ok {
				skipUnavailable(t, v.impl)
			}
			for trial := 0; trial < 40; trial++ {
				var header [80]byte
				for i := range header {
					header[i] = byte(rng.Uint32())
				}
				target := targetWithTop([]uint32{0xffffffff, 0x0fffffff, 0x00ffffff, 0}[trial%4])
				w := NewWork(&header, &target)
				first := rng.Uint32() >> uint(rng.IntN(32))
				last := first + uint32(rng.IntN(300))
				if last < first {
					last = ^uint32(0)
				}
				got := scanLanes(w, first, last, nil, v.lanes, v.fn)
				want := reference(&header, &target, first, last)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: header %x range %d..%d:\n got %v\nwant %v", v.name, header, first, last, got, want)
				}
			}
		})
	}
}

func BenchmarkKernel(b *testing.B) {
	var header [80]byte
	header[0] = 1
	var target [32]byte // no winners: measure the early-exit path
	w := NewWork(&header, &target)
	for _, v := range kernelVariants() {
		b.Run(fmt.Sprint(v.name), func(b *testing.B) {
			if !v.ok {
				skipUnavailable(b, v.impl)
			}
			const chunk = 1 << 16
			defer lockThread()()
			b.ReportAllocs()
			var nonce uint32
			cpu0 := threadCPU()
			for b.Loop() {
				scanLanes(w, nonce, nonce+chunk-1, nil, v.lanes, v.fn)
				nonce += chunk
			}
			reportRates(b, float64(b.N)*chunk, threadCPU()-cpu0)
		})
	}
}
