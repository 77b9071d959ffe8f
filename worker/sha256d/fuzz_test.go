package sha256d

import (
	"encoding/binary"
	"slices"
	"testing"
)

// FuzzScan checks every implementation against generic on
// arbitrary headers, targets and ranges (spans kept short so each input is
// fast; range edges come from first).
func FuzzScan(f *testing.F) {
	f.Add(make([]byte, 80), []byte{0xff, 0xff, 0xff, 0xff}, uint32(0), uint16(64))
	f.Add(make([]byte, 80), []byte{0, 0, 0, 0x0f}, uint32(0xffffffc0), uint16(63))
	f.Add([]byte("hashforge"), []byte{}, uint32(1234), uint16(7))
	f.Fuzz(func(t *testing.T, hb, tb []byte, first uint32, span uint16) {
		var header [80]byte
		copy(header[:], hb)
		// Fuzzed target bytes fill the top of the target; the rest is all
		// ones so that targets near the early-exit boundary are common.
		var target [32]byte
		for i := range target {
			target[i] = 0xff
		}
		if len(tb) >= 4 {
			binary.LittleEndian.PutUint32(target[28:], binary.LittleEndian.Uint32(tb))
			copy(target[:28], tb[4:])
		}
		span %= 512
		last := first + uint32(span)
		if last < first {
			last = ^uint32(0)
		}
		w := NewWork(&header, &target)
		want := generic{}.Scan(w, first, last, nil)
		forEachImplementation(t, func(t *testing.T, impl Implementation) {
			if got := impl.New().Scan(w, first, last, nil); !slices.Equal(got, want) {
				t.Fatalf("range %#x..%#x got %v, generic %v", first, last, got, want)
			}
		})
	})
}
