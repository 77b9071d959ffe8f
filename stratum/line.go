package stratum

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// DefaultMaxLine bounds one Stratum line. The largest legitimate message a
// miner sends (a submit or configure) is a few hundred bytes.
const DefaultMaxLine = 16 << 10

// ErrLineTooLong is returned by LineReader.ReadLine for a line longer than
// the reader's maximum. It is sticky: the stream position is inside the
// oversized line, so the connection is no longer usable.
var ErrLineTooLong = errors.New("stratum: line too long")

// errYield is ReadLine giving up a wait it was asked to leave to its
// caller (rawReader.yield); the reader is intact and may be read on.
var errYield = errors.New("stratum: read yielded")

// initialLineBuffer is where a reader's buffer starts. Most sessions only
// ever see lines of a couple of hundred bytes, so buffers start small and
// grow towards the maximum only for sessions that need it: ten thousand
// idle miners should not pin ten thousand 16 KiB buffers.
const initialLineBuffer = 512

// LineReader splits a stream into newline-terminated lines with a hard cap
// on line length, so a peer can never make it buffer more than max bytes.
type LineReader struct {
	r     io.Reader
	max   int
	buf   []byte
	start int // first unconsumed byte of buf
	end   int // end of valid data in buf
	err   error

	// beforeRead, if set, runs before every read from r, that is whenever
	// no complete line is buffered and the next read may block.
	beforeRead func()
	// filled: the last read filled the buffer, so more was probably
	// waiting: the next read gets a bigger buffer, to take in one read
	// every line that arrived at once.
	filled bool
	// pooled: buf came from lineBufs and goes back when it holds nothing.
	pooled bool
	// raw, once set up (useRaw), waits for the socket to be readable
	// without holding a buffer: an idle session holds none.
	raw rawReader
}

// lineBufs holds the small buffers of readers that wait for a socket: a
// reader takes one when its socket is readable and returns it when
// everything read has been handed out, so ten thousand idle miners hold
// none and a busy one gets one without allocating.
var lineBufs = sync.Pool{New: func() any { return new([initialLineBuffer]byte) }}

// takeBuf gives a reader holding no buffer a pooled one.
func (lr *LineReader) takeBuf() {
	lr.buf = lineBufs.Get().(*[initialLineBuffer]byte)[:]
	lr.pooled = true
}

// releaseBuf returns or drops the buffer of a reader holding no data.
func (lr *LineReader) releaseBuf() {
	if lr.pooled {
		lineBufs.Put((*[initialLineBuffer]byte)(lr.buf))
	}
	lr.buf, lr.pooled, lr.start, lr.end = nil, false, 0, 0
}

// NewLineReader returns a reader of lines of at most max bytes (not counting
// the "\r\n" or "\n" terminator). max <= 0 means DefaultMaxLine.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLine
	}
	return &LineReader{r: r, max: max}
}

// ReadLine returns the next non-blank line without its terminator. The slice
// aliases the reader's buffer and is valid until the next call. A final line
// without a terminator is returned before io.EOF.
func (lr *LineReader) ReadLine() ([]byte, error) {
	if lr.err == ErrLineTooLong {
		return nil, lr.err
	}
	scanFrom := lr.start
	for {
		if i := bytes.IndexByte(lr.buf[scanFrom:lr.end], '\n'); i >= 0 {
			nl := scanFrom + i
			line := lr.buf[lr.start:nl]
			lr.start = nl + 1
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) > lr.max {
				lr.err = ErrLineTooLong
				return nil, lr.err
			}
			if isBlank(line) {
				scanFrom = lr.start
				continue
			}
			return line, nil
		}
		scanFrom = lr.end
		if lr.err != nil {
			return lr.flushTail()
		}
		// max+2 bytes without a newline cannot be a line of at most max
		// bytes plus "\r\n": fail before buffering any more of it.
		if lr.end-lr.start >= lr.max+2 {
			lr.err = ErrLineTooLong
			return nil, lr.err
		}
		shift := lr.fill()
		if lr.raw.takeYield() {
			return nil, errYield
		}
		scanFrom -= shift
	}
}

// flushTail hands out a final unterminated line once, then the read error.
func (lr *LineReader) flushTail() ([]byte, error) {
	line := bytes.TrimSuffix(lr.buf[lr.start:lr.end], []byte{'\r'})
	lr.start = lr.end
	if len(line) > lr.max {
		lr.err = ErrLineTooLong
		return nil, lr.err
	}
	if !isBlank(line) && lr.err == io.EOF {
		return line, nil
	}
	return nil, lr.err
}

// fill reads more data, compacting or growing the buffer first. It returns
// how far existing data moved towards the start of the buffer.
func (lr *LineReader) fill() int {
	shift := 0
	if lr.start > 0 {
		shift = lr.start
		copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.end -= lr.start
		lr.start = 0
	}
	if lr.end == 0 && !lr.filled && len(lr.buf) > initialLineBuffer {
		// The burst is over: an idle session goes back to a small buffer.
		lr.buf = nil
	}
	if lr.raw.ok() && lr.end == 0 && !lr.filled {
		// The raw read takes a buffer once there is something to read.
		if lr.beforeRead != nil {
			lr.beforeRead()
		}
		lr.fillRaw()
		return shift
	}
	if lr.end == len(lr.buf) || (lr.filled && len(lr.buf) < lr.max+2) {
		limit := lr.max + 2
		grow := 2
		if lr.filled {
			grow = 4 // a burst: catch up in few reads
		}
		size := max(grow*len(lr.buf), min(initialLineBuffer, limit))
		size = min(size, limit)
		grown := make([]byte, size)
		copy(grown, lr.buf[:lr.end])
		if lr.pooled {
			lineBufs.Put((*[initialLineBuffer]byte)(lr.buf))
			lr.pooled = false
		}
		lr.buf = grown
	}
	if lr.beforeRead != nil {
		lr.beforeRead()
	}
	if lr.raw.ok() {
		lr.fillRaw()
		return shift
	}
	// io.Reader allows (0, nil); give up like bufio does rather than spin.
	for range 100 {
		n, err := lr.r.Read(lr.buf[lr.end:])
		if n < 0 || n > len(lr.buf)-lr.end {
			lr.err = errors.New("stratum: reader returned invalid count")
			return shift
		}
		lr.filled = n > 0 && lr.end+n == len(lr.buf)
		lr.end += n
		if err != nil {
			lr.err = err
			return shift
		}
		if n > 0 {
			return shift
		}
	}
	lr.err = io.ErrNoProgress
	return shift
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
