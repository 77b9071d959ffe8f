//go:build opencl

package worker

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// oneSlice is a WorkSource with a single slice; after it, Next blocks
// until the context ends, like a scheduler whose work ran out.
type oneSlice struct {
	mu    sync.Mutex
	sl    *Slice
	taken chan struct{}
	stale bool
}

func (o *oneSlice) Next(ctx context.Context, size uint64) (*Slice, error) {
	o.mu.Lock()
	sl := o.sl
	o.sl = nil
	o.mu.Unlock()
	if sl != nil {
		close(o.taken)
		return sl, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (o *oneSlice) Stale(*Slice) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stale
}

type collect struct {
	mu     sync.Mutex
	found  []uint32
	hashed uint64
}

func (c *collect) Found(_ *Slice, nonce uint32) {
	c.mu.Lock()
	c.found = append(c.found, nonce)
	c.mu.Unlock()
}

func (c *collect) HWErrors(uint64) {}

func (c *collect) Hashed(n uint64) {
	c.mu.Lock()
	c.hashed += n
	c.mu.Unlock()
}

func TestOpenCLDeviceParsed(t *testing.T) {
	devtest.OpenCL(t)
	devs, err := ParseDevices("cpu,opencl:0", 1, "", Slicing{})
	if err != nil {
		t.Fatalf("cpu,opencl:0: %v", err)
	}
	if len(devs) != 2 || devs[0].Name() != "cpu" || devs[1].Name() != "opencl:0" {
		t.Fatalf("cpu,opencl:0 gave %v", devs)
	}
	if _, err := ParseDevices("opencl:99", 1, "", Slicing{}); err == nil {
		t.Fatal("opencl:99 accepted")
	}
}

// TestOpenCLDeviceFindsWhatCPUFinds runs the device on one slice and
// checks it reports exactly the CPU kernel's winners and every nonce hashed.
func TestOpenCLDeviceFindsWhatCPUFinds(t *testing.T) {
	devtest.OpenCL(t)
	d, err := NewOpenCLDevice(0, Slicing{})
	if err != nil {
		t.Fatal(err)
	}
	var hdr [80]byte
	for i := range hdr {
		hdr[i] = byte(i * 13)
	}
	var target [32]byte
	for i := range target {
		target[i] = 0xff
	}
	binary.LittleEndian.PutUint32(target[28:], 1<<20) // ~1 in 4096 nonces
	sl := &Slice{Header: hdr, Target: target, First: 1 << 20, Last: 1<<20 + 1<<18 - 1}
	im, err := sha256d.Lookup("generic")
	if err != nil {
		t.Fatal(err)
	}
	want := im.New().Scan(sha256d.NewWork(&hdr, &target), sl.First, sl.Last, nil)

	src := &oneSlice{sl: sl, taken: make(chan struct{})}
	var res collect
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, src, &res) }()
	// The slice is done once every nonce is counted.
	for deadline := time.Now().Add(time.Minute); ; {
		res.mu.Lock()
		h := res.hashed
		res.mu.Unlock()
		if h >= sl.Nonces() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.hashed != sl.Nonces() {
		t.Fatalf("hashed %d nonces, want %d", res.hashed, sl.Nonces())
	}
	slices.Sort(res.found)
	slices.Sort(want)
	if !slices.Equal(res.found, want) || len(want) == 0 {
		t.Fatalf("device found %v, CPU %v", res.found, want)
	}
}

// TestOpenCLDeviceStopsOnStaleWork: a slice that goes stale is abandoned
// at the next launch boundary instead of being scanned to the end.
func TestOpenCLDeviceStopsOnStaleWork(t *testing.T) {
	devtest.OpenCL(t)
	d, err := NewOpenCLDevice(0, Slicing{})
	if err != nil {
		t.Fatal(err)
	}
	var hdr [80]byte
	var target [32]byte
	sl := &Slice{Header: hdr, Target: target, First: 0, Last: ^uint32(0)} // minutes of work on PoCL
	src := &oneSlice{sl: sl, taken: make(chan struct{})}
	var res collect
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, src, &res) }()
	<-src.taken
	time.Sleep(100 * time.Millisecond)
	src.mu.Lock()
	src.stale = true
	src.mu.Unlock()
	// Run goes back to Next, which blocks: the scan has stopped when the
	// hash count stops moving.
	var last uint64
	for deadline := time.Now().Add(30 * time.Second); ; {
		time.Sleep(200 * time.Millisecond)
		res.mu.Lock()
		h := res.hashed
		res.mu.Unlock()
		if h == last && h > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device still hashing stale work: %d nonces", h)
		}
		last = h
	}
	if last >= sl.Nonces() {
		t.Fatalf("stale slice scanned to the end")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
