//go:build !opencl

package kernels

import (
	"context"
	"errors"
	"testing"
)

func TestStubSaysNoOpenCL(t *testing.T) {
	if _, err := Devices(); !errors.Is(err, ErrNoOpenCL) {
		t.Fatalf("Devices: %v, want ErrNoOpenCL", err)
	}
	if _, err := Bench(context.Background(), 0, 0); !errors.Is(err, ErrNoOpenCL) {
		t.Fatalf("Bench: %v, want ErrNoOpenCL", err)
	}
}
