// Command ensure-opencl makes sure the OpenCL headers, the ICD loader and a
// driver (PoCL) are present, installing them as root with apt-get. `make
// test` runs it before `go test -tags opencl`, because the cgo host in
// kernels/ needs CL/cl.h to compile: a TestMain would run too late.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
)

func main() {
	// apt-get update plus PoCL and its LLVM dependencies take minutes on
	// a cold machine.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := devstack.EnsureOpenCL(ctx, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ensure-opencl: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("OpenCL ready: header %s, loader %s, drivers %s\n", s.Header, s.Library, strings.Join(s.ICDs, " "))
}
