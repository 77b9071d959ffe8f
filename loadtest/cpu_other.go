//go:build !unix

package loadtest

import (
	"errors"
	"time"
)

func processCPU(pid int) (time.Duration, error) {
	return 0, errors.New("a process's CPU time is read from /proc, on Linux only")
}
