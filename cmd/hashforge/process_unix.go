//go:build unix

package main

import (
	"errors"
	"syscall"
)

// processGone reports whether no process has this pid (signal 0 probes
// without sending anything; EPERM means one exists, of another user).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
