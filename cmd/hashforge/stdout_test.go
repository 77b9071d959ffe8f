package main

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// captureStdout runs f with os.Stdout redirected and returns what it printed:
// the subcommands print their reports to stdout, as operators' scripts read
// them.
func captureStdout(t *testing.T, f func() error) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	ferr := f()
	os.Stdout = old
	w.Close()
	out := <-done
	if ferr != nil {
		t.Fatalf("%v\noutput:\n%s", ferr, out)
	}
	return bytes.TrimSpace(out)
}
