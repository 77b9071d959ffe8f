package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"time"

	"github.com/hashforge/hashforge/record"
)

// Version 2 of the spool record: the shares of one group commit, binary.
// Encoding is on the share path (every accepted share), so it is a flat
// append of varints, length-prefixed strings and float bits.
var walMagic = [4]byte{'H', 'F', 'S', '2'}

const walPayloadVersion = 2

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeSharesRecord frames shares as one version-2 record.
func encodeSharesRecord(shares []record.Share) []byte {
	b := make([]byte, recordHeaderLen, recordHeaderLen+16+len(shares)*160)
	b = append(b, walPayloadVersion)
	b = binary.AppendUvarint(b, uint64(len(shares)))
	for i := range shares {
		s := &shares[i]
		b = binary.AppendVarint(b, s.Time.UnixMicro())
		b = appendString(b, s.Address)
		b = appendString(b, s.Worker)
		b = appendString(b, s.JobID)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.Difficulty))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.ActualDiff))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.NetworkDifficulty))
		b = binary.AppendVarint(b, s.Height)
		var flags byte
		if s.IsBlock {
			flags |= 1
		}
		b = append(b, flags)
		b = appendString(b, s.BlockHash)
		b = appendString(b, s.RemoteAddr)
		b = appendString(b, s.ExtraNonce1)
	}
	payload := b[recordHeaderLen:]
	copy(b[0:4], walMagic[:])
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[8:12], crc32.Checksum(payload, castagnoli))
	return b
}

var errShortPayload = errors.New("payload ends inside a share")

type payloadReader struct {
	b   []byte
	err error
}

func (r *payloadReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) fail() {
	if r.err == nil {
		r.err = errShortPayload
	}
	r.b = nil
}

func (r *payloadReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *payloadReader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *payloadReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// decodeSharesPayload appends the shares of a version-2 payload to dst.
func decodeSharesPayload(dst []record.Share, payload []byte) ([]record.Share, error) {
	r := payloadReader{b: payload}
	if v := r.byte(); v != walPayloadVersion {
		return dst, fmt.Errorf("unknown payload version %d", v)
	}
	n := r.uvarint()
	// Each share takes at least 36 bytes: a count beyond that is damage.
	if n > uint64(len(r.b))/36+1 {
		return dst, fmt.Errorf("share count %d does not fit in %d bytes", n, len(r.b))
	}
	for range n {
		var s record.Share
		s.Time = time.UnixMicro(r.varint())
		s.Address = r.string()
		s.Worker = r.string()
		s.JobID = r.string()
		s.Difficulty = r.float()
		s.ActualDiff = r.float()
		s.NetworkDifficulty = r.float()
		s.Height = r.varint()
		s.IsBlock = r.byte()&1 != 0
		s.BlockHash = r.string()
		s.RemoteAddr = r.string()
		s.ExtraNonce1 = r.string()
		if r.err != nil {
			return dst, r.err
		}
		dst = append(dst, s)
	}
	if len(r.b) != 0 {
		return dst, fmt.Errorf("%d bytes after the last share", len(r.b))
	}
	return dst, nil
}

// walReader reads the log forward from a position, for the writer. It is
// owned by one goroutine.
type walReader struct {
	sp  *spool
	f   *os.File
	seg uint64 // segment f is open on
	// chunk holds bytes of the open segment from chunkOff on: one read
	// serves the many small records of a busy group commit.
	chunk    []byte
	chunkOff int64
}

const walReadChunk = 1 << 20

// bytesAt returns n bytes of the open segment at off, below limit, from
// the chunk when it holds them.
func (r *walReader) bytesAt(off, n, limit int64) ([]byte, error) {
	if off >= r.chunkOff && off+n <= r.chunkOff+int64(len(r.chunk)) {
		return r.chunk[off-r.chunkOff : off-r.chunkOff+n], nil
	}
	size := min(max(n, walReadChunk), limit-off)
	if size < n {
		return nil, io.ErrUnexpectedEOF
	}
	if int64(cap(r.chunk)) < size {
		r.chunk = make([]byte, size)
	}
	r.chunk = r.chunk[:size]
	m, err := r.f.ReadAt(r.chunk, off)
	r.chunk, r.chunkOff = r.chunk[:m], off
	if int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.chunk[:n], nil
}

// errSegmentDamaged is a record that is neither whole nor a torn tail.
var errSegmentDamaged = errors.New("spool segment damaged")

// read returns the shares of whole records from pos on, stopping once it
// has at least maxShares (a record is never split), at the readable end of
// the active segment, or at the end of the log. next is the position after
// the last record returned (pos when none). A finished segment read to its
// end moves next to the start of the following segment.
func (r *walReader) read(pos walPos, maxShares int, dst []record.Share) (shares []record.Share, next walPos, err error) {
	shares, next = dst, pos
	for len(shares) < maxShares {
		limit, finished := r.sp.readable(next.seg)
		if err := r.open(next.seg); err != nil {
			if errors.Is(err, os.ErrNotExist) && finished {
				seg, ok := r.sp.nextSegment(next.seg)
				if !ok {
					return shares, next, nil
				}
				next = walPos{seg, 0}
				continue
			}
			return shares, next, err
		}
		if limit < 0 {
			st, err := r.f.Stat()
			if err != nil {
				return shares, next, err
			}
			limit = st.Size()
		}
		var atEnd bool
		shares, next, atEnd, err = r.readSegment(next, limit, maxShares, shares)
		if err != nil {
			return shares, next, err
		}
		if !atEnd {
			return shares, next, nil
		}
		if !finished {
			return shares, next, nil // the active segment: more comes later
		}
		seg, ok := r.sp.nextSegment(next.seg)
		if !ok {
			return shares, next, nil
		}
		next = walPos{seg, 0}
	}
	return shares, next, nil
}

func (r *walReader) open(seg uint64) error {
	if r.f != nil && r.seg == seg {
		return nil
	}
	r.close()
	f, err := os.Open(r.sp.segmentPath(seg))
	if err != nil {
		return err
	}
	r.f, r.seg = f, seg
	r.chunk, r.chunkOff = r.chunk[:0], 0
	return nil
}

func (r *walReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// readSegment reads records of the open segment from pos up to limit
// bytes. atEnd says nothing more can be read below limit: the end, or a
// torn tail (a crash during an append; nobody was told its shares were
// accepted).
func (r *walReader) readSegment(pos walPos, limit int64, maxShares int, dst []record.Share) (shares []record.Share, next walPos, atEnd bool, err error) {
	shares, next = dst, pos
	var hdr [recordHeaderLen]byte
	for len(shares) < maxShares {
		if next.off+recordHeaderLen > limit {
			return shares, next, true, nil
		}
		h, err := r.bytesAt(next.off, recordHeaderLen, limit)
		if err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return shares, next, true, nil
			}
			return shares, next, false, err
		}
		copy(hdr[:], h)
		length := int64(binary.LittleEndian.Uint32(hdr[4:8]))
		end := next.off + recordHeaderLen + length
		if [4]byte(hdr[0:4]) != walMagic {
			// A power loss can leave a file extended with zeros where an
			// unsynced append was: a tail, not damage.
			if r.zeroTo(next.off, limit) {
				return shares, next, true, nil
			}
			return shares, next, false, fmt.Errorf("%w: bad magic at offset %d", errSegmentDamaged, next.off)
		}
		if length > maxRecordLen {
			if end >= limit {
				return shares, next, true, nil
			}
			return shares, next, false, fmt.Errorf("%w: record length %d at offset %d", errSegmentDamaged, length, next.off)
		}
		if end > limit {
			return shares, next, true, nil
		}
		payload, err := r.bytesAt(next.off+recordHeaderLen, length, limit)
		if err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return shares, next, true, nil
			}
			return shares, next, false, err
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[8:12]) {
			if end == limit {
				return shares, next, true, nil // a torn write's stale bytes
			}
			return shares, next, false, fmt.Errorf("%w: checksum mismatch at offset %d", errSegmentDamaged, next.off)
		}
		n := len(shares)
		if shares, err = decodeSharesPayload(shares, payload); err != nil {
			return shares[:n], next, false, fmt.Errorf("%w: offset %d: %w", errSegmentDamaged, next.off, err)
		}
		next.off = end
	}
	return shares, next, false, nil
}

// zeroTo reports whether the segment holds only zero bytes from off to limit.
func (r *walReader) zeroTo(off, limit int64) bool {
	var chunk [4096]byte
	for off < limit {
		n := min(int64(len(chunk)), limit-off)
		m, err := r.f.ReadAt(chunk[:n], off)
		for _, c := range chunk[:m] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return err == io.EOF
		}
		off += int64(m)
	}
	return true
}
