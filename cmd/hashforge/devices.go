package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/hashforge/hashforge/kernels"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// devicesReport is what `hashforge devices --json` prints.
type devicesReport struct {
	CPU struct {
		Model    string   `json:"model"`
		Threads  int      `json:"threads"`
		Features []string `json:"features"`
		// Implementations lists the SHA-256d kernels this CPU can run,
		// fastest first; the first is what `mine` uses by default.
		Implementations []string `json:"implementations"`
		Unavailable     []string `json:"unavailable,omitempty"`
	} `json:"cpu"`
	OpenCL      []kernels.DeviceInfo `json:"opencl"`
	OpenCLError string               `json:"opencl_error,omitempty"`
}

// cmdDevices lists what `hashforge mine --device` can use: the CPU (as
// "cpu") and every OpenCL device (as "opencl:N"). A missing OpenCL driver,
// or a build without OpenCL, is reported, not an error: the CPU still mines.
func cmdDevices(args []string) error {
	fs := newFlagSet("devices", "[--json]")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var r devicesReport
	r.CPU.Model, r.CPU.Features = sha256d.CPUInfo()
	r.CPU.Threads = runtime.NumCPU()
	for _, im := range sha256d.Implementations() {
		if im.Available {
			r.CPU.Implementations = append(r.CPU.Implementations, im.Name)
		} else {
			r.CPU.Unavailable = append(r.CPU.Unavailable, im.Name)
		}
	}
	devs, err := kernels.Devices()
	r.OpenCL = devs
	if r.OpenCL == nil {
		r.OpenCL = []kernels.DeviceInfo{}
	}
	if err != nil {
		r.OpenCLError = err.Error()
	}

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Printf("cpu: %s, %d threads\n", r.CPU.Model, r.CPU.Threads)
	fmt.Printf("  features: %s\n", strings.Join(r.CPU.Features, " "))
	fmt.Printf("  sha256d: %s (default %s)\n", strings.Join(r.CPU.Implementations, ", "), r.CPU.Implementations[0])
	if len(r.CPU.Unavailable) > 0 {
		fmt.Printf("  not on this CPU/build: %s\n", strings.Join(r.CPU.Unavailable, ", "))
	}
	if r.OpenCLError != "" {
		fmt.Printf("opencl: %s\n", r.OpenCLError)
		return nil
	}
	for _, d := range r.OpenCL {
		fmt.Printf("opencl:%d: %s (%s, %s)\n", d.Index, d.Name, d.Type, d.Platform)
		fmt.Printf("  %s; driver %s; %d compute units at %d MHz, %d MiB\n",
			d.Version, d.Driver, d.ComputeUnits, d.ClockMHz, d.GlobalMemBytes>>20)
	}
	return nil
}
