//go:build unix

package stratum

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawReader reads a socket through its raw connection, so that the reader
// can wait for data without a buffer: the callback takes one only when the
// socket has bytes for it, and puts it back when it would block with
// nothing buffered. Its callback is made once per reader, so a read costs
// no allocation.
type rawReader struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // lr.readFD
	n   int
	err error
	// yield: when the socket has nothing and nothing is buffered, return
	// errYield instead of waiting (once: it is cleared then).
	yield, yielded bool
}

func (r *rawReader) ok() bool { return r.rc != nil }

// takeYield reports, once, that the last read yielded.
func (r *rawReader) takeYield() bool {
	y := r.yielded
	r.yielded = false
	return y
}

// useRaw makes lr read conn through its raw connection, if it has one;
// other connections (net.Pipe, TLS) are read as before.
func (lr *LineReader) useRaw(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	lr.raw = rawReader{rc: rc, fn: lr.readFD}
}

// fillRaw reads once into lr.buf[lr.end:], waiting (with the connection's
// read deadline) until there is something to read.
func (lr *LineReader) fillRaw() {
	r := &lr.raw
	r.n, r.err = 0, nil
	err := r.rc.Read(r.fn)
	n := r.n
	switch {
	case r.yielded:
		return // ReadLine reports it
	case err != nil: // deadline, closed
		lr.err = err
	case r.err != nil:
		lr.err = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", r.err)}
	case n == 0:
		lr.err = io.EOF
	}
	lr.filled = n > 0 && lr.end+n == len(lr.buf)
	lr.end += n
	if lr.end == 0 && lr.buf != nil {
		lr.releaseBuf()
	}
}

// readFD is the raw read: false asks to be called again once the socket
// is readable.
func (lr *LineReader) readFD(fd uintptr) bool {
	if lr.buf == nil {
		lr.takeBuf()
	}
	for {
		n, err := syscall.Read(int(fd), lr.buf[lr.end:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if lr.end == 0 {
				lr.releaseBuf() // nothing to hold while waiting
				if lr.raw.yield {
					lr.raw.yield, lr.raw.yielded = false, true
					return true
				}
			}
			return false
		}
		if err != nil {
			n = 0
		}
		lr.raw.n, lr.raw.err = n, err
		return true
	}
}
