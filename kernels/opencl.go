//go:build opencl

package kernels

/*
#cgo linux LDFLAGS: -lOpenCL
#cgo darwin LDFLAGS: -framework OpenCL
// 1.2 is the newest API every current driver (PoCL, NVIDIA, AMD, Intel,
// Apple) implements; the host uses nothing newer, and the kernel is 1.1.
#define CL_TARGET_OPENCL_VERSION 120
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif
#include <stdlib.h>

// Kernel arguments by value: the C side takes the address, so no Go
// pointer crosses into the driver.
static cl_int set_uint_arg(cl_kernel k, cl_uint i, cl_uint v) { return clSetKernelArg(k, i, sizeof v, &v); }
static cl_int set_mem_arg(cl_kernel k, cl_uint i, cl_mem m) { return clSetKernelArg(k, i, sizeof m, &m); }
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/worker/sha256d"
)

// Enabled reports whether this build has the OpenCL host.
const Enabled = true

// clError is a failed OpenCL call.
type clError struct {
	op   string
	code C.cl_int
}

func (e *clError) Error() string {
	if name, ok := clErrorNames[int(e.code)]; ok {
		return fmt.Sprintf("%s: %s (%d)", e.op, name, int(e.code))
	}
	return fmt.Sprintf("%s: OpenCL error %d", e.op, int(e.code))
}

// clErrorNames covers the codes a miner's calls can return.
var clErrorNames = map[int]string{
	-1: "CL_DEVICE_NOT_FOUND", -2: "CL_DEVICE_NOT_AVAILABLE", -3: "CL_COMPILER_NOT_AVAILABLE",
	-4: "CL_MEM_OBJECT_ALLOCATION_FAILURE", -5: "CL_OUT_OF_RESOURCES", -6: "CL_OUT_OF_HOST_MEMORY",
	-11: "CL_BUILD_PROGRAM_FAILURE", -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
	-30: "CL_INVALID_VALUE", -32: "CL_INVALID_PLATFORM", -33: "CL_INVALID_DEVICE", -34: "CL_INVALID_CONTEXT",
	-36: "CL_INVALID_COMMAND_QUEUE", -38: "CL_INVALID_MEM_OBJECT", -44: "CL_INVALID_PROGRAM",
	-45: "CL_INVALID_PROGRAM_EXECUTABLE", -46: "CL_INVALID_KERNEL_NAME", -48: "CL_INVALID_KERNEL",
	-49: "CL_INVALID_ARG_INDEX", -50: "CL_INVALID_ARG_VALUE", -51: "CL_INVALID_ARG_SIZE",
	-52: "CL_INVALID_KERNEL_ARGS", -54: "CL_INVALID_WORK_GROUP_SIZE", -55: "CL_INVALID_WORK_ITEM_SIZE",
	-58: "CL_INVALID_EVENT", -63: "CL_INVALID_GLOBAL_WORK_SIZE",
	-1001: "CL_PLATFORM_NOT_FOUND_KHR",
}

func check(op string, rc C.cl_int) error {
	if rc == C.CL_SUCCESS {
		return nil
	}
	return &clError{op, rc}
}

// errNoPlatform explains the usual reason for an empty platform list.
var errNoPlatform = errors.New("no OpenCL platform found: no driver is registered with the ICD loader " +
	"(/etc/OpenCL/vendors/*.icd); install a vendor driver, or PoCL for the CPU (Debian: apt-get install pocl-opencl-icd)")

// deviceRef is one enumerated device.
type deviceRef struct {
	id   C.cl_device_id
	info DeviceInfo
}

// enumerate lists every device of every platform, numbering them in the
// loader's order so opencl:N is stable for a given set of drivers.
func enumerate() ([]deviceRef, error) {
	var n C.cl_uint
	rc := C.clGetPlatformIDs(0, nil, &n)
	if rc == -1001 || (rc == C.CL_SUCCESS && n == 0) {
		return nil, errNoPlatform
	}
	if err := check("clGetPlatformIDs", rc); err != nil {
		return nil, err
	}
	plats := make([]C.cl_platform_id, n)
	if err := check("clGetPlatformIDs", C.clGetPlatformIDs(n, &plats[0], nil)); err != nil {
		return nil, err
	}
	var out []deviceRef
	for _, p := range plats {
		pname := platformString(p, C.CL_PLATFORM_NAME)
		var nd C.cl_uint
		rc := C.clGetDeviceIDs(p, C.CL_DEVICE_TYPE_ALL, 0, nil, &nd)
		if rc == C.CL_DEVICE_NOT_FOUND || nd == 0 {
			continue // a platform with no device is not an error
		}
		if err := check("clGetDeviceIDs", rc); err != nil {
			return nil, fmt.Errorf("platform %q: %w", pname, err)
		}
		ids := make([]C.cl_device_id, nd)
		if err := check("clGetDeviceIDs", C.clGetDeviceIDs(p, C.CL_DEVICE_TYPE_ALL, nd, &ids[0], nil)); err != nil {
			return nil, fmt.Errorf("platform %q: %w", pname, err)
		}
		for _, id := range ids {
			out = append(out, deviceRef{id, describe(len(out), pname, id)})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("OpenCL platforms found, but none has a device")
	}
	return out, nil
}

func describe(index int, platform string, id C.cl_device_id) DeviceInfo {
	var typ C.cl_device_type
	C.clGetDeviceInfo(id, C.CL_DEVICE_TYPE, C.size_t(unsafe.Sizeof(typ)), unsafe.Pointer(&typ), nil)
	var cu, clock C.cl_uint
	C.clGetDeviceInfo(id, C.CL_DEVICE_MAX_COMPUTE_UNITS, C.size_t(unsafe.Sizeof(cu)), unsafe.Pointer(&cu), nil)
	C.clGetDeviceInfo(id, C.CL_DEVICE_MAX_CLOCK_FREQUENCY, C.size_t(unsafe.Sizeof(clock)), unsafe.Pointer(&clock), nil)
	var mem C.cl_ulong
	C.clGetDeviceInfo(id, C.CL_DEVICE_GLOBAL_MEM_SIZE, C.size_t(unsafe.Sizeof(mem)), unsafe.Pointer(&mem), nil)
	t := "other"
	switch {
	case typ&C.CL_DEVICE_TYPE_GPU != 0:
		t = "GPU"
	case typ&C.CL_DEVICE_TYPE_CPU != 0:
		t = "CPU"
	case typ&C.CL_DEVICE_TYPE_ACCELERATOR != 0:
		t = "accelerator"
	}
	return DeviceInfo{
		Index: index, Platform: platform, Type: t,
		Name:           deviceString(id, C.CL_DEVICE_NAME),
		Vendor:         deviceString(id, C.CL_DEVICE_VENDOR),
		Version:        deviceString(id, C.CL_DEVICE_VERSION),
		Driver:         deviceString(id, C.CL_DRIVER_VERSION),
		ComputeUnits:   int(cu),
		ClockMHz:       int(clock),
		GlobalMemBytes: uint64(mem),
	}
}

func platformString(p C.cl_platform_id, param C.cl_platform_info) string {
	return infoString(func(size C.size_t, value unsafe.Pointer, sizeRet *C.size_t) C.cl_int {
		return C.clGetPlatformInfo(p, param, size, value, sizeRet)
	})
}

func deviceString(id C.cl_device_id, param C.cl_device_info) string {
	return infoString(func(size C.size_t, value unsafe.Pointer, sizeRet *C.size_t) C.cl_int {
		return C.clGetDeviceInfo(id, param, size, value, sizeRet)
	})
}

// infoString reads a string with OpenCL's two-call clGet*Info protocol: the
// size first, then the value ("" on any error).
func infoString(get func(size C.size_t, value unsafe.Pointer, sizeRet *C.size_t) C.cl_int) string {
	var size C.size_t
	if get(0, nil, &size) != C.CL_SUCCESS || size == 0 {
		return ""
	}
	buf := make([]byte, size)
	if get(size, unsafe.Pointer(&buf[0]), nil) != C.CL_SUCCESS {
		return ""
	}
	return cString(buf)
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// Devices lists every OpenCL device.
func Devices() ([]DeviceInfo, error) {
	refs, err := enumerate()
	if err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, len(refs))
	for i, r := range refs {
		out[i] = r.info
	}
	return out, nil
}

// Device is an opened OpenCL device: a context, the built program and the
// tuned launch size. Devices are opened once per process and never closed,
// because building the program is the slow part (seconds on PoCL, which
// compiles through LLVM) and every scanner on the device can share it.
type Device struct {
	info  DeviceInfo
	id    C.cl_device_id
	ctx   C.cl_context
	prog  C.cl_program
	vec   int     // nonces per work-item: the kernel's VEC
	local int     // work-group size in work-items
	batch uint64  // nonces per launch, tuned to launchTarget
	rate  float64 // H/s measured while tuning
}

var (
	openMu sync.Mutex
	opened = map[int]*Device{}
)

// Open returns device index (the N of opencl:N), building the kernel and
// tuning the launch size on first use in this process.
func Open(index int) (*Device, error) {
	openMu.Lock()
	defer openMu.Unlock()
	if d := opened[index]; d != nil {
		return d, nil
	}
	refs, err := enumerate()
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= len(refs) {
		return nil, fmt.Errorf("no OpenCL device %d (this machine has %d: see 'hashforge devices')", index, len(refs))
	}
	d := &Device{info: refs[index].info, id: refs[index].id}
	if d.vec, err = vectorWidth(d.id, d.info.Type); err != nil {
		return nil, fmt.Errorf("opencl:%d (%s): %w", index, d.info.Name, err)
	}
	if err := d.build(); err != nil {
		d.release()
		return nil, fmt.Errorf("opencl:%d (%s): %w", index, d.info.Name, err)
	}
	if err := d.tune(); err != nil {
		d.release()
		return nil, fmt.Errorf("opencl:%d (%s): tune launch size: %w", index, d.info.Name, err)
	}
	opened[index] = d
	return d, nil
}

// EnvVector names the environment variable that overrides the nonces per
// work-item (1, 2, 4, 8 or 16), for tuning a driver the default suits badly.
const EnvVector = "HASHFORGE_OPENCL_VECTOR"

// vectorWidth picks the kernel's VEC. GPUs are SIMT machines whose lanes
// are work-items, so vectors there only add register pressure: 1. CPU
// devices (PoCL, Intel's and AMD's CPU runtimes) get their native int
// vector width, which is what makes their SIMD units do the work.
func vectorWidth(id C.cl_device_id, typ string) (int, error) {
	if v := os.Getenv(EnvVector); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 1 && n != 2 && n != 4 && n != 8 && n != 16) {
			return 0, fmt.Errorf("%s=%q: want 1, 2, 4, 8 or 16", EnvVector, v)
		}
		return n, nil
	}
	if typ != "CPU" {
		return 1, nil
	}
	var w C.cl_uint
	if C.clGetDeviceInfo(id, C.CL_DEVICE_NATIVE_VECTOR_WIDTH_INT, C.size_t(unsafe.Sizeof(w)), unsafe.Pointer(&w), nil) != C.CL_SUCCESS {
		return 1, nil
	}
	n := 1
	for n*2 <= int(w) && n < 16 {
		n *= 2
	}
	return n, nil
}

// Vector is the number of nonces each work-item hashes.
func (d *Device) Vector() int { return d.vec }

// Info describes the device.
func (d *Device) Info() DeviceInfo { return d.info }

// Batch is the tuned number of nonces per kernel launch.
func (d *Device) Batch() uint64 { return d.batch }

// Rate is the hash rate (H/s) measured while tuning, a starting estimate
// for how much work to give the device.
func (d *Device) Rate() float64 { return d.rate }

func (d *Device) release() {
	if d.prog != nil {
		C.clReleaseProgram(d.prog)
	}
	if d.ctx != nil {
		C.clReleaseContext(d.ctx)
	}
}

func (d *Device) build() error {
	var rc C.cl_int
	d.ctx = C.clCreateContext(nil, 1, &d.id, nil, nil, &rc)
	if err := check("clCreateContext", rc); err != nil {
		return err
	}
	src := C.CString(Source)
	defer C.free(unsafe.Pointer(src))
	length := C.size_t(len(Source))
	d.prog = C.clCreateProgramWithSource(d.ctx, 1, &src, &length, &rc)
	if err := check("clCreateProgramWithSource", rc); err != nil {
		return err
	}
	opts := C.CString(fmt.Sprintf("-D VEC=%d", d.vec))
	defer C.free(unsafe.Pointer(opts))
	if rc := C.clBuildProgram(d.prog, 1, &d.id, opts, nil, nil); rc != C.CL_SUCCESS {
		err := &clError{"clBuildProgram", rc}
		if log := d.buildLog(); log != "" {
			return fmt.Errorf("%w; compiler log:\n%s", err, log)
		}
		return err
	}
	return nil
}

func (d *Device) buildLog() string {
	var size C.size_t
	if C.clGetProgramBuildInfo(d.prog, d.id, C.CL_PROGRAM_BUILD_LOG, 0, nil, &size) != C.CL_SUCCESS || size == 0 {
		return ""
	}
	buf := make([]byte, size)
	if C.clGetProgramBuildInfo(d.prog, d.id, C.CL_PROGRAM_BUILD_LOG, size, unsafe.Pointer(&buf[0]), nil) != C.CL_SUCCESS {
		return ""
	}
	return cString(buf)
}

// tune picks the work-group size and the launch size. The launch size
// doubles from a small start until one launch takes at least launchMin, then
// scales to launchTarget; the first launch only warms up, because PoCL (and
// some vendor drivers) finish compiling for a work-group size on the first
// enqueue with it.
func (d *Device) tune() error {
	s, err := d.newScanner(defaultSlots)
	if err != nil {
		return err
	}
	defer s.Close()

	var wg, mult C.size_t
	if err := check("clGetKernelWorkGroupInfo", C.clGetKernelWorkGroupInfo(s.kern, d.id, C.CL_KERNEL_WORK_GROUP_SIZE,
		C.size_t(unsafe.Sizeof(wg)), unsafe.Pointer(&wg), nil)); err != nil {
		return err
	}
	if C.clGetKernelWorkGroupInfo(s.kern, d.id, C.CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
		C.size_t(unsafe.Sizeof(mult)), unsafe.Pointer(&mult), nil) != C.CL_SUCCESS || mult == 0 {
		mult = 1
	}
	// 256 items fill a GPU compute unit several wavefronts deep and give
	// PoCL long work-item loops; stay a multiple of the preferred size and
	// within what the compiled kernel allows.
	local := min(256, int(wg))
	if m := int(mult); local >= m {
		local -= local % m
	}
	d.local = max(local, 1)

	// Tune on a job no nonce can meet (a zero target): steady-state mining.
	var hdr [80]byte
	for i := range hdr {
		hdr[i] = byte(i*29 + 7)
	}
	var target [32]byte
	w := sha256d.NewWork(&hdr, &target)
	timeLaunch := func(n uint64) (time.Duration, error) {
		start := time.Now()
		_, _, err := s.scanBatches(w, 0, uint32(n-1), nil, nil, n)
		return time.Since(start), err
	}
	// A launch is a whole number of work-groups.
	group := uint64(d.local * d.vec)
	n := group * 16
	if _, err := timeLaunch(n); err != nil {
		return err
	}
	for {
		// The faster of two runs: a launch that waited for the CPU
		// (other processes, PoCL's own threads starting) says nothing
		// about the device.
		el, err := timeLaunch(n)
		if err != nil {
			return err
		}
		if el2, err := timeLaunch(n); err != nil {
			return err
		} else if el2 < el {
			el = el2
		}
		if el >= launchMin || n >= maxBatch {
			n = uint64(float64(n) * float64(launchTarget) / float64(max(el, time.Microsecond)))
			n = min(max(n, group), maxBatch)
			d.batch = n - n%group
			break
		}
		// Grow fast while launches are short, but never past the target
		// by more than the measurement can be trusted.
		n *= min(8, max(2, uint64(launchTarget/max(el, time.Microsecond))))
	}
	// Measure the chosen size: this rate seeds the miner's slice sizes and
	// is the number the tuning log reports.
	el, err := timeLaunch(d.batch)
	if err != nil {
		return err
	}
	d.rate = float64(d.batch) / el.Seconds()
	return nil
}

// Scanner runs the kernel on one device. Each scanner has its own command
// queue, kernel object and buffers, so several can share a device; one
// scanner is not safe for concurrent use.
type Scanner struct {
	d     *Device
	queue C.cl_command_queue
	kern  C.cl_kernel
	slots uint32
	// batch overrides the device's tuned launch size (tests); 0 means tuned.
	batch uint64
	ring  [2]launch
	zero  *C.cl_uint // a C-owned 0 the counter resets are copied from

	work   *sha256d.Work
	target [32]byte
	hi     uint32
	cpu    sha256d.Scanner // for the rare overflowing launch

	faults uint64
}

// launch is one kernel call in flight: its output buffer, the host copy
// (C memory, because the non-blocking read writes it after the enqueue
// call has returned) and the read's completion event.
type launch struct {
	buf   C.cl_mem
	host  *C.cl_uint
	ev    C.cl_event
	first uint32
	n     uint64
	busy  bool
}

// NewScanner creates a scanner on the device.
func (d *Device) NewScanner() (*Scanner, error) { return d.newScanner(defaultSlots) }

func (d *Device) newScanner(slots uint32) (_ *Scanner, err error) {
	s := &Scanner{d: d, slots: slots}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var rc C.cl_int
	s.queue = C.clCreateCommandQueue(d.ctx, d.id, 0, &rc)
	if err := check("clCreateCommandQueue", rc); err != nil {
		return nil, err
	}
	name := C.CString("sha256d_scan")
	defer C.free(unsafe.Pointer(name))
	s.kern = C.clCreateKernel(d.prog, name, &rc)
	if err := check("clCreateKernel", rc); err != nil {
		return nil, err
	}
	words := C.size_t(1 + slots)
	for i := range s.ring {
		l := &s.ring[i]
		l.buf = C.clCreateBuffer(d.ctx, C.CL_MEM_READ_WRITE, words*4, nil, &rc)
		if err := check("clCreateBuffer", rc); err != nil {
			return nil, err
		}
		l.host = (*C.cl_uint)(C.calloc(words, 4))
		if l.host == nil {
			return nil, errors.New("allocate candidate buffer: out of memory")
		}
	}
	s.zero = (*C.cl_uint)(C.calloc(1, 4))
	if s.zero == nil {
		return nil, errors.New("allocate counter reset word: out of memory")
	}
	if err := check("clSetKernelArg(slots)", C.set_uint_arg(s.kern, argSlots, C.cl_uint(slots))); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the scanner's OpenCL objects. It waits for launches still
// queued, so the driver never writes into freed memory.
func (s *Scanner) Close() {
	if s.queue != nil {
		C.clFinish(s.queue)
	}
	for i := range s.ring {
		l := &s.ring[i]
		if l.ev != nil {
			C.clReleaseEvent(l.ev)
			l.ev = nil
		}
		if l.buf != nil {
			C.clReleaseMemObject(l.buf)
			l.buf = nil
		}
		if l.host != nil {
			C.free(unsafe.Pointer(l.host))
			l.host = nil
		}
	}
	if s.zero != nil {
		C.free(unsafe.Pointer(s.zero))
		s.zero = nil
	}
	if s.kern != nil {
		C.clReleaseKernel(s.kern)
		s.kern = nil
	}
	if s.queue != nil {
		C.clReleaseCommandQueue(s.queue)
		s.queue = nil
	}
}

// Faults counts candidates the kernel reported whose top word, hashed
// again on the CPU, was above the target's: a broken driver or device.
func (s *Scanner) Faults() uint64 { return s.faults }

// Scan hashes nonces first..last inclusive of w on the device and appends
// to found every nonce whose double SHA-256 meets w's target, each
// confirmed on the CPU. It returns the number of nonces hashed, which is
// less than the range when stop (checked before every launch; nil means
// never) asked to stop early. Two launches are kept in flight so the
// device does not idle while the host reads results.
func (s *Scanner) Scan(w *sha256d.Work, first, last uint32, found []uint32, stop func() bool) ([]uint32, uint64, error) {
	if first > last {
		return found, 0, nil
	}
	batch := s.batch
	if batch == 0 {
		batch = s.d.batch
	}
	return s.scanBatches(w, first, last, found, stop, batch)
}

func (s *Scanner) scanBatches(w *sha256d.Work, first, last uint32, found []uint32, stop func() bool, batch uint64) ([]uint32, uint64, error) {
	if err := s.setWork(w); err != nil {
		return found, 0, err
	}
	batch = min(batch, batchLimit(s.hi, s.slots))
	var (
		hashed uint64
		err    error
		k      int
	)
	end := uint64(last) + 1
	for next := uint64(first); next < end && err == nil; k++ {
		if stop != nil && stop() {
			break
		}
		l := &s.ring[k%len(s.ring)]
		if l.busy {
			if found, err = s.collect(l, found); err != nil {
				break
			}
			hashed += l.n
		}
		n := min(end-next, batch)
		if err = s.enqueue(l, uint32(next), n); err != nil {
			break
		}
		next += n
	}
	// Drain oldest first: ring[k%2] is the launch after the newest.
	for i := range len(s.ring) {
		l := &s.ring[(k+i)%len(s.ring)]
		if l.busy && err == nil {
			if found, err = s.collect(l, found); err == nil {
				hashed += l.n
			}
		}
	}
	if err != nil {
		s.reset()
	}
	return found, hashed, err
}

// reset forgets every launch after an error, once the queue is idle: a
// half-enqueued launch may still have a read pending into its host buffer.
func (s *Scanner) reset() {
	C.clFinish(s.queue)
	for i := range s.ring {
		l := &s.ring[i]
		if l.ev != nil {
			C.clReleaseEvent(l.ev)
			l.ev = nil
		}
		l.busy = false
	}
}

// setWork loads a job's arguments into the kernel. Arguments are captured
// at enqueue, so launches already queued keep the previous job's.
func (s *Scanner) setWork(w *sha256d.Work) error {
	if w == s.work {
		return nil
	}
	args := newJobArgs(w)
	for i, v := range args {
		if err := check("clSetKernelArg", C.set_uint_arg(s.kern, C.cl_uint(argJob+i), C.cl_uint(v))); err != nil {
			s.work = nil
			return err
		}
	}
	s.work, s.target, s.hi = w, w.Target(), args[0]
	return nil
}

func (s *Scanner) enqueue(l *launch, first uint32, n uint64) error {
	if err := check("clEnqueueWriteBuffer", C.clEnqueueWriteBuffer(s.queue, l.buf, C.CL_FALSE, 0, 4,
		unsafe.Pointer(s.zero), 0, nil, nil)); err != nil {
		return err
	}
	if err := check("clSetKernelArg(out)", C.set_mem_arg(s.kern, argOut, l.buf)); err != nil {
		return err
	}
	if err := check("clSetKernelArg(base)", C.set_uint_arg(s.kern, argBase, C.cl_uint(first))); err != nil {
		return err
	}
	if err := check("clSetKernelArg(count)", C.set_uint_arg(s.kern, argCount, C.cl_uint(n))); err != nil {
		return err
	}
	// The global size must be a multiple of the work-group size; the
	// kernel returns at once for the items past count.
	local := C.size_t(s.d.local)
	items := (C.size_t(n) + C.size_t(s.d.vec) - 1) / C.size_t(s.d.vec)
	global := (items + local - 1) / local * local
	if err := check("clEnqueueNDRangeKernel", C.clEnqueueNDRangeKernel(s.queue, s.kern, 1, nil, &global, &local,
		0, nil, nil)); err != nil {
		return err
	}
	if err := check("clEnqueueReadBuffer", C.clEnqueueReadBuffer(s.queue, l.buf, C.CL_FALSE, 0,
		C.size_t(1+s.slots)*4, unsafe.Pointer(l.host), 0, nil, &l.ev)); err != nil {
		return err
	}
	l.first, l.n, l.busy = first, n, true
	// Submit now: some drivers hold commands until a flush or a wait.
	return check("clFlush", C.clFlush(s.queue))
}

// collect waits for a launch and confirms its candidates on the CPU. If
// the kernel found more than the buffer holds, the whole launch range is
// rescanned on the CPU rather than trusting a partial list.
func (s *Scanner) collect(l *launch, found []uint32) ([]uint32, error) {
	err := check("clWaitForEvents", C.clWaitForEvents(1, &l.ev))
	C.clReleaseEvent(l.ev)
	l.ev, l.busy = nil, false
	if err != nil {
		return found, err
	}
	out := unsafe.Slice((*uint32)(unsafe.Pointer(l.host)), 1+s.slots)
	count := out[0]
	if count > s.slots {
		if s.cpu == nil {
			s.cpu = sha256d.Default().New()
		}
		return s.cpu.Scan(s.work, l.first, l.first+uint32(l.n-1), found), nil
	}
	hdr := s.work.Header()
	for _, nonce := range out[1 : 1+count] {
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		sum := pow.SHA256d(hdr[:])
		if sha256d.Meets(&sum, &s.target) {
			found = append(found, nonce)
		} else if binary.LittleEndian.Uint32(sum[28:]) > s.hi {
			s.faults++
		}
	}
	return found, nil
}

// Bench hashes on device index for about d on a job no nonce meets, the
// way sha256d.Bench measures the CPU kernels.
func Bench(ctx context.Context, index int, d time.Duration) (sha256d.BenchResult, error) {
	dev, err := Open(index)
	if err != nil {
		return sha256d.BenchResult{}, err
	}
	s, err := dev.NewScanner()
	if err != nil {
		return sha256d.BenchResult{}, fmt.Errorf("opencl:%d: %w", index, err)
	}
	defer s.Close()
	var hdr [80]byte
	for i := range hdr {
		hdr[i] = byte(i*37 + 11)
	}
	var target [32]byte
	w := sha256d.NewWork(&hdr, &target)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := func() bool { return ctx.Err() != nil }
	var (
		hashes uint64
		nonce  uint32
	)
	start := time.Now()
	for !stop() {
		// Chunks of a few launches keep both ring slots busy between the
		// clock checks.
		n := uint32(min(dev.batch*8, 1<<31))
		if uint64(nonce)+uint64(n) > 1<<32 {
			nonce = 0
		}
		_, h, err := s.Scan(w, nonce, nonce+n-1, nil, stop)
		if err != nil {
			return sha256d.BenchResult{}, fmt.Errorf("opencl:%d: %w", index, err)
		}
		hashes += h
		nonce += n
	}
	secs := time.Since(start).Seconds()
	if err := context.Cause(ctx); err != nil && err != context.DeadlineExceeded {
		return sha256d.BenchResult{}, err
	}
	mhs := float64(hashes) / secs / 1e6
	return sha256d.BenchResult{
		Impl: fmt.Sprintf("opencl:%d", index), Threads: 1, MHs: mhs, MHsPerThread: mhs,
		Hashes: hashes, Seconds: secs,
	}, nil
}
