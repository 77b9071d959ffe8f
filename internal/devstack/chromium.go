package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
)

// chromiumNames are the executables that can drive the dashboard tests, in
// order of preference: Debian's package first, since that is what devstack
// installs and what CI runs.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

// FindChromium returns the path of a Chromium (or Chrome) executable for
// headless browser tests. $HASHFORGE_CHROMIUM, when set, names the binary
// to use. When none is found and the process runs as root on a machine
// with apt-get, Debian's chromium package is installed, the way
// StartPostgres installs postgresql: `make test` must need nothing done
// by hand.
func FindChromium(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	if p := os.Getenv("HASHFORGE_CHROMIUM"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("HASHFORGE_CHROMIUM=%s is not an executable file", p)
		}
		return p, nil
	}
	if p := lookChromium(); p != "" {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("no chromium in PATH: install it (Debian/Ubuntu: apt-get install chromium) or set HASHFORGE_CHROMIUM")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("no chromium in PATH and apt-get is unavailable: install Chromium with your package manager or set HASHFORGE_CHROMIUM")
	}

	log.Info("devstack: chromium not found, installing it with apt-get (this takes a few minutes)")
	if err := aptInstall(ctx, log, func() bool { return lookChromium() != "" }, true, "chromium"); err != nil {
		return "", err
	}
	if p := lookChromium(); p != "" {
		return p, nil
	}
	return "", errors.New("installed the chromium package but still found no chromium executable")
}

func lookChromium() string {
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// ChromiumFlags are the command-line switches for a headless, hermetic
// browser in tests: no sandbox (tests run as root, where Chromium refuses
// its sandbox), no GPU, and none of the background traffic (updates, sync,
// safe browsing lists) a test machine without internet would wait on.
// Pair them with a fresh --user-data-dir per run.
var ChromiumFlags = []string{
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-background-networking",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-component-update",
	"--disable-sync",
	"--disable-dev-shm-usage",
}
