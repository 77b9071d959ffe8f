package ledger

import (
	"bytes"
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
	defer sp.close()
	groups := [][]record.Share{testBatch(3, "a").Shares, testBatch(1, "b").Shares, testBatch(5, "c").Shares}
	groups[1][0].IsBlock, groups[1][0].BlockHash = true, "00ff"
	groups[2][4].NetworkDifficulty = 1.5e12
	var want []record.Share
	var end walPos
	for _, g := range groups {
		if end, err = sp.appendShares(g); err != nil {
			t.Fatal(err)
		}
		want = append(want, g...)
	}
	rd := &walReader{sp: sp}
	defer rd.close()
	// A read stops after the record that reaches maxShares: records are
	// never split.
	got, next, err := rd.read(walPos{}, 2, nil)
	if err != nil || len(got) != 3 || next.off == 0 {
		t.Fatalf("first read: %d shares, next %v, err %v; want the first record's 3", len(got), next, err)
	}
	got, next, err = rd.read(next, 100, got)
	if err != nil || next != end {
		t.Fatalf("second read: next %v, err %v; want %v", next, err, end)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d shares, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) {
			t.Fatalf("share %d: time %v, want %v", i, g.Time, w.Time)
		}
		g.Time = w.Time
		if g != w {
			t.Fatalf("share %d: %+v, want %+v", i, g, w)
		}
	}

	// A second process cannot take the same spool dir.
	if _, err := openSpool(sp.dir); err == nil {
		t.Fatal("a second openSpool of a locked dir succeeded")
	}
	// A new spool on the same dir (after this one closed) continues the
	// sequence, never appending to a segment a previous process may have
	// left torn, and keeps the spool's id.
	sp.close()
	sp.lock = nil
	sp2, err := openSpool(sp.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.close()
	if sp2.id != sp.id {
		t.Fatalf("spool id changed across opens: %s, %s", sp.id, sp2.id)
	}
	end2, err := sp2.appendShares(testBatch(1, "d").Shares)
	if err != nil {
		t.Fatal(err)
	}
	if end2.seg <= end.seg {
		t.Fatalf("reopened spool appended to segment %d, want after %d", end2.seg, end.seg)
	}
	rd2 := &walReader{sp: sp2}
	defer rd2.close()
	got, next, err = rd2.read(end, 100, nil)
	if err != nil || len(got) != 1 || got[0].JobID != "d" || next != end2 {
		t.Fatalf("read across segments: %d shares, next %v (want %v), err %v", len(got), next, end2, err)
	}
}

// TestWALTornTailAndDamage: a torn last record is the end of the log; a
// damaged record with whole records after it is an error.
func TestWALTornTailAndDamage(t *testing.T) {
	dir := t.TempDir()
	r1 := encodeSharesRecord(testBatch(2, "a").Shares)
	r2 := encodeSharesRecord(testBatch(3, "b").Shares)
	path := filepath.Join(dir, "0000000000000001"+segmentSuffix)
	if err := os.WriteFile(path, append(append([]byte(nil), r1...), r2[:len(r2)-3]...), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	rd := &walReader{sp: sp}
	defer rd.close()
	got, next, err := rd.read(walPos{1, 0}, 100, nil)
	if err != nil || len(got) != 2 || next.off != int64(len(r1)) {
		t.Fatalf("torn tail: %d shares, next %v, err %v", len(got), next, err)
	}

	bad := append([]byte(nil), r2...)
	bad[recordHeaderLen+3] ^= 0x40
	path2 := filepath.Join(dir, "0000000000000002"+segmentSuffix)
	if err := os.WriteFile(path2, append(append(bad, r1...), r1...), 0o600); err != nil {
		t.Fatal(err)
	}
	got, next, err = rd.read(walPos{2, 0}, 100, nil)
	if !errors.Is(err, errSegmentDamaged) || len(got) != 0 || next != (walPos{2, 0}) {
		t.Fatalf("damage: %d shares, next %v, err %v; want errSegmentDamaged at 2:0", len(got), next, err)
	}
}

// maxFuzzSpool bounds the spool fuzzers' inputs: room for a few records of
// a few shares each.
const maxFuzzSpool = 512

// FuzzDecodeSharesPayload: whatever a disk returns, decoding never panics
// nor makes up more shares than bytes; what encodes decodes back.
func FuzzDecodeSharesPayload(f *testing.F) {
	rec := encodeSharesRecord(testBatch(2, "f").Shares)
	f.Add(rec[recordHeaderLen:])
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		// A few shares reach every path of the decoder; Go's minimizer
		// spends ~n²/2 execs on each n-byte input with new coverage, and
		// longer payloads held the worker there for most of a run.
		if len(data) > maxFuzzSpool {
			return
		}
		shares, err := decodeSharesPayload(nil, data)
		if len(shares)*36 > len(data) {
			t.Fatalf("decoded %d shares from %d bytes", len(shares), len(data))
		}
		if err != nil {
			return
		}
		enc := encodeSharesRecord(shares)[recordHeaderLen:]
		again, err := decodeSharesPayload(nil, enc)
		if err != nil || len(again) != len(shares) {
			t.Fatalf("re-encoded: %d shares, %v; want %d", len(again), err, len(shares))
		}
		if enc2 := encodeSharesRecord(again)[recordHeaderLen:]; !bytes.Equal(enc, enc2) {
			t.Fatalf("shares changed through encode and decode:\n%x\n%x", enc, enc2)
		}
	})
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

// fuzzDir is a directory for a fuzz target's scratch file: under /dev/shm
// when it is there, since the disk is not what the target tests and a write
// to it costs more than an exec.
func fuzzDir(f *testing.F) string {
	dir, err := os.MkdirTemp("/dev/shm", "hashforge-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// FuzzReadSegment: whatever a crash or a disk leaves in a spool file,
// replay must not panic, and the records it does return must have passed
// their checksum.
func FuzzReadSegment(f *testing.F) {
	rec, _ := encodeRecord(testBatch(2, "f"))
	f.Add(rec)
	f.Add(append(append([]byte(nil), rec...), rec[:20]...))
	f.Add([]byte("HFS1\x00\x00\x00\x00\x00\x00\x00\x00"))
	// One file, rewritten for each input, in memory when the machine has
	// a tmpfs: a directory made and removed per exec, and a write to disk,
	// cost more than the read.
	path := filepath.Join(fuzzDir(f), "0000000000000001.spool")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzSpool {
			return
		}
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
