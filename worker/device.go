package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/worker/sha256d"
)

// Device is anything that hashes: the CPU (all its threads) today, OpenCL
// devices later. Devices of very different speeds coexist because each one
// pulls its own slices from the WorkSource at its own pace.
type Device interface {
	Name() string
	// Run hashes until ctx is done. It returns nil on cancellation.
	Run(ctx context.Context, src WorkSource, res Results) error
}

// ErrNoOpenCL is returned for an opencl:N device in a build without the
// opencl tag.
var ErrNoOpenCL = errors.New("this build has no OpenCL support (rebuild with -tags opencl)")

// openCLDevice is set by the opencl build of the kernels host; nil here.
var openCLDevice func(index int, slicing Slicing) (Device, error)

// Slicing tunes how much work a device takes at a time.
type Slicing struct {
	// Duration is the scan time one slice should take at the device's
	// measured speed (default 100 ms): long enough to amortize the pull,
	// short enough that the cursor stays fair between devices.
	Duration time.Duration
	// Min and Max bound a slice in nonces (defaults 2^16 and 2^26).
	Min, Max uint64
}

func (s Slicing) withDefaults() Slicing {
	if s.Duration <= 0 {
		s.Duration = 100 * time.Millisecond
	}
	if s.Min == 0 {
		s.Min = 1 << 16
	}
	if s.Max == 0 {
		s.Max = 1 << 26
	}
	if s.Max < s.Min {
		s.Max = s.Min
	}
	return s
}

// size returns the slice size for a device hashing at rate H/s.
func (s Slicing) size(rate float64) uint64 {
	n := uint64(rate * s.Duration.Seconds())
	return min(max(n, s.Min), s.Max)
}

// ParseDevices turns a --device list ("cpu", "opencl:0", "cpu,opencl:1")
// into devices.
func ParseDevices(spec string, threads int, impl string, slicing Slicing) ([]Device, error) {
	if strings.TrimSpace(spec) == "" {
		spec = "cpu"
	}
	var devs []Device
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			continue
		}
		if seen[part] {
			return nil, fmt.Errorf("device %q listed twice", part)
		}
		seen[part] = true
		switch {
		case part == "cpu":
			d, err := NewCPUDevice(threads, impl, slicing)
			if err != nil {
				return nil, err
			}
			devs = append(devs, d)
		case strings.HasPrefix(part, "opencl:"):
			idx, err := strconv.Atoi(strings.TrimPrefix(part, "opencl:"))
			if err != nil || idx < 0 {
				return nil, fmt.Errorf("device %q: want opencl:N with N a device index", part)
			}
			if openCLDevice == nil {
				return nil, fmt.Errorf("device %q: %w", part, ErrNoOpenCL)
			}
			d, err := openCLDevice(idx, slicing)
			if err != nil {
				return nil, fmt.Errorf("device %q: %w", part, err)
			}
			devs = append(devs, d)
		default:
			return nil, fmt.Errorf("unknown device %q (want cpu or opencl:N)", part)
		}
	}
	if len(devs) == 0 {
		return nil, errors.New("no device selected")
	}
	return devs, nil
}

// CPUDevice hashes on Threads goroutines, each with its own scanner and its
// own slices, so threads never contend except for one short lock per slice.
type CPUDevice struct {
	threads int
	impl    sha256d.Implementation
	slicing Slicing
}

// NewCPUDevice returns the CPU device. threads ≤ 0 means every core; impl ""
// means the best implementation for this CPU.
func NewCPUDevice(threads int, impl string, slicing Slicing) (*CPUDevice, error) {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var im sha256d.Implementation
	if impl == "" {
		var err error
		if im, err = sha256d.Configured(); err != nil {
			return nil, err
		}
	} else {
		var err error
		if im, err = sha256d.Lookup(impl); err != nil {
			return nil, err
		}
	}
	return &CPUDevice{threads: threads, impl: im, slicing: slicing.withDefaults()}, nil
}

// Name implements Device.
func (d *CPUDevice) Name() string { return "cpu" }

// Threads is the number of hashing goroutines.
func (d *CPUDevice) Threads() int { return d.threads }

// Implementation is the SHA-256d kernel in use.
func (d *CPUDevice) Implementation() string { return d.impl.Name }

// Run implements Device.
func (d *CPUDevice) Run(ctx context.Context, src WorkSource, res Results) error {
	var wg sync.WaitGroup
	for range d.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.thread(ctx, src, res)
		}()
	}
	wg.Wait()
	return nil
}

// thread scans slices in short chunks, checking between chunks whether the
// work went stale, so a clean job stops old work within a few milliseconds
// even though a slice lasts ~100 ms.
func (d *CPUDevice) thread(ctx context.Context, src WorkSource, res Results) {
	sc := d.impl.New()
	var (
		rate  float64 // this thread's H/s, smoothed
		found []uint32
	)
	for ctx.Err() == nil {
		sl, err := src.Next(ctx, d.slicing.size(rate))
		if err != nil {
			return
		}
		w := sha256d.NewWork(&sl.Header, &sl.Target)
		// ~5 ms chunks at the measured speed; the floor keeps call overhead
		// negligible before the first measurement.
		chunk := uint64(max(rate/200, 4096))
		start := time.Now()
		var done uint64
		for first := uint64(sl.First); first <= uint64(sl.Last); first += chunk {
			if ctx.Err() != nil || src.Stale(sl) {
				break
			}
			last := min(first+chunk-1, uint64(sl.Last))
			found = sc.Scan(w, uint32(first), uint32(last), found[:0])
			n := last - first + 1
			done += n
			res.Hashed(n)
			for _, nonce := range found {
				res.Found(sl, nonce)
			}
		}
		if el := time.Since(start).Seconds(); el > 0 && done > 0 {
			r := float64(done) / el
			if rate == 0 {
				rate = r
			} else {
				rate = 0.7*rate + 0.3*r
			}
		}
	}
}
