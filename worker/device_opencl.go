//go:build opencl

package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashforge/hashforge/kernels"
	"github.com/hashforge/hashforge/worker/sha256d"
)

func init() {
	openCLDevice = func(index int, slicing Slicing) (Device, error) { return NewOpenCLDevice(index, slicing) }
}

// OpenCLDevice mines on one OpenCL device (--device opencl:N). One host
// goroutine feeds it: the kernel host keeps two launches in flight, which
// is enough to keep a device busy at ~30 ms per launch.
type OpenCLDevice struct {
	index   int
	dev     *kernels.Device
	slicing Slicing
}

// NewOpenCLDevice opens device index (building and tuning the kernel, which
// takes seconds on PoCL the first time in a process).
func NewOpenCLDevice(index int, slicing Slicing) (*OpenCLDevice, error) {
	dev, err := kernels.Open(index)
	if err != nil {
		return nil, err
	}
	return &OpenCLDevice{index: index, dev: dev, slicing: slicing.withDefaults()}, nil
}

// Name implements Device.
func (d *OpenCLDevice) Name() string { return fmt.Sprintf("opencl:%d", d.index) }

// Info describes the OpenCL device.
func (d *OpenCLDevice) Info() kernels.DeviceInfo { return d.dev.Info() }

// Run implements Device. Slices are sized to Slicing.Duration at the
// measured rate, but never below two launches, so the launch ring stays
// full; stale work is noticed between launches (within ~2 launch times).
func (d *OpenCLDevice) Run(ctx context.Context, src WorkSource, res Results) error {
	sc, err := d.dev.NewScanner()
	if err != nil {
		return err
	}
	defer sc.Close()
	rate := d.dev.Rate()
	var found []uint32
	var faults uint64
	for ctx.Err() == nil {
		size := max(d.slicing.size(rate), 2*d.dev.Batch())
		sl, err := src.Next(ctx, size)
		if err != nil {
			return nil // cancelled
		}
		w := sha256d.NewWork(&sl.Header, &sl.Target)
		start := time.Now()
		var hashed uint64
		found, hashed, err = sc.Scan(w, sl.First, sl.Last, found[:0], func() bool {
			return ctx.Err() != nil || src.Stale(sl)
		})
		res.Hashed(hashed)
		for _, nonce := range found {
			res.Found(sl, nonce)
		}
		if f := sc.Faults(); f != faults {
			res.HWErrors(f - faults)
			faults = f
		}
		if err != nil {
			return err
		}
		if el := time.Since(start).Seconds(); el > 0 && hashed > 0 {
			rate = 0.7*rate + 0.3*float64(hashed)/el
		}
	}
	return nil
}
