package devstack

import "syscall"

// childSysProcAttr puts a child in its own process group, so a terminal
// Ctrl-C does not reach it before the caller has stopped things in order,
// and asks the kernel to send it SIGTERM if the parent dies without stopping
// it (a test binary killed by a timeout), which btcd treats like SIGINT.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
