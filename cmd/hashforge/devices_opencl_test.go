//go:build opencl

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

func TestOpenCLDevicesAndBench(t *testing.T) {
	devtest.OpenCL(t)
	out := captureStdout(t, func() error { return cmdDevices([]string{"--json"}) })
	var r devicesReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
	if r.OpenCLError != "" || len(r.OpenCL) == 0 {
		t.Fatalf("no OpenCL device listed: %q %+v", r.OpenCLError, r.OpenCL)
	}
	text := string(captureStdout(t, func() error { return cmdDevices(nil) }))
	if !strings.Contains(text, "opencl:0: ") || !strings.Contains(text, "cpu: ") {
		t.Errorf("devices text:\n%s", text)
	}

	out = captureStdout(t, func() error {
		return cmdBench([]string{"--device", "opencl:0", "--seconds", "0.5", "--json"})
	})
	var rows []benchRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if len(rows) != 1 || rows[0].Impl != "opencl:0" || !(rows[0].MHs > 0) || !(rows[0].VsBestCPU > 0) || rows[0].BestCPU == "" {
		t.Errorf("opencl bench rows %+v", rows)
	}
}
