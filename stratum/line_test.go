package stratum

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, lr *LineReader) ([]string, error) {
	t.Helper()
	var lines []string
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

func TestLineReaderSplits(t *testing.T) {
	in := "a\n\r\n\nbb\r\n  \t\r\n{\"id\":1}\nlast"
	want := []string{"a", "bb", `{"id":1}`, "last"}
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
	} {
		lines, err := readAll(t, NewLineReader(r, 16))
		if err != io.EOF {
			t.Fatalf("%s: err = %v, want io.EOF", name, err)
		}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Fatalf("%s: lines %q, want %q", name, lines, want)
		}
	}
}

func TestLineReaderLimit(t *testing.T) {
	const max = 8
	exact := strings.Repeat("x", max)
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr error
	}{
		{exact + "\r\n" + exact + "\n", []string{exact, exact}, io.EOF},
		{exact + "\r\n" + exact, []string{exact, exact}, io.EOF},
		{exact + "y\nok\n", nil, ErrLineTooLong},
		{"ok\n" + exact + "y\r\nok\n", []string{"ok"}, ErrLineTooLong},
		{"ok\n" + exact + "yz", []string{"ok"}, ErrLineTooLong},
		{exact + "yz\n", nil, ErrLineTooLong},
	} {
		lr := NewLineReader(iotest.OneByteReader(strings.NewReader(tc.in)), max)
		lines, err := readAll(t, lr)
		if err != tc.wantErr || strings.Join(lines, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: lines %q err %v; want %q %v", tc.in, lines, err, tc.want, tc.wantErr)
		}
		if err == ErrLineTooLong {
			if _, err := lr.ReadLine(); err != ErrLineTooLong {
				t.Errorf("%q: ErrLineTooLong must be sticky, then got %v", tc.in, err)
			}
		}
	}
}

// endless is a peer that sends an unterminated line forever.
type endless struct{ read int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.read += len(p)
	return len(p), nil
}

func TestLineReaderBoundedMemory(t *testing.T) {
	src := &endless{}
	lr := NewLineReader(src, DefaultMaxLine)
	if _, err := lr.ReadLine(); err != ErrLineTooLong {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if cap(lr.buf) > DefaultMaxLine+2 {
		t.Fatalf("buffer grew to %d bytes for a %d byte limit", cap(lr.buf), DefaultMaxLine)
	}
	if src.read > DefaultMaxLine+2 {
		t.Fatalf("consumed %d bytes of an oversized line, want at most %d", src.read, DefaultMaxLine+2)
	}
}

func TestLineReaderSmallBufferForSmallLines(t *testing.T) {
	line := `{"id":1,"method":"mining.submit","params":["w","j","00000000","6b06489e","8b2c0300"]}` + "\n"
	// Lines arriving one at a time, as a miner sends them.
	lr := NewLineReader(&chunked{data: []byte(strings.Repeat(line, 1000)), sizes: []int{len(line)}}, DefaultMaxLine)
	lines, err := readAll(t, lr)
	if err != io.EOF || len(lines) != 1000 {
		t.Fatalf("read %d lines, err %v", len(lines), err)
	}
	if cap(lr.buf) > initialLineBuffer {
		t.Fatalf("buffer is %d bytes for short lines, want at most %d", cap(lr.buf), initialLineBuffer)
	}
}

// A burst (more arrived than the buffer holds) grows the buffer so the
// rest comes in one read; once it is over the buffer is small again.
func TestLineReaderGrowsForBurstsOnly(t *testing.T) {
	line := `{"id":1,"method":"mining.submit","params":["w","j","00000000","6b06489e","8b2c0300"]}` + "\n"
	burst := strings.Repeat(line, 100)
	lr := NewLineReader(strings.NewReader(burst), DefaultMaxLine)
	var reads int
	lr.beforeRead = func() { reads++ }
	for range 100 {
		if _, err := lr.ReadLine(); err != nil {
			t.Fatal(err)
		}
	}
	if reads > 6 { // 17 with a buffer that does not grow
		t.Fatalf("%d reads for a burst of %d bytes", reads, len(burst))
	}
	lr.r = &chunked{data: []byte(line + line + line), sizes: []int{len(line)}} // then one at a time
	for range 3 {
		if _, err := lr.ReadLine(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(lr.buf) > initialLineBuffer {
		t.Fatalf("buffer is %d bytes after the burst, want at most %d", cap(lr.buf), initialLineBuffer)
	}
}

func TestLineReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLineReader(io.MultiReader(strings.NewReader("a\nparti"), iotest.ErrReader(boom)), 0)
	lines, err := readAll(t, lr)
	if err != boom || len(lines) != 1 || lines[0] != "a" {
		t.Fatalf("lines %q err %v; want [a] and the read error", lines, err)
	}

	lr = NewLineReader(zeroReader{}, 0)
	if _, err := lr.ReadLine(); err != io.ErrNoProgress {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }
