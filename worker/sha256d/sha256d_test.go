package sha256d

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/cpuid/v2"

	"github.com/hashforge/hashforge/pow"
)

// reference scans with crypto/sha256 only.
func reference(header *[80]byte, target *[32]byte, first, last uint32) []uint32 {
	var out []uint32
	if first > last {
		return out
	}
	h := *header
	for n := first; ; n++ {
		binary.LittleEndian.PutUint32(h[76:], n)
		sum := pow.SHA256d(h[:])
		if Meets(&sum, target) {
			out = append(out, n)
		}
		if n == last {
			return out
		}
	}
}

// forEachImplementation runs f in one subtest per registered
// implementation, so one that does not run shows as a skip saying why.
func forEachImplementation(t *testing.T, f func(t *testing.T, impl Implementation)) {
	t.Helper()
	for _, impl := range Implementations() {
		t.Run(impl.Name, func(t *testing.T) {
			if !impl.Available {
				skipUnavailable(t, impl.Name)
			}
			f(t, impl)
		})
	}
}

// skipUnavailable skips a test of a kernel this CPU cannot run, naming the
// CPU features it lacks, or that this build has no such kernel (-tags
// purego, or not amd64). A kernel that is unavailable although the CPU
// has every feature it needs has vanished: that fails, CI or not.
func skipUnavailable(t testing.TB, name string) {
	t.Helper()
	if !kernelsBuilt {
		t.Skipf("this build has no %s kernel (built with -tags purego, or not for amd64)", name)
	}
	var needs []cpuid.FeatureID
	for _, r := range registry {
		if r.Name == name {
			needs = r.needs
		}
	}
	var lacks []string
	for _, f := range needs {
		if !cpuid.CPU.Supports(f) {
			lacks = append(lacks, f.String())
		}
	}
	if len(lacks) == 0 {
		t.Fatalf("%s is unavailable although this CPU has all it needs (%v)", name, needs)
	}
	t.Skipf("this CPU lacks %s", strings.Join(lacks, ", "))
}

// TestImplementations lists every implementation: each runs here, or skips
// with what the CPU lacks.
func TestImplementations(t *testing.T) {
	forEachImplementation(t, func(t *testing.T, impl Implementation) {
		if impl.New == nil || impl.New().Name() != impl.Name {
			t.Fatalf("%s: New returns a scanner named %q", impl.Name, impl.New().Name())
		}
	})
}

// targetWithTop returns a target whose top 32 bits are top and whose lower
// bits are all ones, so the kernels' early exit is exercised at its boundary.
func targetWithTop(top uint32) [32]byte {
	var t [32]byte
	for i := range t {
		t[i] = 0xff
	}
	binary.LittleEndian.PutUint32(t[28:], top)
	return t
}

func TestMeets(t *testing.T) {
	var h, tg [32]byte
	if !Meets(&h, &tg) {
		t.Error("0 ≤ 0 should hold")
	}
	h[0] = 1
	if Meets(&h, &tg) {
		t.Error("1 ≤ 0 should not hold")
	}
	tg[31] = 1
	if !Meets(&h, &tg) {
		t.Error("1 ≤ 2^248 should hold")
	}
	h[31] = 1
	if Meets(&h, &tg) {
		t.Error("2^248+1 ≤ 2^248 should not hold")
	}
}

func TestRegistry(t *testing.T) {
	impls := Implementations()
	if len(impls) == 0 || impls[len(impls)-1].Name != "generic" {
		t.Fatalf("generic must be registered last (worst): %+v", impls)
	}
	if d := Default(); !d.Available {
		t.Fatalf("default %q unavailable", d.Name)
	}
	if _, err := Lookup("no-such-impl"); err == nil || !strings.Contains(err.Error(), "generic") {
		t.Fatalf("Lookup of an unknown name: %v", err)
	}
	for _, impl := range impls {
		_, err := Lookup(impl.Name)
		if impl.Available != (err == nil) {
			t.Errorf("%s: available=%v but Lookup err=%v", impl.Name, impl.Available, err)
		}
	}
	t.Setenv(EnvImpl, "generic")
	if d := Default(); d.Name != "generic" {
		t.Errorf("%s=generic chose %q", EnvImpl, d.Name)
	}
	t.Setenv(EnvImpl, "bogus")
	if _, err := Configured(); err == nil {
		t.Error("Configured accepted a bogus name")
	}
	if d := Default(); !d.Available {
		t.Error("Default with a bogus env name must fall back to an available one")
	}
}

func TestRandom(t *testing.T) {
	targets := map[string][32]byte{
		"all":     targetWithTop(0xffffffff),
		"none":    {},
		"1/16":    targetWithTop(0x0fffffff),
		"1/256":   targetWithTop(0x00ffffff),
		"top0":    targetWithTop(0), // every kernel candidate must be rejected by the confirm step or accepted exactly
		"near":    targetWithTop(0x00ffffff - 1),
		"1/65536": targetWithTop(0x0000ffff),
	}
	forEachImplementation(t, func(t *testing.T, impl Implementation) {
		rng := rand.New(rand.NewPCG(1, 2)) // the same cases for every kernel
		s := impl.New()
		for _, name := range slices.Sorted(maps.Keys(targets)) {
			target := targets[name]
			for trial := 0; trial < 6; trial++ {
				var header [80]byte
				for i := range header {
					header[i] = byte(rng.Uint32())
				}
				first := rng.Uint32()
				n := uint32(1 + rng.IntN(700))
				if first > ^uint32(0)-n {
					first = ^uint32(0) - n
				}
				last := first + n
				w := NewWork(&header, &target)
				got := s.Scan(w, first, last, nil)
				want := reference(&header, &target, first, last)
				if !slices.Equal(got, want) {
					t.Fatalf("target %s header %x range %d..%d:\n got %v\nwant %v",
						name, header, first, last, got, want)
				}
			}
		}
	})
}

func TestEdges(t *testing.T) {
	var header [80]byte
	for i := range header {
		header[i] = byte(i * 7)
	}
	target := targetWithTop(0x3fffffff)
	w := NewWork(&header, &target)
	ranges := [][2]uint32{
		{0, 0}, {0, 1}, {0, 2}, {1, 3}, {0, 15}, {0, 16}, {0, 17}, {5, 36}, {7, 7 + 63}, {3, 200},
		{0xffffffff, 0xffffffff}, {0xfffffffe, 0xffffffff}, {0xffffffff - 16, 0xffffffff},
		{0xffffffff - 33, 0xffffffff}, {0xffffffff - 300, 0xffffffff - 1}, {10, 9},
	}
	forEachImplementation(t, func(t *testing.T, impl Implementation) {
		s := impl.New()
		for _, r := range ranges {
			got := s.Scan(w, r[0], r[1], nil)
			want := reference(&header, &target, r[0], r[1])
			if !slices.Equal(got, want) {
				t.Errorf("range %#x..%#x: got %v want %v", r[0], r[1], got, want)
			}
		}
		// found is appended to, never overwritten.
		got := s.Scan(w, 0, 63, []uint32{42})
		if len(got) == 0 || got[0] != 42 {
			t.Errorf("dropped the caller's found slice: %v", got)
		}
	})
}

type vector struct {
	Name      string `json:"name"`
	HeaderHex string `json:"header_hex"`
	Nonce     uint32 `json:"nonce_le_u32"`
	SHA256d   string `json:"sha256d_hex"`
}

func loadVectors(t testing.TB) []vector {
	b, err := os.ReadFile("../../testdata/headers.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestVectors(t *testing.T) {
	diff1 := [32]byte{}
	binary.LittleEndian.PutUint32(diff1[24:], 0xffff0000) // 0x00000000ffff0000…0 as a little-endian integer
	vs := loadVectors(t)
	headers := make([][80]byte, len(vs))
	for i, v := range vs {
		raw, err := hex.DecodeString(v.HeaderHex)
		if err != nil || len(raw) != 80 {
			t.Fatalf("%s: bad header hex", v.Name)
		}
		headers[i] = [80]byte(raw)
		sum := pow.SHA256d(headers[i][:])
		if hex.EncodeToString(sum[:]) != v.SHA256d {
			t.Fatalf("%s: Sum = %x, want %s", v.Name, sum, v.SHA256d)
		}
		if !Meets(&sum, &diff1) {
			t.Fatalf("%s: block hash does not meet difficulty 1", v.Name)
		}
	}
	forEachImplementation(t, func(t *testing.T, impl Implementation) {
		s := impl.New()
		for i, v := range vs {
			w := NewWork(&headers[i], &diff1)
			for _, r := range [][2]uint32{{v.Nonce - 1000, v.Nonce + 1000}, {v.Nonce, v.Nonce}, {v.Nonce - 3, v.Nonce}, {v.Nonce, v.Nonce + 5}} {
				got := s.Scan(w, r[0], r[1], nil)
				if !slices.Contains(got, v.Nonce) {
					t.Errorf("%s: nonce %d not found in %d..%d (got %v)", v.Name, v.Nonce, r[0], r[1], got)
				}
				if want := reference(&headers[i], &diff1, r[0], r[1]); !slices.Equal(got, want) {
					t.Errorf("%s: got %v want %v", v.Name, got, want)
				}
			}
		}
	})
}

// TestGenericH7 pins the truncated second hash against the full one.
func TestGenericH7(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		var header [80]byte
		for j := range header {
			header[j] = byte(rng.Uint32())
		}
		w := NewWork(&header, &[32]byte{})
		n := rng.Uint32()
		binary.LittleEndian.PutUint32(header[76:], n)
		sum := pow.SHA256d(header[:])
		if got, want := genericH7(&w.k, n), binary.BigEndian.Uint32(sum[28:]); got != want {
			t.Fatalf("H7 %08x want %08x", got, want)
		}
	}
}

// TestTopWordBoundary puts the target's top word exactly at, and one below,
// a nonce's top hash word, with the lower target bits all ones or all
// zeros: the kernels' unsigned ≤ early exit must pass the nonce in the
// first case and the full comparison decide it.
func TestTopWordBoundary(t *testing.T) {
	forEachImplementation(t, func(t *testing.T, impl Implementation) {
		testTopWordBoundary(t, impl)
	})
}

func testTopWordBoundary(t *testing.T, impl Implementation) {
	rng := rand.New(rand.NewPCG(7, 8)) // the same cases for every kernel
	for trial := 0; trial < 20; trial++ {
		var header [80]byte
		for i := range header {
			header[i] = byte(rng.Uint32())
		}
		n := rng.Uint32()
		h := header
		binary.LittleEndian.PutUint32(h[76:], n)
		sum := pow.SHA256d(h[:])
		top := binary.LittleEndian.Uint32(sum[28:])
		for _, tt := range []struct {
			top  uint32
			fill byte
		}{{top, 0xff}, {top, 0}, {top - 1, 0xff}, {top + 1, 0}} {
			var target [32]byte
			for i := range target {
				target[i] = tt.fill
			}
			binary.LittleEndian.PutUint32(target[28:], tt.top)
			w := NewWork(&header, &target)
			first, last := n-n%16, n-n%16+31
			if last < first {
				last = ^uint32(0)
			}
			want := reference(&header, &target, first, last)
			if got := impl.New().Scan(w, first, last, nil); !slices.Equal(got, want) {
				t.Fatalf("top %#x fill %#x: got %v want %v", tt.top, tt.fill, got, want)
			}
		}
	}
}
