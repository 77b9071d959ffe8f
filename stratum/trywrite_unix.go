//go:build unix

package stratum

import (
	"net"
	"syscall"
)

// rawWriter writes to a socket without waiting. Its callback and the raw
// connection are made once per session: a broadcast writes to thousands of
// sessions and must not allocate for each. Only the goroutine that owns
// the session's write side uses it.
type rawWriter struct {
	rc    syscall.RawConn
	fn    func(fd uintptr) bool
	batch [][]byte
	lines int
	part  int
	err   error
}

// write writes as much of batch as the socket takes at once. It returns
// how many whole lines went out and how many bytes of the next one; ok is
// false when the connection offers no raw access (then nothing was
// written and the caller must use a blocking write).
func (w *rawWriter) write(conn net.Conn, batch [][]byte) (lines, partial int, ok bool, err error) {
	if w.fn == nil {
		sc, isSys := conn.(syscall.Conn)
		if !isSys {
			return 0, 0, false, nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return 0, 0, false, nil
		}
		w.rc, w.fn = rc, w.writeFD
	}
	w.batch, w.lines, w.part, w.err = batch, 0, 0, nil
	if err := w.rc.Write(w.fn); err != nil && w.err == nil {
		w.err = err
	}
	lines, partial, err = w.lines, w.part, w.err
	w.batch, w.err = nil, nil
	return lines, partial, true, err
}

func (w *rawWriter) writeFD(fd uintptr) bool {
	for w.lines < len(w.batch) {
		n, e := syscall.Write(int(fd), w.batch[w.lines][w.part:])
		if n > 0 {
			w.part += n
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN || (e == nil && n <= 0):
			return true // full: the rest is for a writer that may wait
		case e != nil:
			w.err = e
			return true
		}
		if w.part == len(w.batch[w.lines]) {
			w.lines, w.part = w.lines+1, 0
		}
	}
	return true // never wait here: false would block until writable
}
