package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/stratum"
)

// browser is a headless Chromium tab with every console error, uncaught
// exception and browser log error (failed loads, CSP violations) recorded.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(devtest.Chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	for _, f := range devstack.ChromiumFlags {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// Subscribing starts the browser; the messages are read from here on.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) eval(expr string) any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition in the page.
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if v, ok := b.eval("!!(" + expr + ")").(bool); ok && v {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("page never showed %s (%s); console errors: %v", what, expr, b.consoleErrors())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) noConsoleErrors(where string) {
	b.t.Helper()
	if errs := b.consoleErrors(); len(errs) > 0 {
		b.t.Fatalf("%s: console errors:\n%s", where, strings.Join(errs, "\n"))
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// TestDashboardInBrowser runs serve against regtest btcd and PostgreSQL,
// opens the dashboard in Chromium, and mines blocks through the test's own
// Stratum client: they must appear on the open page without a reload, and
// the miner page must show the worker. Screenshots go to the test's
// artifact dir (go test -artifacts keeps them).
func TestDashboardInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "regtest"})
	dbURL := devtest.Postgres(t)
	b := startBrowser(t)

	cfg := serveConfig{
		Network: "regtest", NodeURL: "http://" + btcd.RPCHost, NodeUser: btcd.RPCUser, NodePass: btcd.RPCPass,
		PoolAddress: btcd.MiningAddr, DatabaseURL: dbURL, StratumAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		StartDifficulty: 1, MinDifficulty: 0.0001, ShareInterval: 10 * time.Second,
		CoinbaseTag: "/hashforge-browser/", Extranonce2Size: 8, VersionMask: "1fffe000", SpoolDir: t.TempDir(),
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srvCtx, stopSrv := context.WithCancel(ctx)
	ready := make(chan listeners, 1)
	served := make(chan error, 1)
	go func() { served <- runServe(srvCtx, cfg, log, func(l listeners) { ready <- l }) }()
	var l listeners
	select {
	case l = <-ready:
	case err := <-served:
		t.Fatalf("serve exited early: %v", err)
	}
	defer func() {
		stopSrv()
		if err := <-served; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}()
	base := "http://" + l.HTTP.String()

	// The overview: loads, connects its feed, shows the real Stratum URL.
	b.do(chromedp.Navigate(base + "/"))
	b.waitFor("the live feed connected", `document.getElementById("status").classList.contains("live")`, 20*time.Second)
	b.waitFor("the stratum URL", fmt.Sprintf(`document.getElementById("stratum-url").textContent === %q`, "stratum+tcp://"+l.Stratum.String()), 10*time.Second)
	b.noConsoleErrors("overview")
	// A marker that a reload would wipe out.
	b.eval(`window.__noReload = true`)

	// Mine through the pool with the test's own client.
	c, err := stratum.Dial(ctx, l.Stratum.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := &testMiner{t: t, c: c}
	res, err := c.Call(ctx, "mining.subscribe", []any{"hashforge-browser-test/1.0"})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	m.en1, m.en2Size = mustHex(t, sub.Extranonce1), sub.Extranonce2Size
	user := btcd.MiningAddr + ".rig1"
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s %v", res, err)
	}
	job := m.next(ctx, false)
	var hashes []string
	for i := range 3 {
		if i > 0 {
			job = m.next(ctx, true) // the pool moved to our block's successor
		}
		en2 := make([]byte, m.en2Size)
		en2[0] = byte(i)
		version := beHex32(t, job.n.Version)
		nonce, hash := m.solve(job, en2, version, true)
		if err := m.submit(ctx, user, job, en2, nonce, nil); err != nil {
			t.Fatalf("block share %d refused: %v", i, err)
		}
		hashes = append(hashes, displayHash(hash))
		// Each block appears on the open page by itself.
		b.waitFor("block "+displayHash(hash), fmt.Sprintf(`document.querySelector('#blocks tr[data-hash=%q]')`, displayHash(hash)), 20*time.Second)
	}
	if v, _ := b.eval(`window.__noReload === true`).(bool); !v {
		t.Fatal("the page reloaded: the blocks must arrive over the live feed")
	}
	// Newest first, and the last block card follows.
	if got, _ := b.eval(`document.querySelector('#blocks tr').dataset.hash`).(string); got != hashes[2] {
		t.Fatalf("top row is block %s, want the newest %s", got, hashes[2])
	}
	// Wait for a stats tick to bring the hashrate and the worker counts.
	b.waitFor("a worker online", `document.getElementById("workers").textContent === "1"`, 20*time.Second)
	b.waitFor("a hashrate", `document.getElementById("hr10m").textContent !== "0 H/s"`, 20*time.Second)
	b.noConsoleErrors("overview after mining")
	b.screenshot("dashboard.png")

	// The miner page shows the worker, online, with its chart.
	b.do(chromedp.Navigate(base + "/miner/" + url.PathEscape(btcd.MiningAddr)))
	b.waitFor("the worker row", `document.querySelector('#workers tr[data-worker="rig1"]')`, 20*time.Second)
	if got, _ := b.eval(`document.querySelector('#workers tr[data-worker="rig1"]').cells[1].textContent`).(string); got != "online" {
		t.Fatalf("rig1 status %q, want online", got)
	}
	b.waitFor("the worker's chart", `document.querySelectorAll('#worker-charts .uplot').length === 1`, 10*time.Second)
	b.noConsoleErrors("miner page")
	b.screenshot("miner.png")

	// On a phone: nothing wider than the screen, the cards two by two.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.do(chromedp.Navigate(base + "/"))
	b.waitFor("the live feed connected", `document.getElementById("status").classList.contains("live")`, 20*time.Second)
	b.waitFor("the blocks loaded", fmt.Sprintf(`document.querySelector('#blocks tr[data-hash=%q]')`, hashes[0]), 20*time.Second)
	b.waitFor("the stats loaded", `document.getElementById("workers").textContent === "1"`, 20*time.Second)
	if w, _ := b.eval(`document.documentElement.scrollWidth - window.innerWidth`).(float64); w > 0 {
		t.Fatalf("the overview is %v px wider than a phone screen", w)
	}
	b.noConsoleErrors("overview on a phone")
	b.screenshot("dashboard-phone.png")
}
