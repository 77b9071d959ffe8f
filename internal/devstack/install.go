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
	"syscall"
	"time"
)

// BtcdModule and BtcdVersion pin the node that dev and tests run against.
const (
	BtcdModule  = "github.com/btcsuite/btcd"
	BtcdVersion = "v0.26.2"
)

// CacheDir is where devstack keeps installed tools across runs:
// $HASHFORGE_CACHE, else the user cache dir + "/hashforge".
func CacheDir() (string, error) {
	if dir := os.Getenv("HASHFORGE_CACHE"); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate user cache dir (set HASHFORGE_CACHE): %w", err)
	}
	return filepath.Join(base, "hashforge"), nil
}

// InstallBtcd returns the path of a btcd binary of BtcdVersion, building it
// with `go install` into the cache on first use. $HASHFORGE_BTCD, when set,
// names a binary to use instead (offline machines).
//
// The binary lives in a directory named after the version, so its presence
// is its version check. A file lock serialises installs between test
// binaries that `go test ./...` runs in parallel.
func InstallBtcd(ctx context.Context) (string, error) {
	if p := os.Getenv("HASHFORGE_BTCD"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("HASHFORGE_BTCD=%s is not an executable file", p)
		}
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "bin", "btcd-"+BtcdVersion)
	bin := filepath.Join(dir, "btcd")
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create btcd cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // installed by whoever held the lock before us
		return bin, nil
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("btcd is not installed and no Go toolchain is in PATH to build it: install Go or set HASHFORGE_BTCD")
	}
	// Build into a scratch GOBIN and rename, so an interrupted build never
	// leaves a truncated binary where the fast path would trust it.
	tmp, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return "", fmt.Errorf("create btcd install dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	slog.Info("devstack: installing btcd (first run only)", "version", BtcdVersion, "dir", dir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", BtcdModule+"@"+BtcdVersion)
	cmd.Dir = tmp // outside any module, so the caller's go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", BtcdModule, BtcdVersion, err, lastLines(string(out), 20))
	}
	out, err := exec.CommandContext(ctx, filepath.Join(tmp, "btcd"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run freshly built btcd --version: %w", err)
	}
	if want := strings.TrimPrefix(BtcdVersion, "v"); !strings.Contains(string(out), want) {
		return "", fmt.Errorf("freshly built btcd reports %q, want version %s", strings.TrimSpace(string(out)), want)
	}
	if err := os.Rename(filepath.Join(tmp, "btcd"), bin); err != nil {
		return "", fmt.Errorf("move btcd into cache: %w", err)
	}
	slog.Info("devstack: btcd installed", "path", bin, "took", time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait (flock itself cannot be interrupted).
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
