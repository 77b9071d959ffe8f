package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashforge/hashforge/kernels"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// benchRow is one line of `hashforge bench` output.
type benchRow struct {
	sha256d.BenchResult
	VsStdlib float64 `json:"vs_stdlib"` // MH/s over the stdlib loop at the same thread count
	// OpenCL rows: the device's name, and its MH/s over the fastest CPU
	// implementation on every core, measured in the same run (BestCPU says
	// which: "avx512 x2").
	Device    string  `json:"device,omitempty"`
	VsBestCPU float64 `json:"vs_best_cpu,omitempty"`
	BestCPU   string  `json:"best_cpu,omitempty"`
}

// cmdBench measures every SHA-256d implementation (or one) against the
// stdlib baseline, measured in the same run so the ratio is fair.
func cmdBench(args []string) error {
	fs := newFlagSet("bench", "[--device cpu,opencl:N] [--impl NAME|all] [--threads N] [--seconds S] [--json]")
	device := fs.String("device", "cpu", "what to measure: cpu, opencl:N, or a comma-separated list (see 'hashforge devices')")
	impl := fs.String("impl", "all", "implementation to measure, or all available ones")
	threads := fs.Int("threads", 1, "goroutines hashing at once; above 1, one thread is measured too to show scaling")
	seconds := fs.Float64("seconds", 3, "measuring time per implementation and thread count")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *threads < 1 {
		return fmt.Errorf("bench: --threads must be ≥ 1")
	}
	if *seconds <= 0 {
		return fmt.Errorf("bench: --seconds must be > 0")
	}
	withCPU, gpus, err := parseBenchDevices(*device)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}

	// Fail before measuring anything when a device cannot be used.
	var gpuNames []string
	if len(gpus) > 0 {
		devs, err := kernels.Devices()
		if err != nil {
			return fmt.Errorf("device opencl:%d: %w", gpus[0], err)
		}
		for _, n := range gpus {
			if n >= len(devs) {
				return fmt.Errorf("no OpenCL device %d (this machine has %d: see 'hashforge devices')", n, len(devs))
			}
			gpuNames = append(gpuNames, devs[n].Name+", "+devs[n].Platform)
		}
	}

	var names []string
	switch {
	case !withCPU:
		// OpenCL only: just the one-thread stdlib baseline, for the ratio.
	case *impl == "all":
		for _, im := range sha256d.Available() {
			names = append(names, im.Name)
		}
	default:
		if _, err := sha256d.Lookup(*impl); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		names = []string{*impl}
	}
	counts := []int{1}
	if *threads > 1 && withCPU {
		counts = append(counts, *threads)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	model, features := sha256d.CPUInfo()
	def, defErr := sha256d.Configured()
	if !*asJSON && withCPU {
		fmt.Printf("CPU: %s\nfeatures: %s\n", model, strings.Join(features, " "))
		if defErr != nil {
			fmt.Printf("default: %v\n", defErr)
		} else {
			fmt.Printf("default: %s\n", def.Name)
		}
		fmt.Println()
	}

	d := time.Duration(*seconds * float64(time.Second))
	var rows []benchRow
	for _, n := range counts {
		base, err := sha256d.Bench(ctx, sha256d.StdlibName, n, d)
		if err != nil {
			return err
		}
		rows = append(rows, benchRow{BenchResult: base, VsStdlib: 1})
		for _, name := range names {
			r, err := sha256d.Bench(ctx, name, n, d)
			if err != nil {
				return err
			}
			rows = append(rows, benchRow{BenchResult: r, VsStdlib: r.MHs / base.MHs})
		}
	}
	if rows, err = benchOpenCL(ctx, rows, gpus, gpuNames, d); err != nil {
		return err
	}
	if !withCPU {
		rows = rows[1:] // the baseline was only for the ratio
	}

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if withCPU {
		fmt.Fprintln(tw, "impl\tthreads\tMH/s\tMH/s/thread\t× stdlib\t")
	}
	for _, r := range rows {
		if r.Device == "" {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t\n", r.Impl, r.Threads, r.MHs, r.MHsPerThread, r.VsStdlib)
		}
	}
	if len(counts) > 1 && withCPU {
		single := map[string]float64{}
		for _, r := range rows {
			if r.Threads == 1 {
				single[r.Impl] = r.MHs
			}
		}
		fmt.Fprintln(tw, "\t\t\t\t\t")
		fmt.Fprintf(tw, "scaling 1→%d threads\t\t\t\t\t\n", *threads)
		for _, r := range rows {
			if r.Threads > 1 && single[r.Impl] > 0 {
				fmt.Fprintf(tw, "%s\t\t%.2f×\t\t\t\n", r.Impl, r.MHs/single[r.Impl])
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printOpenCLRows(rows)
	return nil
}

// parseBenchDevices splits --device into the CPU flag and OpenCL indices,
// with the same spelling as `mine --device`.
func parseBenchDevices(spec string) (cpu bool, gpus []int, err error) {
	for _, part := range strings.Split(spec, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		switch {
		case part == "":
		case part == "cpu":
			cpu = true
		case strings.HasPrefix(part, "opencl:"):
			n, err := strconv.Atoi(strings.TrimPrefix(part, "opencl:"))
			if err != nil || n < 0 {
				return false, nil, fmt.Errorf("device %q: want opencl:N with N a device index", part)
			}
			gpus = append(gpus, n)
		default:
			return false, nil, fmt.Errorf("unknown device %q (want cpu or opencl:N)", part)
		}
	}
	if !cpu && len(gpus) == 0 {
		return false, nil, fmt.Errorf("no device selected")
	}
	return cpu, gpus, nil
}

// benchOpenCL measures each OpenCL device after the CPU rows, so the
// ratios compare numbers from the same run. rows[0] is the one-thread
// stdlib baseline. A device that uses every core (PoCL) is compared with the
// fastest CPU implementation on every core too: one CPU thread would
// flatter it.
func benchOpenCL(ctx context.Context, rows []benchRow, gpus []int, names []string, d time.Duration) ([]benchRow, error) {
	if len(gpus) == 0 {
		return rows, nil
	}
	cores := runtime.NumCPU()
	var best benchRow
	for _, r := range rows[1:] {
		if r.Impl != sha256d.StdlibName && r.Threads == cores && r.MHs > best.MHs {
			best = r
		}
	}
	if best.MHs == 0 {
		def, err := sha256d.Configured()
		if err != nil {
			return nil, err
		}
		r, err := sha256d.Bench(ctx, def.Name, cores, d)
		if err != nil {
			return nil, err
		}
		best = benchRow{BenchResult: r}
	}
	for i, n := range gpus {
		r, err := kernels.Bench(ctx, n, d)
		if err != nil {
			return nil, fmt.Errorf("device opencl:%d: %w", n, err)
		}
		row := benchRow{BenchResult: r, VsStdlib: r.MHs / rows[0].MHs, Device: names[i],
			BestCPU: fmt.Sprintf("%s x%d", best.Impl, best.Threads)}
		if best.MHs > 0 {
			row.VsBestCPU = r.MHs / best.MHs
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// printOpenCLRows prints the OpenCL results under the CPU table: their
// columns differ (a device has no thread count).
func printOpenCLRows(rows []benchRow) {
	for _, r := range rows {
		if r.Device == "" {
			continue
		}
		fmt.Printf("%s (%s): %.2f MH/s, %.2f× stdlib at 1 thread", r.Impl, r.Device, r.MHs, r.VsStdlib)
		if r.VsBestCPU > 0 {
			fmt.Printf(", %.2f× the CPU's fastest (%s)", r.VsBestCPU, r.BestCPU)
		}
		fmt.Println()
	}
}
