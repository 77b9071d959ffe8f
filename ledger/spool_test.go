package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashforge/hashforge/record"
)

func testBatch(n int, job string) batch {
	bt := batch{ID: newBatchID(time.Now())}
	for i := range n {
		s := record.Share{
			Time: time.Unix(1_700_000_000, int64(i)*1000).UTC(), Address: "bcrt1qaddr", Worker: "rig",
			JobID: job, Difficulty: 8, ActualDiff: 9.5, Height: 101, RemoteAddr: "127.0.0.1:4000", ExtraNonce1: "0a0b0c0d",
		}
		sanitizeShare(&s)
		bt.Shares = append(bt.Shares, s)
	}
	return bt
}

func readAll(t *testing.T, path string) ([]batch, bool, error) {
	t.Helper()
	var got []batch
	torn, err := readSegment(path, func(b batch) error {
		got = append(got, b)
		return nil
	})
	return got, torn, err
}

func TestBatchIDIsUUIDv7(t *testing.T) {
	id := newBatchID(time.UnixMilli(0x0123456789ab))
	s := id.String()
	if len(s) != 36 || s[:13] != "01234567-89ab" || s[14] != '7' || !(s[19] >= '8' && s[19] <= 'b') {
		t.Fatalf("batch id %s: not a UUIDv7 with that timestamp", s)
	}
	back, err := parseBatchID(s)
	if err != nil || back != id {
		t.Fatalf("parseBatchID(%s) = %v, %v", s, back, err)
	}
}

func TestSpoolRoundTrip(t *testing.T) {
	sp, err := openSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []batch{testBatch(3, "a"), testBatch(1, "b"), testBatch(5, "c")}
	for _, b := range want {
		if err := sp.append(b); err != nil {
			t.Fatal(err)
		}
	}
	sp.rotate()
	segs, err := sp.closedSegments()
	if err != nil || len(segs) != 1 {
		t.Fatalf("closedSegments = %v, %v; want one segment", segs, err)
	}
	got, torn, err := readAll(t, segs[0])
	if err != nil || torn {
		t.Fatalf("readSegment: torn %v, err %v", torn, err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || len(got[i].Shares) != len(want[i].Shares) {
			t.Fatalf("batch %d: got %v (%d shares), want %v (%d)", i, got[i].ID, len(got[i].Shares), want[i].ID, len(want[i].Shares))
		}
		for j := range want[i].Shares {
			g, w := got[i].Shares[j], want[i].Shares[j]
			if !g.Time.Equal(w.Time) {
				t.Fatalf("batch %d share %d: time %v, want %v", i, j, g.Time, w.Time)
			}
			g.Time = w.Time
			if g != w {
				t.Fatalf("batch %d share %d: %+v, want %+v", i, j, g, w)
			}
		}
	}

	// A new spool on the same dir continues the sequence, never reusing a
	// segment a previous process may have left torn.
	sp2, err := openSpool(sp.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp2.append(testBatch(1, "d")); err != nil {
		t.Fatal(err)
	}
	segs2, _ := sp2.segments()
	if len(segs2) != 2 || segs2[0] != segs[0] {
		t.Fatalf("segments after reopen = %v, want the old one then a new one", segs2)
	}
}

func TestReadSegmentTornTail(t *testing.T) {
	good1, _ := encodeRecord(testBatch(2, "a"))
	good2, _ := encodeRecord(testBatch(2, "b"))
	last, _ := encodeRecord(testBatch(2, "c"))
	badCRC := append([]byte(nil), last...)
	badCRC[len(badCRC)-2] ^= 0xff

	cases := map[string][]byte{
		"cut in header":   last[:7],
		"cut in payload":  last[:len(last)-10],
		"checksum at end": badCRC,
		"huge length":     append([]byte("HFS1\xff\xff\xff\x7f"), 0, 0, 0, 0, 1, 2),
	}
	for name, tail := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0000000000000001.spool")
			data := append(append(append([]byte(nil), good1...), good2...), tail...)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, torn, err := readAll(t, path)
			if err != nil || !torn || len(got) != 2 {
				t.Fatalf("got %d batches, torn %v, err %v; want 2, true, nil", len(got), torn, err)
			}
		})
	}
}

func TestReadSegmentCorruptionInTheMiddle(t *testing.T) {
	good, _ := encodeRecord(testBatch(2, "a"))
	bad, _ := encodeRecord(testBatch(2, "b"))
	bad[recordHeaderLen+3] ^= 0xff
	after, _ := encodeRecord(testBatch(2, "c"))
	path := filepath.Join(t.TempDir(), "0000000000000001.spool")
	data := append(append(append([]byte(nil), good...), bad...), after...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(t, path)
	if !errors.Is(err, errCorrupt) || len(got) != 1 {
		t.Fatalf("got %d batches, err %v; want 1 and errCorrupt", len(got), err)
	}
}

func TestSanitizeShare(t *testing.T) {
	s := record.Share{Address: "a\x00b", Worker: "w\xff", JobID: "j", Difficulty: nan(), ActualDiff: -1}
	sanitizeShare(&s)
	if s.Address != "ab" || s.Worker != "w\uFFFD" || s.Difficulty != 0 || s.ActualDiff != 0 || s.Time.IsZero() {
		t.Fatalf("sanitized share = %+v", s)
	}
	long := record.Share{Worker: strings.Repeat("é", maxTextLen)} // 2 bytes a rune
	sanitizeShare(&long)
	if len(long.Worker) > maxTextLen || !utf8.ValidString(long.Worker) || len(long.Worker) < maxTextLen-1 {
		t.Fatalf("long worker name cut to %d bytes (valid UTF-8: %v)", len(long.Worker), utf8.ValidString(long.Worker))
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// FuzzReadSegment: whatever a crash or a disk leaves in a spool file,
// replay must not panic, and the records it does return must have passed
// their checksum.
func FuzzReadSegment(f *testing.F) {
	rec, _ := encodeRecord(testBatch(2, "f"))
	f.Add(rec)
	f.Add(append(append([]byte(nil), rec...), rec[:20]...))
	f.Add([]byte("HFS1\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "0000000000000001.spool")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = readSegment(path, func(b batch) error {
			if len(b.Shares) > len(data) {
				t.Fatalf("decoded %d shares from %d bytes", len(b.Shares), len(data))
			}
			return nil
		})
	})
}
