//go:build unix

package stratum

import (
	"errors"
	"io"
	"net"
	"testing"
)

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A reader of a socket waits holding no buffer when it holds no data, and
// keeps its buffer while part of a line is in it.
func TestLineReaderWaitsWithoutBuffer(t *testing.T) {
	client, server := tcpPair(t)
	lr := NewLineReader(server, 0)
	lr.useRaw(server)
	if !lr.raw.ok() {
		t.Fatal("a TCP connection offers no raw reads")
	}
	// waits reports, from the reader's goroutine, what the reader holds
	// each time it is about to wait for the socket.
	type held struct{ buf, data int }
	waits := make(chan held, 16)
	lr.raw.fn = func(fd uintptr) bool {
		if lr.readFD(fd) {
			return true
		}
		waits <- held{len(lr.buf), lr.end - lr.start}
		return false
	}
	type result struct {
		line string
		err  error
	}
	lines := make(chan result)
	go func() {
		for {
			l, err := lr.ReadLine()
			lines <- result{string(l), err}
			if err != nil {
				return
			}
		}
	}()
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(client, s); err != nil {
			t.Fatal(err)
		}
	}
	if w := <-waits; w.buf != 0 {
		t.Fatalf("waits for the first line holding %d bytes", w.buf)
	}
	send("first\nsec")
	if r := <-lines; r.line != "first" || r.err != nil {
		t.Fatalf("got %q, %v", r.line, r.err)
	}
	if w := <-waits; w.buf == 0 || w.data != 3 {
		t.Fatalf("waits for the rest of a line holding %+v", w)
	}
	send("ond\n")
	if r := <-lines; r.line != "second" || r.err != nil {
		t.Fatalf("got %q, %v", r.line, r.err)
	}
	if w := <-waits; w.buf != 0 {
		t.Fatalf("waits after the last line holding a %d byte buffer", w.buf)
	}
	send("tail")
	client.(*net.TCPConn).CloseWrite()
	if r := <-lines; r.line != "tail" || r.err != nil {
		t.Fatalf("final unterminated line: %q, %v", r.line, r.err)
	}
	if r := <-lines; !errors.Is(r.err, io.EOF) {
		t.Fatalf("after the last line: %q, %v", r.line, r.err)
	}
}
