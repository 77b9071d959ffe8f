package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/worker/sha256d"
)

// The JSON keys of `hashforge bench --json` are a contract for scripts.
func TestBenchJSON(t *testing.T) {
	out := captureStdout(t, func() error {
		return cmdBench([]string{"--impl", "generic", "--threads", "2", "--seconds", "0.2", "--json"})
	})
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		impl, _ := r["impl"].(string)
		threads, _ := r["threads"].(float64)
		mhs, _ := r["mhs"].(float64)
		if impl == "" || threads < 1 || !(mhs > 0) {
			t.Errorf("row without impl/threads/mhs: %v", r)
		}
		seen[impl+"/"+strings.Repeat("x", int(threads))] = true
	}
	for _, want := range []string{sha256d.StdlibName + "/x", "generic/x", "generic/xx"} {
		if !seen[want] {
			t.Errorf("no %s row in %s", want, out)
		}
	}
}

func TestBenchTable(t *testing.T) {
	out := string(captureStdout(t, func() error {
		return cmdBench([]string{"--impl", "generic", "--seconds", "0.1"})
	}))
	for _, want := range []string{"CPU: ", "features: ", "default: ", "× stdlib", "generic"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench output lacks %q:\n%s", want, out)
		}
	}
	if err := cmdBench([]string{"--impl", "no-such-impl"}); err == nil {
		t.Error("bench accepted an unknown implementation")
	}
}

func TestDevicesListsCPU(t *testing.T) {
	out := captureStdout(t, func() error { return cmdDevices([]string{"--json"}) })
	var r devicesReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
	if r.CPU.Threads < 1 || len(r.CPU.Implementations) == 0 || r.CPU.Implementations[len(r.CPU.Implementations)-1] == "" {
		t.Errorf("cpu report %+v", r.CPU)
	}
	def, err := sha256d.Configured()
	if err != nil {
		t.Fatal(err)
	}
	if r.CPU.Implementations[0] != def.Name {
		t.Errorf("first implementation %s, default is %s", r.CPU.Implementations[0], def.Name)
	}
}
