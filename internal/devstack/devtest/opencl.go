package devtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
)

var (
	openclOnce sync.Once
	openclErr  error
)

// OpenCLErr makes sure an OpenCL driver is registered (PoCL on machines
// without a GPU, installed as root with apt-get; see
// devstack.EnsureOpenCL) and returns why not when it cannot be. The check
// runs once per test binary.
//
// A test binary built with -tags opencl has already compiled against the
// headers, so `make test` installs them before it (internal/devstack/cmd/
// ensure-opencl); here what matters is the driver the tests load at run time.
func OpenCLErr() error {
	openclOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		_, openclErr = devstack.EnsureOpenCL(ctx, quietLogger())
	})
	return openclErr
}

// OpenCL stops the test when no OpenCL driver is available: a failure with
// the reason under CI, a skip elsewhere.
func OpenCL(t testing.TB) {
	t.Helper()
	Require(t, "find or install OpenCL (PoCL)", OpenCLErr())
}
