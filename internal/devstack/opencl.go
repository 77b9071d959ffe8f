package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// OpenCLPackages are the Debian packages that give a GPU-less machine a
// working OpenCL stack: PoCL (an OpenCL implementation that runs kernels on
// the CPU) and the ICD loader with its headers and libOpenCL.so, which the
// cgo host in kernels/ compiles and links against.
var OpenCLPackages = []string{"pocl-opencl-icd", "ocl-icd-opencl-dev"}

// OpenCLStatus is what FindOpenCL saw. Each part is needed for a different
// step: the header to compile the cgo host, the library to link it, an ICD
// (a vendor driver registration) for clGetPlatformIDs to find any device.
type OpenCLStatus struct {
	Header  string   // path of CL/cl.h, "" when missing
	Library string   // path of libOpenCL.so, "" when missing
	ICDs    []string // registered vendor drivers (*.icd files)
}

// Missing lists what is absent, for error messages.
func (s OpenCLStatus) Missing() []string {
	var m []string
	if s.Header == "" {
		m = append(m, "OpenCL headers (CL/cl.h)")
	}
	if s.Library == "" {
		m = append(m, "the ICD loader library (libOpenCL.so)")
	}
	if len(s.ICDs) == 0 {
		m = append(m, "an OpenCL driver (no *.icd in "+icdDir()+")")
	}
	return m
}

// Complete reports whether a `-tags opencl` build can compile, link and
// find at least one platform.
func (s OpenCLStatus) Complete() bool { return len(s.Missing()) == 0 }

// icdDir is where the Khronos/ocl-icd loader looks for drivers; ocl-icd
// honours OCL_ICD_VENDORS as an override, so detection must too.
func icdDir() string {
	if d := os.Getenv("OCL_ICD_VENDORS"); d != "" {
		return d
	}
	return "/etc/OpenCL/vendors"
}

// FindOpenCL looks for the pieces without running anything: no clinfo (it
// is not installed on a bare machine), no cgo (this package is cgo-free).
func FindOpenCL() OpenCLStatus {
	var s OpenCLStatus
	for _, p := range []string{"/usr/include/CL/cl.h", "/usr/local/include/CL/cl.h"} {
		if fileExists(p) {
			s.Header = p
			break
		}
	}
	// Debian's multiarch dirs first; the unversioned .so is what the
	// linker wants and only the -dev package ships it.
	var libs []string
	for _, pat := range []string{"/usr/lib/*/libOpenCL.so", "/usr/lib/libOpenCL.so", "/usr/lib64/libOpenCL.so", "/usr/local/lib/libOpenCL.so"} {
		m, _ := filepath.Glob(pat)
		libs = append(libs, m...)
	}
	for _, p := range libs {
		if fileExists(p) {
			s.Library = p
			break
		}
	}
	dir := icdDir()
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		s.ICDs = []string{dir} // OCL_ICD_VENDORS may name one file
	} else {
		s.ICDs, _ = filepath.Glob(filepath.Join(dir, "*.icd"))
	}
	return s
}

func fileExists(p string) bool {
	fi, err := os.Stat(p) // follows symlinks: a dangling libOpenCL.so is missing
	return err == nil && !fi.IsDir()
}

// EnsureOpenCL returns the OpenCL stack, installing PoCL and the ICD loader
// with apt-get when something is missing and the process runs as root (the
// way FindChromium and StartPostgres install what they need, so `make test`
// needs nothing done by hand). Elsewhere it returns an error that says what
// is missing and how to install it.
func EnsureOpenCL(ctx context.Context, log *slog.Logger) (OpenCLStatus, error) {
	if log == nil {
		log = slog.Default()
	}
	s := FindOpenCL()
	if s.Complete() {
		return s, nil
	}
	missing := strings.Join(s.Missing(), ", ")
	how := "apt-get install " + strings.Join(OpenCLPackages, " ")
	if os.Geteuid() != 0 {
		return s, fmt.Errorf("OpenCL is not usable: missing %s; install it (Debian/Ubuntu: %s, or a vendor driver)", missing, how)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return s, fmt.Errorf("OpenCL is not usable: missing %s, and apt-get is unavailable to install %s", missing, strings.Join(OpenCLPackages, " "))
	}

	log.Info("devstack: OpenCL incomplete, installing PoCL with apt-get", "missing", missing)
	if err := aptInstall(ctx, log, func() bool { return FindOpenCL().Complete() }, false, OpenCLPackages...); err != nil {
		return s, err
	}
	if s = FindOpenCL(); !s.Complete() {
		return s, errors.New("installed " + strings.Join(OpenCLPackages, " ") + " but still missing " + strings.Join(s.Missing(), ", "))
	}
	log.Info("devstack: OpenCL ready", "icd", strings.Join(s.ICDs, " "), "lib", s.Library)
	return s, nil
}
