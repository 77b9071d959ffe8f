package ledger

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzWALReadSegment: whatever a crash or a disk leaves in a segment of
// the write-ahead log, the writer's reader must not panic, must stop at a
// record boundary within the segment, must return shares only from whole,
// checksummed records, and must read the same from the segment cut after
// the last record it returned (records do not depend on what follows).
func FuzzWALReadSegment(f *testing.F) {
	r1 := encodeSharesRecord(testBatch(2, "a").Shares)
	r2 := encodeSharesRecord(testBatch(1, "b").Shares)
	f.Add(append(append([]byte(nil), r1...), r2...), 100)
	f.Add(append(append([]byte(nil), r1...), r2[:20]...), 100)
	f.Add(append(append([]byte(nil), r1...), make([]byte, 40)...), 1)
	bad := append([]byte(nil), r2...)
	bad[recordHeaderLen+3] ^= 0x40
	f.Add(append(append(bad, r1...), r1...), 3)
	f.Add([]byte("HFS2\xff\xff\xff\x7f\x00\x00\x00\x00\x01"), 1)
	f.Add([]byte("HFS2\x00\x00\x00\x00\x00\x00\x00\x00"), 0)

	// One file, rewritten in place for each input.
	file, err := os.OpenFile(filepath.Join(fuzzDir(f), "0000000000000001.spool"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	read := func(t *testing.T, data []byte, maxShares int) (int, walPos, bool, error) {
		if err := file.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		r := &walReader{f: file, seg: 1}
		shares, next, atEnd, err := r.readSegment(walPos{1, 0}, int64(len(data)), maxShares, nil)
		return len(shares), next, atEnd, err
	}
	f.Fuzz(func(t *testing.T, data []byte, maxShares int) {
		// A few records reach every path; Go's minimizer spends ~n²/2
		// execs on each n-byte input with new coverage.
		if len(data) > maxFuzzSpool {
			return
		}
		maxShares = 1 + abs(maxShares%64)
		n, next, atEnd, err := read(t, data, maxShares)
		if next.seg != 1 || next.off < 0 || next.off > int64(len(data)) || int64(n)*36 > next.off {
			t.Fatalf("%d shares, next %v, of %d bytes", n, next, len(data))
		}
		if err == nil && !atEnd && n < maxShares {
			t.Fatalf("stopped at %v with %d of %d shares, not at the end", next, n, maxShares)
		}
		if n == 0 {
			return
		}
		cut := data[:next.off]
		n2, next2, atEnd2, err2 := read(t, cut, maxShares)
		if n2 != n || next2 != next || err2 != nil || (!atEnd2 && n2 < maxShares) {
			t.Fatalf("cut after its last record at %v: %d shares, next %v, at end %v, %v; first read %d shares",
				next, n2, next2, atEnd2, err2, n)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
