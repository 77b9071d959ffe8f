package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashforge/hashforge/worker/sha256d"
)

// benchRow is one line of `hashforge bench` output.
type benchRow struct {
	sha256d.BenchResult
	VsStdlib float64 `json:"vs_stdlib"` // MH/s over the stdlib loop at the same thread count
}

// cmdBench measures every SHA-256d implementation (or one) against the
// stdlib baseline, measured in the same run so the ratio is fair.
func cmdBench(args []string) error {
	fs := newFlagSet("bench", "[--impl NAME|all] [--threads N] [--seconds S] [--json]")
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

	var names []string
	if *impl == "all" {
		for _, im := range sha256d.Available() {
			names = append(names, im.Name)
		}
	} else {
		if _, err := sha256d.Lookup(*impl); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		names = []string{*impl}
	}
	counts := []int{1}
	if *threads > 1 {
		counts = append(counts, *threads)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	model, features := sha256d.CPUInfo()
	def, defErr := sha256d.Configured()
	if !*asJSON {
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
		rows = append(rows, benchRow{base, 1})
		for _, name := range names {
			r, err := sha256d.Bench(ctx, name, n, d)
			if err != nil {
				return err
			}
			rows = append(rows, benchRow{r, r.MHs / base.MHs})
		}
	}

	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tthreads\tMH/s\tMH/s/thread\t× stdlib\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t\n", r.Impl, r.Threads, r.MHs, r.MHsPerThread, r.VsStdlib)
	}
	if len(counts) > 1 {
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
	return tw.Flush()
}
