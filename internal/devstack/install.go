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
	return installGoTool(ctx, "HASHFORGE_BTCD", BtcdModule, BtcdVersion, "btcd", func(bin string) error {
		out, err := exec.CommandContext(ctx, bin, "--version").Output()
		if err != nil {
			return fmt.Errorf("run freshly built btcd --version: %w", err)
		}
		if want := strings.TrimPrefix(BtcdVersion, "v"); !strings.Contains(string(out), want) {
			return fmt.Errorf("freshly built btcd reports %q, want version %s", strings.TrimSpace(string(out)), want)
		}
		return nil
	})
}

// installGoTool installs a `go install`-able command into the cache: a
// directory named after the version (its presence is the version check), a
// file lock between parallel test binaries, a scratch GOBIN renamed into
// place so an interrupted build never leaves a truncated binary where the
// fast path would trust it. $envVar, when set, names a binary to use
// instead (offline machines). check, when not nil, vets the fresh build.
func installGoTool(ctx context.Context, envVar, module, version, name string, check func(bin string) error) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("%s=%s is not an executable file", envVar, p)
		}
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "bin", name+"-"+version)
	bin := filepath.Join(dir, name)
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s cache dir: %w", name, err)
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
		return "", fmt.Errorf("%s is not installed and no Go toolchain is in PATH to build it: install Go or set %s", name, envVar)
	}
	tmp, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return "", fmt.Errorf("create %s install dir: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	slog.Info("devstack: installing "+name+" (first run only)", "version", version, "dir", dir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "install", module+"@"+version)
	cmd.Dir = tmp // outside any module, so the caller's go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", module, version, err, lastLines(string(out), 20))
	}
	if check != nil {
		if err := check(filepath.Join(tmp, name)); err != nil {
			return "", err
		}
	}
	if err := os.Rename(filepath.Join(tmp, name), bin); err != nil {
		return "", fmt.Errorf("move %s into cache: %w", name, err)
	}
	slog.Info("devstack: "+name+" installed", "path", bin, "took", time.Since(start).Round(time.Millisecond))
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

// aptInstall installs Debian packages with apt-get unless present()
// already holds. go test runs packages in parallel, and several of them may
// install at once: devstack's apt lock orders them (present is asked again
// under it, so the second waiter finds the first one's work done), and
// dpkg's lock timeout makes apt wait for any other apt run instead of
// failing. withRecommends keeps Recommends (Chromium's fonts, without
// which screenshots show no text).
func aptInstall(ctx context.Context, log *slog.Logger, present func() bool, withRecommends bool, pkgs ...string) error {
	cache, err := CacheDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cache, "apt.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if present() { // installed while we waited
		return nil
	}
	const waitForDpkg = "DPkg::Lock::Timeout=600"
	install := []string{"apt-get", "-o", waitForDpkg, "install", "-y"}
	if !withRecommends {
		install = append(install, "--no-install-recommends")
	}
	for _, args := range [][]string{
		{"apt-get", "-o", waitForDpkg, "update"},
		append(install, pkgs...),
	} {
		log.Info("devstack: running", "cmd", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 20))
		}
	}
	return nil
}
