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
	"syscall"
	"time"

	"github.com/hashforge/hashforge/internal/uuidv7"
	"github.com/hashforge/hashforge/record"
)

// The spool is the write-ahead log of accepted shares: a share is
// acknowledged to its miner only once it is here (fsynced) or committed in
// PostgreSQL, and the writer applies the log to the shares table in order.
//
// It is a directory of append-only segment files named NNNNNNNNNNNNNNNN.spool
// (a 16-digit sequence, so lexical order is write order). A segment is a
// series of records, one per group commit:
//
//	magic "HFS2" | payload length uint32 LE | CRC-32C(payload) uint32 LE | payload
//
// and the payload is the group's shares in a compact binary form
// (encodeSharesRecord). Every append is fsynced before its shares count as
// kept, so a crash loses at most the record being written, whose shares
// nobody was told were accepted, and that torn record is recognised by its
// length or checksum.
//
// Exactly once: the writer stores, in the same transaction as the rows, the
// log position after them (spool_cursors, keyed by the spool's id in the
// file spool-id), and replays from that position after any crash.
// Segments wholly before the cursor are deleted.
//
// A process never appends to a segment it did not create: a torn tail left
// by a crash would otherwise hide every record written after it. Version-1
// segments ("HFS1": JSON batches, each with an id in spool_batches) left
// by an older hashforge are replayed by id at start.
//
// One spool directory belongs to one process at a time (flock).

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
	// A buffer the size of the segment, up to 1 MiB: a replay reads many
	// small segments.
	r := bufio.NewReaderSize(f, int(min(max(size, 4096), 1<<20)))
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
		if end > size {
			return true, nil // the tail of a write cut short: nothing to allocate for
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

// spool manages the segment files of one directory: the write-ahead log of
// accepted shares. Its methods are safe for concurrent use: the group
// commit appends while the writer reads, and a share accepted after Run
// stopped is appended by its own caller.
type spool struct {
	dir  string
	id   string   // names this spool's cursor in spool_cursors
	lock *os.File // flock held for the life of the spool

	mu         sync.Mutex
	nextSeq    uint64
	active     *os.File // segment being appended to, nil if none
	activeSeq  uint64
	activePath string
	activeSize int64 // bytes of whole, fsynced records in the active segment
	// closed is the length of whole records in each segment this process
	// finished appending to; segments left by an earlier process are read
	// to their end (or their torn tail).
	closed map[uint64]int64
	// legacy are segments of version 1 (per-batch ids in spool_batches),
	// left by an older hashforge: replayed by id at start, never appended.
	legacy map[uint64]bool
}

// walPos is a place in the log: a segment and a byte offset in it. The
// writer's cursor (stored in spool_cursors with the rows it covers) is
// the position after the last record in the database.
type walPos struct {
	seg uint64
	off int64
}

func (p walPos) less(q walPos) bool { return p.seg < q.seg || (p.seg == q.seg && p.off < q.off) }

const spoolIDFile = "spool-id"

func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	id, err := loadOrCreateSpoolID(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &spool{dir: dir, id: id, lock: lock, nextSeq: 1, closed: map[uint64]int64{}, legacy: map[uint64]bool{}}
	segs, err := s.segments()
	if err != nil {
		lock.Close()
		return nil, err
	}
	for _, p := range segs {
		seq, _ := segmentSeq(p)
		s.nextSeq = seq + 1
		if isLegacySegment(p) {
			s.legacy[seq] = true
		}
	}
	return s, nil
}

// lockDir takes an exclusive flock on the spool directory: two processes
// appending to one log, or applying it, would store shares twice.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool dir %s is in use by another process (one spool dir per pool process): %w", dir, err)
	}
	return f, nil
}

func loadOrCreateSpoolID(dir string) (string, error) {
	path := filepath.Join(dir, spoolIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) < 16 || len(id) > 64 {
			return "", fmt.Errorf("spool id file %s is damaged (%q): restore it, or move the spool dir aside if its segments are all in the database", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read spool id: %w", err)
	}
	id := newBatchID(time.Now()).String()
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("create spool id: %w", err)
	}
	return id, nil
}

func (s *spool) close() {
	s.rotate()
	if s.lock != nil {
		s.lock.Close()
	}
}

// isLegacySegment tells version-1 segments (JSON batches with ids) from
// the write-ahead log's version-2 records by the first record's magic.
func isLegacySegment(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [4]byte
	if _, err := io.ReadFull(f, m[:]); err != nil {
		return false
	}
	return m == recordMagic
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

func (s *spool) segmentPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016d%s", seq, segmentSuffix))
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

// legacySegments lists the version-1 segments still on disk, oldest first.
func (s *spool) legacySegments() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for seq := range s.legacy {
		out = append(out, s.segmentPath(seq))
	}
	sort.Strings(out)
	return out
}

func (s *spool) forgetLegacy(path string) {
	seq, _ := segmentSeq(path)
	s.mu.Lock()
	delete(s.legacy, seq)
	s.mu.Unlock()
}

// appendShares writes shares as one record and fsyncs it. When it returns
// nil the shares survive a crash of the process or of the machine; end is
// the log position after the record.
func (s *spool) appendShares(shares []record.Share) (end walPos, err error) {
	rec := encodeSharesRecord(shares)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && s.activeSize+int64(len(rec)) > maxSegmentSize {
		s.closeActiveLocked()
	}
	if s.active == nil {
		if err := s.openSegmentLocked(); err != nil {
			return walPos{}, err
		}
	}
	if _, err := s.active.Write(rec); err != nil {
		s.abandonActiveLocked()
		return walPos{}, fmt.Errorf("append spool record: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		s.abandonActiveLocked()
		return walPos{}, fmt.Errorf("fsync spool segment: %w", err)
	}
	s.activeSize += int64(len(rec))
	return walPos{s.activeSeq, s.activeSize}, nil
}

func (s *spool) openSegmentLocked() error {
	seq := s.nextSeq
	path := s.segmentPath(seq)
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
	s.active, s.activeSeq, s.activePath, s.activeSize = f, seq, path, 0
	return nil
}

// abandonActiveLocked cuts a failed partial append off the active segment
// and stops appending to it, so later records are never hidden behind a
// damaged one. If the truncate fails too, the reader sees a torn tail
// there; either way the records before it are kept.
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
	} else {
		s.closed[s.activeSeq] = s.activeSize
	}
	s.active, s.activeSeq, s.activePath, s.activeSize = nil, 0, "", 0
}

// rotate closes the active segment.
func (s *spool) rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeActiveLocked()
}

// readable says how far segment seq may be read: up to n bytes when
// known, to its end when n < 0 (a segment an earlier process left), and
// whether it is finished (no record will ever be appended to it).
func (s *spool) readable(seq uint64) (n int64, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && seq == s.activeSeq {
		return s.activeSize, false
	}
	if n, ok := s.closed[seq]; ok {
		return n, true
	}
	return -1, true
}

// nextSegment is the first version-2 segment after seq, if any.
func (s *spool) nextSegment(seq uint64) (uint64, bool) {
	segs, err := s.segments()
	if err != nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range segs {
		n, _ := segmentSeq(p)
		if n > seq && !s.legacy[n] {
			return n, true
		}
	}
	return 0, false
}

// removeBefore deletes the finished segments wholly before pos: every
// record in them is in the database. The directory is fsynced before
// returning, though nothing depends on it: a segment whose removal is lost
// lies before the cursor and is skipped and removed again.
func (s *spool) removeBefore(pos walPos) {
	segs, err := s.segments()
	if err != nil {
		return
	}
	removed := false
	for _, p := range segs {
		seq, _ := segmentSeq(p)
		if seq >= pos.seg {
			break
		}
		s.mu.Lock()
		skip := s.legacy[seq] || (s.active != nil && seq == s.activeSeq)
		if !skip {
			delete(s.closed, seq)
		}
		s.mu.Unlock()
		if skip {
			continue
		}
		if os.Remove(p) == nil {
			removed = true
		}
	}
	if removed {
		_ = syncDir(s.dir)
	}
}

// setAside moves a damaged segment out of the log, keeping it for an
// operator.
func (s *spool) setAside(seq uint64) (string, error) {
	s.mu.Lock()
	delete(s.closed, seq)
	s.mu.Unlock()
	return markCorrupt(s.segmentPath(seq))
}

// bytesAfter reports the bytes of log after pos (not yet applied), for
// stats: an estimate from file sizes.
func (s *spool) bytesAfter(pos walPos) int64 {
	segs, err := s.segments()
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range segs {
		seq, _ := segmentSeq(p)
		if seq < pos.seg {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		sz := st.Size()
		if seq == pos.seg {
			sz -= pos.off
		}
		n += max(sz, 0)
	}
	return n
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
