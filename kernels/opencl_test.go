//go:build opencl

package kernels

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// testDevice opens opencl:0 (PoCL on the build machines). Open caches the
// built program, so the slow LLVM compile happens once per test binary.
func testDevice(t testing.TB) *Device {
	t.Helper()
	devtest.OpenCL(t)
	d, err := Open(0)
	if err != nil {
		t.Fatalf("open opencl:0: %v", err)
	}
	return d
}

func testScanner(t testing.TB, d *Device, slots uint32) *Scanner {
	t.Helper()
	s, err := d.newScanner(slots)
	if err != nil {
		t.Fatalf("new scanner: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// cpuScan is the reference: the portable CPU kernel, itself tested against
// crypto/sha256 in worker/sha256d.
func cpuScan(t testing.TB, w *sha256d.Work, first, last uint32) []uint32 {
	t.Helper()
	im, err := sha256d.Lookup("generic")
	if err != nil {
		t.Fatal(err)
	}
	return im.New().Scan(w, first, last, nil)
}

func gpuScan(t testing.TB, s *Scanner, w *sha256d.Work, first, last uint32) []uint32 {
	t.Helper()
	found, hashed, err := s.Scan(w, first, last, nil, nil)
	if err != nil {
		t.Fatalf("scan %#x..%#x: %v", first, last, err)
	}
	if want := uint64(last) - uint64(first) + 1; hashed != want {
		t.Fatalf("scan %#x..%#x hashed %d nonces, want %d", first, last, hashed, want)
	}
	if s.Faults() != 0 {
		t.Fatalf("kernel reported %d candidates the CPU refutes", s.Faults())
	}
	return found
}

func sameNonces(t testing.TB, what string, got, want []uint32) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: OpenCL found %d nonces %x, CPU %d %x", what, len(got), head(got), len(want), head(want))
	}
}

func head(s []uint32) []uint32 { return s[:min(len(s), 8)] }

func TestDevicesListed(t *testing.T) {
	devtest.OpenCL(t)
	devs, err := Devices()
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(devs) == 0 {
		t.Fatal("no OpenCL device listed")
	}
	for i, d := range devs {
		if d.Index != i || d.Name == "" || d.Platform == "" {
			t.Errorf("device %d: incomplete description %+v", i, d)
		}
	}
	if _, err := Open(len(devs)); err == nil {
		t.Errorf("Open(%d) succeeded with %d devices", len(devs), len(devs))
	}
	d := testDevice(t)
	t.Logf("opencl:0 %s (%s): %d nonces per work-item, work-group %d, %d nonces per launch, %.2f MH/s at tuning",
		d.info.Name, d.info.Platform, d.vec, d.local, d.batch, d.rate/1e6)
	if group := uint64(d.local * d.vec); d.batch == 0 || d.batch%group != 0 {
		t.Errorf("tuned batch %d is not a positive multiple of a work-group's %d nonces", d.batch, group)
	}
}

// randomTarget draws a target whose top word has about topBits significant
// bits, so the candidate rate spans "every nonce" to "never".
func randomTarget(rng *rand.Rand, topBits int) [32]byte {
	var t [32]byte
	for i := range t {
		t[i] = byte(rng.Uint32())
	}
	hi := uint32(0)
	if topBits > 0 {
		hi = rng.Uint32() >> (32 - topBits)
	}
	binary.LittleEndian.PutUint32(t[28:], hi)
	return t
}

func TestScanMatchesCPURandom(t *testing.T) {
	s := testScanner(t, testDevice(t), defaultSlots)
	rng := rand.New(rand.NewPCG(7, 11))
	// Top-word widths: 0 is every real share target (hi = 0); 32 makes
	// nearly every nonce a candidate and exercises the launch cap.
	for i, bits := range []int{0, 4, 10, 14, 16, 18, 20, 24, 28, 32, 18, 20} {
		var hdr [80]byte
		for j := range hdr {
			hdr[j] = byte(rng.Uint32())
		}
		target := randomTarget(rng, bits)
		w := sha256d.NewWork(&hdr, &target)
		n := uint32(1 << 15)
		first := rng.Uint32()
		if i%4 == 3 {
			first = ^uint32(0) - n + 1 // the top of the nonce space
		}
		last := first + n - 1
		want := cpuScan(t, w, first, last)
		sameNonces(t, "random header", gpuScan(t, s, w, first, last), want)
	}
}

// TestScanLaunchBoundaries runs many small launches, none a multiple of
// the work-group size, so the in-kernel range check and the two-deep
// launch ring are both exercised.
func TestScanLaunchBoundaries(t *testing.T) {
	s := testScanner(t, testDevice(t), defaultSlots)
	rng := rand.New(rand.NewPCG(3, 5))
	var hdr [80]byte
	for j := range hdr {
		hdr[j] = byte(rng.Uint32())
	}
	target := randomTarget(rng, 22) // ~1 candidate in 1000
	w := sha256d.NewWork(&hdr, &target)
	for _, batch := range []uint64{1, 7, 1000, 4097} {
		s.batch = batch
		first := rng.Uint32() >> 1
		last := first + 20000
		if batch == 1 {
			last = first + 300
		}
		sameNonces(t, "small launches", gpuScan(t, s, w, first, last), cpuScan(t, w, first, last))
	}
}

// TestScanTargetBoundary pins hash == target (a share) and hash ==
// target+1 (not one) through the kernel's candidate test and the host's
// confirmation.
func TestScanTargetBoundary(t *testing.T) {
	s := testScanner(t, testDevice(t), defaultSlots)
	rng := rand.New(rand.NewPCG(9, 9))
	for range 4 {
		var hdr [80]byte
		for j := range hdr {
			hdr[j] = byte(rng.Uint32())
		}
		nonce := rng.Uint32()
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		target := pow.SHA256d(hdr[:])
		first := nonce - min(nonce, 500)
		last := first + 1000
		w := sha256d.NewWork(&hdr, &target)
		got := gpuScan(t, s, w, first, last)
		if !slices.Contains(got, nonce) {
			t.Fatalf("nonce %#x whose hash equals the target not found (found %x)", nonce, head(got))
		}
		sameNonces(t, "hash == target", got, cpuScan(t, w, first, last))

		// One below the hash: that nonce no longer meets it.
		below := target
		for i := range below { // little-endian decrement
			below[i]--
			if below[i] != 0xff {
				break
			}
		}
		w = sha256d.NewWork(&hdr, &below)
		got = gpuScan(t, s, w, first, last)
		if slices.Contains(got, nonce) {
			t.Fatalf("nonce %#x found with a target one below its hash", nonce)
		}
		sameNonces(t, "hash == target+1", got, cpuScan(t, w, first, last))
	}
}

// TestScanRealHeaders mines a window around each real block's nonce at
// the block's own target: the block's nonce must come out, and nothing the
// CPU would not find.
func TestScanRealHeaders(t *testing.T) {
	s := testScanner(t, testDevice(t), defaultSlots)
	raw, err := os.ReadFile("../testdata/headers.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []struct {
		Name      string `json:"name"`
		HeaderHex string `json:"header_hex"`
		Nonce     uint32 `json:"nonce_le_u32"`
	}
	if err := json.Unmarshal(raw, &vecs); err != nil {
		t.Fatal(err)
	}
	if len(vecs) == 0 {
		t.Fatal("no header vectors")
	}
	for _, v := range vecs {
		b, err := hex.DecodeString(v.HeaderHex)
		if err != nil || len(b) != 80 {
			t.Fatalf("%s: bad header hex (%v)", v.Name, err)
		}
		hdr := [80]byte(b)
		nt, err := pow.CompactToTarget(binary.LittleEndian.Uint32(hdr[72:]))
		if err != nil {
			t.Fatal(err)
		}
		target := nt.Hash()
		w := sha256d.NewWork(&hdr, &target)
		first := v.Nonce - min(v.Nonce, 1<<15)
		last := first + 1<<16
		got := gpuScan(t, s, w, first, last)
		if !slices.Contains(got, v.Nonce) {
			t.Fatalf("%s: block nonce %d not found (found %v)", v.Name, v.Nonce, got)
		}
		sameNonces(t, v.Name, got, cpuScan(t, w, first, last))
	}
}

// TestScanOverflowRescansOnCPU fills the candidate buffer far past its
// capacity: the host must notice and recover every winner on the CPU.
func TestScanOverflowRescansOnCPU(t *testing.T) {
	s := testScanner(t, testDevice(t), 4)
	var hdr [80]byte
	for i := range hdr {
		hdr[i] = byte(i)
	}
	var all [32]byte
	for i := range all {
		all[i] = 0xff // every hash meets it
	}
	s.batch = 1 << 30 // batchLimit still applies: 4 slots cap a launch at 1 nonce
	w := sha256d.NewWork(&hdr, &all)
	got := gpuScan(t, s, w, 100, 163)
	if len(got) != 64 {
		t.Fatalf("every nonce meets the target: want 64, got %d", len(got))
	}
	// Force launches far above the cap to take the rescan path.
	found, hashed, err := s.scanBatches(w, 1000, 1000+511, nil, nil, 256)
	if err != nil || hashed != 512 {
		t.Fatalf("overflowing scan: hashed %d, err %v", hashed, err)
	}
	want := make([]uint32, 512)
	for i := range want {
		want[i] = 1000 + uint32(i)
	}
	sameNonces(t, "overflowing launches", found, want)
}

func TestScanStops(t *testing.T) {
	d := testDevice(t)
	s := testScanner(t, d, defaultSlots)
	s.batch = 4096
	var hdr [80]byte
	var target [32]byte
	w := sha256d.NewWork(&hdr, &target)
	calls := 0
	_, hashed, err := s.Scan(w, 0, 1<<24, nil, func() bool { calls++; return calls > 3 })
	if err != nil {
		t.Fatal(err)
	}
	if hashed != 3*4096 {
		t.Fatalf("stop after three launches: hashed %d, want %d", hashed, 3*4096)
	}
	// The scanner stays usable after an early stop.
	sameNonces(t, "after stop", gpuScan(t, s, w, 0, 10000), cpuScan(t, w, 0, 10000))
}

func BenchmarkScan(b *testing.B) {
	d := testDevice(b)
	s := testScanner(b, d, defaultSlots)
	var hdr [80]byte
	var target [32]byte
	w := sha256d.NewWork(&hdr, &target)
	n := uint32(d.batch * 4)
	b.SetBytes(0)
	b.ResetTimer()
	var nonce uint32
	for b.Loop() {
		if _, _, err := s.Scan(w, nonce, nonce+n-1, nil, nil); err != nil {
			b.Fatal(err)
		}
		nonce += n
	}
	b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds()/1e6, "MH/s")
}
