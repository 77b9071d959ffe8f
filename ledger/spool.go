package ledger

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/internal/uuidv7"
	"github.com/hashforge/hashforge/record"
)

// The spool is where share batches wait while PostgreSQL is unreachable.
//
// It is a directory of append-only segment files named NNNNNNNNNNNNNNNN.spool
// (a 16-digit sequence, so lexical order is write order). A segment is a
// series of records, one per batch:
//
//	magic "HFS1" | payload length uint32 LE | CRC-32C(payload) uint32 LE | payload
//
// and the payload is the batch as JSON. Every append is fsynced before the
// batch counts as safe, so a crash loses at most the record being written,
// and that torn record is recognised by its length or checksum on replay.
//
// A process never appends to a segment it did not create: a torn tail left
// by a crash would otherwise hide every record written after it. Segments
// are deleted only once every record in them is in the database; replay
// re-reads a segment from the start after a failure and relies on
// spool_batches to skip what was already applied.
//
// One spool directory belongs to one process at a time.

const (
	segmentSuffix   = ".spool"
	rejectedPrefix  = "rejected-"
	corruptSuffix   = ".corrupt"
	recordHeaderLen = 12
	// A batch of MaxBatch shares is a few hundred bytes per share; anything
	// near this bound is garbage, not a record.
	maxRecordLen = 64 << 20
	// Segments are rotated at this size so that replay can delete progress
	// as it goes instead of holding one huge file until the very end.
	maxSegmentSize = 16 << 20
)

var (
	recordMagic = [4]byte{'H', 'F', 'S', '1'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// batch is the unit of writing, spooling and replay. Its id is fixed before
// the first write attempt and never changes.
type batch struct {
	ID     batchID
	Shares []record.Share
}

// spoolRecord is the on-disk payload. Field names are part of the file
// format: spool files written by one version must replay in the next.
type spoolRecord struct {
	V      int          `json:"v"`
	ID     string       `json:"id"`
	Shares []spoolShare `json:"shares"`
}

type spoolShare struct {
	Time       time.Time `json:"t"`
	Address    string    `json:"a"`
	Worker     string    `json:"w"`
	JobID      string    `json:"j"`
	Difficulty float64   `json:"d"`
	ActualDiff float64   `json:"ad"`
	Height     int64     `json:"h"`
	// Added with PPS; absent (0, "unknown") in older spool files.
	NetworkDifficulty float64 `json:"nd,omitempty"`
	IsBlock           bool    `json:"b,omitempty"`
	BlockHash         string  `json:"bh,omitempty"`
	RemoteAddr        string  `json:"ra,omitempty"`
	ExtraNonce1       string  `json:"en1,omitempty"`
}

func encodeRecord(b batch) ([]byte, error) {
	rec := spoolRecord{V: 1, ID: b.ID.String(), Shares: make([]spoolShare, len(b.Shares))}
	for i, s := range b.Shares {
		rec.Shares[i] = spoolShare(s)
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode batch %s: %w", b.ID, err)
	}
	if len(payload) > maxRecordLen {
		return nil, fmt.Errorf("encode batch %s: %d bytes exceeds the record limit", b.ID, len(payload))
	}
	buf := make([]byte, recordHeaderLen+len(payload))
	copy(buf[0:4], recordMagic[:])
	binary.LittleEndian.PutUint32(buf[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[8:12], crc32.Checksum(payload, castagnoli))
	copy(buf[recordHeaderLen:], payload)
	return buf, nil
}

func decodePayload(payload []byte) (batch, error) {
	var rec spoolRecord
	if err := json.Unmarshal(payload, &rec); err != nil {
		return batch{}, fmt.Errorf("decode record: %w", err)
	}
	if rec.V != 1 {
		return batch{}, fmt.Errorf("decode record: unknown version %d", rec.V)
	}
	id, err := parseBatchID(rec.ID)
	if err != nil {
		return batch{}, fmt.Errorf("decode record: %w", err)
	}
	b := batch{ID: id, Shares: make([]record.Share, len(rec.Shares))}
	for i, s := range rec.Shares {
		b.Shares[i] = record.Share(s)
	}
	return b, nil
}

func parseBatchID(s string) (batchID, error) {
	id, err := uuidv7.Parse(s)
	if err != nil {
		return id, fmt.Errorf("malformed batch id %q", s)
	}
	return id, nil
}

// errCorrupt marks damage in the middle of a segment, as opposed to a torn
// final record.
var errCorrupt = errors.New("corrupt spool record")

// readSegment calls fn for each intact record of the segment in order and
// stops at the first error fn returns. torn reports a damaged final record,
// the expected result of a crash during an append; damage with more data
// after it returns an error wrapping errCorrupt.
func readSegment(path string, fn func(batch) error) (torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat spool segment: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var hdr [recordHeaderLen]byte
	for {
		n, err := io.ReadFull(r, hdr[:])
		if err == io.EOF {
			return false, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("read spool segment: %w", err)
		}
		if [4]byte(hdr[0:4]) != recordMagic {
			return false, fmt.Errorf("%w: bad magic at offset %d", errCorrupt, off)
		}
		length := int64(binary.LittleEndian.Uint32(hdr[4:8]))
		end := off + int64(n) + length
		if length > maxRecordLen {
			if end >= size {
				return true, nil
			}
			return false, fmt.Errorf("%w: record length %d at offset %d", errCorrupt, length, off)
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
				return true, nil
			}
			return false, fmt.Errorf("read spool segment: %w", err)
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[8:12]) {
			// A torn write can leave a full-length record with stale
			// bytes in it; that is still the tail if nothing follows.
			if end == size {
				return true, nil
			}
			return false, fmt.Errorf("%w: checksum mismatch at offset %d", errCorrupt, off)
		}
		b, err := decodePayload(payload)
		if err != nil {
			return false, fmt.Errorf("%w: offset %d: %w", errCorrupt, off, err)
		}
		if err := fn(b); err != nil {
			return false, err
		}
		off = end
	}
}

// spool manages the segment files of one directory. Its methods are safe
// for concurrent use (late AddShare calls spool while Run shuts down).
type spool struct {
	dir string

	mu         sync.Mutex
	nextSeq    uint64
	active     *os.File // segment being appended to, nil if none
	activePath string
	activeSize int64
}

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	s := &spool{dir: dir, nextSeq: 1}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	if n := len(segs); n > 0 {
		last, _ := segmentSeq(segs[n-1])
		s.nextSeq = last + 1
	}
	return s, nil
}

func segmentSeq(path string) (uint64, bool) {
	base := filepath.Base(path)
	if !strings.HasSuffix(base, segmentSuffix) {
		return 0, false
	}
	digits := strings.TrimSuffix(base, segmentSuffix)
	if len(digits) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// segments lists every segment file, oldest first, including the active one.
func (s *spool) segments() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list spool dir: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, ok := segmentSeq(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, filepath.Join(s.dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// closedSegments lists the segments replay may read: all but the active one.
func (s *spool) closedSegments() ([]string, error) {
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := segs[:0]
	for _, p := range segs {
		if p != s.activePath {
			out = append(out, p)
		}
	}
	return out, nil
}

// hasActive reports whether a segment is open for appends.
func (s *spool) hasActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active != nil
}

// append writes b as one record and fsyncs it; when it returns nil the
// batch survives a crash.
func (s *spool) append(b batch) error {
	rec, err := encodeRecord(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && s.activeSize+int64(len(rec)) > maxSegmentSize {
		s.closeActiveLocked()
	}
	if s.active == nil {
		if err := s.openSegmentLocked(); err != nil {
			return err
		}
	}
	if _, err := s.active.Write(rec); err != nil {
		s.abandonActiveLocked()
		return fmt.Errorf("append spool record: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		s.abandonActiveLocked()
		return fmt.Errorf("fsync spool segment: %w", err)
	}
	s.activeSize += int64(len(rec))
	return nil
}

func (s *spool) openSegmentLocked() error {
	path := filepath.Join(s.dir, fmt.Sprintf("%016d%s", s.nextSeq, segmentSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	// The file's directory entry must be durable too, or an fsynced
	// record could vanish with its file after a power loss.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	s.nextSeq++
	s.active, s.activePath, s.activeSize = f, path, 0
	return nil
}

// abandonActiveLocked cuts a failed partial append off the active segment
// and stops appending to it, so later records are never hidden behind a
// damaged one. If the truncate fails too, replay treats the damage as torn
// tail or corruption; either way the records before it are kept.
func (s *spool) abandonActiveLocked() {
	_ = s.active.Truncate(s.activeSize)
	s.closeActiveLocked()
}

func (s *spool) closeActiveLocked() {
	if s.active == nil {
		return
	}
	_ = s.active.Close()
	if s.activeSize == 0 {
		_ = os.Remove(s.activePath)
	}
	s.active, s.activePath, s.activeSize = nil, "", 0
}

// rotate closes the active segment so that replay may read it.
func (s *spool) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeActiveLocked()
}

// quarantine keeps a batch the database refuses for good (a data error,
// not an outage) out of the replay path, on disk for an operator to inspect.
func (s *spool) quarantine(b batch) (string, error) {
	rec, err := encodeRecord(b)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, rejectedPrefix+b.ID.String()+segmentSuffix)
	if err := writeFileSync(path, rec); err != nil {
		return "", fmt.Errorf("quarantine batch %s: %w", b.ID, err)
	}
	return path, nil
}

// markCorrupt renames a damaged segment out of the replay path, keeping it.
func markCorrupt(path string) (string, error) {
	// The time keeps a later segment reusing this sequence number from
	// overwriting the evidence.
	dst := fmt.Sprintf("%s.%d%s", path, time.Now().UnixNano(), corruptSuffix)
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("set corrupt spool segment aside: %w", err)
	}
	return dst, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open spool dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync spool dir: %w", err)
	}
	return nil
}
