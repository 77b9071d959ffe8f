// Package devtest gives tests real components from devstack: a fresh
// PostgreSQL database in a cluster shared by the test binary, and a fresh
// btcd node per test.
//
// A package using it declares
//
//	func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }
//
// so the shared cluster is stopped when the tests end.
//
// When a component cannot be started, tests fail with the reason under
// CI=true and skip with the reason otherwise.
package devtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
)

// startTimeout bounds starting a component, including a first-run install
// of btcd (about 40 s on a cold Go build cache) or of PostgreSQL.
const startTimeout = 5 * time.Minute

var (
	pgOnce sync.Once
	pg     *devstack.Postgres
	pgErr  error

	// live holds every component still running, so Main and the signal
	// handler can stop them: PostgreSQL outlives a killed test binary
	// (pg_ctl detaches it), so it must be stopped explicitly.
	liveMu sync.Mutex
	live   = map[stopper]struct{}{}
)

type stopper interface{ Stop(context.Context) error }

func track(s stopper) {
	liveMu.Lock()
	live[s] = struct{}{}
	liveMu.Unlock()
}

func untrack(s stopper) {
	liveMu.Lock()
	delete(live, s)
	liveMu.Unlock()
}

func stopAll() {
	liveMu.Lock()
	all := make([]stopper, 0, len(live))
	for s := range live {
		all = append(all, s)
	}
	clear(live)
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Stop(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "devtest: %v\n", err)
			}
		})
	}
	wg.Wait()
}

// Main runs the tests and then stops every component devtest started. An
// interrupt (Ctrl-C, or go test's SIGTERM) also stops them before exiting.
func Main(m *testing.M) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			stopAll()
			// Die of the signal as if devtest had not caught it, so
			// whoever sent it (go test, the fuzz coordinator, a
			// terminal) sees the exit it expects.
			signal.Reset(sig)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
			os.Exit(1)
		case <-done:
		}
	}()
	code := m.Run()
	close(done)
	signal.Stop(sigs)
	stopAll()
	return code
}

// CI reports whether the tests run under continuous integration, where a
// missing component is a failure, not a reason to skip.
func CI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Require stops the test when err is not nil: t.Fatalf under CI, t.Skipf
// elsewhere, with what names the missing component.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if CI() {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s (skipping outside CI): %v", what, err)
}

// Postgres returns the URL of a fresh, empty database, dropped when the test
// ends. The cluster is started on first use and shared by the test binary.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		pg, pgErr = devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true, Logger: quietLogger()})
		if pgErr == nil {
			track(pg)
		}
	})
	Require(t, "start private PostgreSQL", pgErr)

	name := "t_" + strings.ToLower(rand.Text())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pg.DropDatabase(ctx, name); err != nil {
			t.Logf("drop test database: %v", err)
		}
	})
	return url
}

// Btcd starts a node for this test alone, in a temp dir unless
// opts.DataDir says otherwise, stopped when the test ends. It has mined one block (unless opts.NoInitialBlock), so
// getblocktemplate works at once.
func Btcd(t testing.TB, opts devstack.BtcdOptions) *devstack.Btcd {
	t.Helper()
	// An empty DataDir makes StartBtcd use a temp dir that Stop removes,
	// which also cleans up after an interrupt (t.TempDir would not).
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	b, err := devstack.StartBtcd(ctx, opts)
	Require(t, "start btcd", err)
	track(b)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the btcd log (%s):\n%s", b.LogPath(), b.LogTail(30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		untrack(b)
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop btcd: %v", err)
		}
	})
	return b
}

// quietLogger keeps devstack's progress lines out of test output unless
// something goes wrong enough to be a warning.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

var (
	chromiumOnce sync.Once
	chromiumPath string
	chromiumErr  error
)

// Chromium returns the path of a Chromium executable for browser tests,
// installing Debian's package on first use when running as root (see
// devstack.FindChromium). Start it with devstack.ChromiumFlags and a fresh
// user-data dir.
func Chromium(t testing.TB) string {
	t.Helper()
	chromiumOnce.Do(func() {
		// apt-get update and the install of chromium and its fonts take
		// minutes on a cold machine.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		chromiumPath, chromiumErr = devstack.FindChromium(ctx, quietLogger())
	})
	Require(t, "find or install chromium", chromiumErr)
	return chromiumPath
}
