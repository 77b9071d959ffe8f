//go:build !linux

package devstack

import "syscall"

// childSysProcAttr puts a child in its own process group, so a terminal
// Ctrl-C does not reach it before the caller has stopped things in order.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
