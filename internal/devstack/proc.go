package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultStopTimeout bounds a graceful stop when the caller's context has no
// deadline: a child that ignores SIGINT for this long is killed.
const defaultStopTimeout = 15 * time.Second

// freePort asks the kernel for a free TCP port on the loopback interface.
// The port is released before the child binds it, so another process may
// grab it in between; children that fail to bind report it in their log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a long-running child started by devstack.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when Wait has returned
	err    error         // Wait's result, valid after exited is closed
}

// startProcess starts cmd in its own process group with its output appended
// to logPath.
func startProcess(cmd *exec.Cmd, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", logPath, err)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGINT, waits for the child to exit, and kills its whole
// process group when ctx ends (or defaultStopTimeout passes) first.
func (p *process) stop(ctx context.Context) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.cmd.Path, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
	}
	// Negative pid: the whole group, in case the child forked helpers.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("stop %s: killed after graceful stop timed out: %w", p.cmd.Path, ctx.Err())
}

// tailFile returns the last n lines of a log file, for error messages that
// should say why a child died without sending the user hunting for the file.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// withLog appends the tail of a log file to an error.
func withLog(err error, path string) error {
	tail := strings.TrimSpace(tailFile(path, 20))
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, path, tail)
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// pidSuffix names the pid files of devstack's children in their data dirs.
const pidSuffix = ".pid"

// portIfFree is port when nothing listens on it at 127.0.0.1, else 0.
func portIfFree(port int) int {
	if port <= 0 {
		return 0
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0
	}
	l.Close()
	return port
}

// stopLeftovers stops every process a pid file in dir names (see
// stopLeftover).
func stopLeftovers(ctx context.Context, dir string, log *slog.Logger) {
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "*"+pidSuffix))
	for _, f := range pidFiles {
		stopLeftover(ctx, f, dir, log)
	}
}

// stopLeftover ends the process named by pidFile if it still runs with
// dataDir on its command line (so a recycled pid is left alone): SIGINT,
// then SIGKILL after defaultStopTimeout.
func stopLeftover(ctx context.Context, pidFile, dataDir string, log *slog.Logger) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return
	}
	// A zombie (its parent gone, and a PID 1 that does not reap) has an
	// empty command line: it counts as gone.
	running := func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && bytes.Contains(cmdline, []byte(dataDir))
	}
	if !running() {
		return
	}
	log.Warn("devstack: stopping a process left running in the data dir", "pid", pid, "dir", dataDir)
	_ = syscall.Kill(pid, syscall.SIGINT)
	gone := func(d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
			if !running() {
				return true
			}
		}
		return false
	}
	if !gone(defaultStopTimeout) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		gone(5 * time.Second)
	}
}

// RemoveChildDataDir deletes the data dir of a btcd or btcwallet, after
// stopping the process a killed run may have left running in it.
func RemoveChildDataDir(ctx context.Context, dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	stopLeftovers(ctx, dir, log)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
