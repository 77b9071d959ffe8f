package pow

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// Every SHA-256 path this machine can run (sha256impl_*_test.go lists
// them) must agree with crypto/sha256 bit for bit.

func refSHA256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// testMessages returns messages of every length 0..300 in three fillings:
// random, all zeros and all ones (carries and padding-looking bytes).
func testMessages() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs [][]byte
	for n := 0; n <= 300; n++ {
		r := make([]byte, n)
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		msgs = append(msgs, r, make([]byte, n), bytes.Repeat([]byte{0xff}, n))
	}
	return msgs
}

func TestSHA256dAgrees(t *testing.T) {
	msgs := testMessages()
	forEachImpl(t, func(t *testing.T) {
		for _, m := range msgs {
			if got, want := SHA256d(m), refSHA256d(m); got != want {
				t.Fatalf("SHA256d of %d bytes %x: %x, want %x", len(m), m, got, want)
			}
			var zero SHA256Midstate
			if got, want := zero.sum256(m), sha256.Sum256(m); got != want {
				t.Fatalf("SHA-256 of %d bytes %x: %x, want %x", len(m), m, got, want)
			}
		}
	})
}

// TestMidstateEverySplit hashes every message from a midstate taken at
// every split point: the state covers the prefix's whole blocks and the
// caller passes on the rest.
func TestMidstateEverySplit(t *testing.T) {
	msgs := testMessages()
	forEachImpl(t, func(t *testing.T) {
		for _, m := range msgs {
			want, wantSum := refSHA256d(m), sha256.Sum256(m)
			for k := 0; k <= len(m); k++ {
				mid := NewSHA256Midstate(m[:k])
				if mid.Len() != k&^63 {
					t.Fatalf("midstate of a %d-byte prefix covers %d bytes", k, mid.Len())
				}
				if got := mid.SHA256d(m[mid.Len():]); got != want {
					t.Fatalf("%d bytes split at %d: %x, want %x", len(m), k, got, want)
				}
				if got := mid.sum256(m[mid.Len():]); got != wantSum {
					t.Fatalf("%d bytes split at %d: single SHA-256 %x, want %x", len(m), k, got, wantSum)
				}
			}
		}
	})
}

func TestSHA256d64Agrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	inputs := [][64]byte{{}, [64]byte(bytes.Repeat([]byte{0xff}, 64)), [64]byte(bytes.Repeat([]byte{0x80}, 64))}
	for range 2000 {
		var b [64]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		inputs = append(inputs, b)
	}
	forEachImpl(t, func(t *testing.T) {
		for _, in := range inputs {
			if got, want := SHA256d64(&in), refSHA256d(in[:]); got != want {
				t.Fatalf("SHA256d64(%x) = %x, want %x", in, got, want)
			}
		}
	})
}

// TestSHA256NoAllocs covers what the share check calls per share.
func TestSHA256NoAllocs(t *testing.T) {
	forEachImpl(t, func(t *testing.T) {
		var pair [64]byte
		cb := make([]byte, 230)
		mid := NewSHA256Midstate(cb[:100])
		n := testing.AllocsPerRun(100, func() {
			h := SHA256d64(&pair)
			copy(pair[:], h[:])
			_ = mid.SHA256d(cb[mid.Len():])
			_ = SHA256d(cb)
		})
		if n != 0 {
			t.Fatalf("%v allocations", n)
		}
	})
}

// FuzzSHA256dAgrees compares every path with crypto/sha256 on arbitrary
// messages, split for the midstate at an arbitrary point.
func FuzzSHA256dAgrees(f *testing.F) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 80, 119, 120, 128, 200} {
		f.Add(bytes.Repeat([]byte{byte(n)}, n), uint(n/2))
	}
	f.Fuzz(func(t *testing.T, m []byte, split uint) {
		// Four blocks and a padding block take every path of the block
		// loop. Longer messages only move its hit counts into new coverage
		// buckets, each then minimized at ~n²/2 hashes of n bytes: without
		// the bound the worker sat in the minimizer for the whole run.
		if len(m) > 256 {
			return
		}
		want := refSHA256d(m)
		k := int(split % uint(len(m)+1))
		var pair [64]byte
		copy(pair[:], m)
		wantPair := refSHA256d(pair[:])
		eachImpl(func(impl string) {
			if got := SHA256d(m); got != want {
				t.Fatalf("%s: SHA256d(%x) = %x, want %x", impl, m, got, want)
			}
			mid := NewSHA256Midstate(m[:k])
			if got := mid.SHA256d(m[mid.Len():]); got != want {
				t.Fatalf("%s: split at %d: %x, want %x", impl, k, got, want)
			}
			if got := SHA256d64(&pair); got != wantPair {
				t.Fatalf("%s: SHA256d64(%x) = %x, want %x", impl, pair, got, wantPair)
			}
		})
	})
}

func BenchmarkSHA256d64(b *testing.B) {
	forEachImplBench(b, func(b *testing.B) {
		var pair [64]byte
		b.ReportAllocs()
		for b.Loop() {
			pair[0]++
			_ = SHA256d64(&pair)
		}
	})
	b.Run("crypto-sha256", func(b *testing.B) {
		var pair [64]byte
		b.ReportAllocs()
		for b.Loop() {
			pair[0]++
			_ = refSHA256d(pair[:])
		}
	})
}

// BenchmarkMidstateCoinbase hashes a 230-byte coinbase from the midstate
// after its first 64-byte block, as the share check does.
func BenchmarkMidstateCoinbase(b *testing.B) {
	cb := make([]byte, 230)
	forEachImplBench(b, func(b *testing.B) {
		mid := NewSHA256Midstate(cb[:100])
		b.ReportAllocs()
		for b.Loop() {
			cb[200]++
			_ = mid.SHA256d(cb[mid.Len():])
		}
	})
}
