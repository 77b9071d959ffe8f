package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	"github.com/hashforge/hashforge/worker"
)

// browser is a headless Chromium tab with every console error, uncaught
// exception and browser log error (failed loads, CSP violations) recorded.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	// diag, when set, adds the state behind the page to a failure.
	diag func() string
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
			// What the page shows instead, on one line.
			state, _ := b.eval(`(document.querySelector("main")?.innerText ?? "").replace(/\s+/g, " ").slice(0, 800)`).(string)
			var behind string
			if b.diag != nil {
				behind = "; " + b.diag()
			}
			b.t.Fatalf("page never showed %s (%s); console errors: %v; page: %s%s", what, expr, b.consoleErrors(), state, behind)
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

// screenshot saves the page to the test's artifact dir and, when alsoTo
// is set, there too.
func (b *browser) screenshot(name, alsoTo string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	for _, path := range []string{filepath.Join(b.t.ArtifactDir(), name), alsoTo} {
		if path == "" {
			continue
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", path)
	}
}

// TestDashboardInBrowser runs serve against regtest btcd and PostgreSQL,
// opens the dashboard in Chromium, and runs the bundled miner (one CPU
// thread) against the pool: the blocks it finds must appear on the open
// page without a reload, the blocks, payments and miner pages must load
// without console errors, and the miner page must show the worker.
// Screenshots go to the test's artifact dir (go test -artifacts keeps
// them); the overview's also goes to $HASHFORGE_SCREENSHOT when set (that
// is how docs/dashboard.png is made).
func TestDashboardInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	btcd, dbURL, _ := regtestStack(t)
	b := startBrowser(t)

	// On regtest every share is also a block (the share target is never
	// easier than the network's, which is trivial there); starting at a
	// low difficulty, one CPU thread finds the first within a second or
	// so, and vardiff slows it down from there.
	cfg := regtestServe(t, btcd, dbURL, "hashforge-browser")
	cfg.StartDifficulty, cfg.MinDifficulty = 0.001, 0.0001
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := startServeLog(ctx, t, cfg, log)
	base := "http://" + l.HTTP.String()

	// The overview: loads, connects its feed, shows the real Stratum URL.
	b.do(chromedp.Navigate(base + "/"))
	b.waitFor("the live feed connected", `document.getElementById("status").classList.contains("live")`, 20*time.Second)
	b.waitFor("the stratum URL", fmt.Sprintf(`document.getElementById("stratum-url").textContent === %q`, "stratum+tcp://"+l.Stratum.String()), 10*time.Second)
	b.waitFor("the empty blocks table", `document.querySelector('#blocks tr.empty')`, 10*time.Second)
	b.noConsoleErrors("overview")
	// A marker that a reload would wipe out.
	b.eval(`window.__noReload = true`)

	// The bundled miner, in this process, with one CPU thread.
	miner, err := worker.New(worker.Config{
		URLs:    []string{"stratum+tcp://" + l.Stratum.String()},
		User:    btcd.MiningAddr + ".rig1",
		Threads: 1,
		Device:  "cpu",
		Quiet:   true,
		Output:  io.Discard,
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	minerCtx, stopMiner := context.WithCancel(ctx)
	mined := make(chan error, 1)
	go func() { mined <- miner.Run(minerCtx) }()
	b.diag = func() string { return fmt.Sprintf("miner: %+v", miner.Stats()) }
	defer func() {
		stopMiner()
		if err := <-mined; err != nil {
			t.Errorf("miner returned %v", err)
		}
	}()

	// The miner's first block appears on the open page by itself.
	b.waitFor("a block found by the miner", `document.querySelector('#blocks tr[data-hash]')`, 60*time.Second)
	if v, _ := b.eval(`window.__noReload === true`).(bool); !v {
		t.Fatal("the page reloaded: the blocks must arrive over the live feed")
	}
	shown, _ := b.eval(`document.querySelector('#blocks tr[data-hash]').dataset.hash`).(string)
	var page struct {
		Blocks []struct {
			Hash     string `json:"hash"`
			Accepted bool   `json:"accepted"`
			Finder   string `json:"finder"`
			Worker   string `json:"worker"`
		} `json:"blocks"`
	}
	getJSON(t, base+"/api/v1/blocks?limit=200", &page)
	found := false
	for _, blk := range page.Blocks {
		if blk.Hash == shown {
			found = true
			if !blk.Accepted || blk.Finder != btcd.MiningAddr || blk.Worker != "rig1" {
				t.Fatalf("block %s on the page: %+v, want accepted and found by rig1", shown, blk)
			}
		}
	}
	if !found {
		t.Fatalf("block %s on the page is not in the ledger", shown)
	}
	// Stats ticks bring the hashrate and the worker counts; the network
	// height is the tip's, the last block's or beyond.
	b.waitFor("a worker online", `document.getElementById("workers").textContent === "1"`, 20*time.Second)
	b.waitFor("a hashrate in every window", `["hr10m", "hr1h", "hr24h"].every((id) => parseFloat(document.getElementById(id).textContent) > 0)`, 20*time.Second)
	b.waitFor("a chart with data", `document.querySelector('#pool-chart .uplot canvas')`, 10*time.Second)
	for _, id := range []string{"hr10m", "hr1h", "hr24h", "miners", "workers", "sps", "shares", "height", "netdiff", "lastblock"} {
		v, _ := b.eval(fmt.Sprintf(`document.getElementById(%q).textContent`, id)).(string)
		if v == "" || v == "–" || strings.Contains(v, "NaN") || strings.Contains(v, "Infinity") || strings.Contains(v, "undefined") {
			t.Errorf("card %s shows %q", id, v)
		}
	}
	b.noConsoleErrors("overview after mining")
	b.screenshot("dashboard.png", os.Getenv("HASHFORGE_SCREENSHOT"))

	// The blocks page lists the miner's blocks, newest first, a page at a
	// time (on regtest the miner finds many).
	b.do(chromedp.Navigate(base + "/blocks"))
	b.waitFor("the blocks table", `document.querySelector('#blocks tr[data-hash]')`, 20*time.Second)
	b.waitFor("the page range", `/^1–\d+$/.test(document.getElementById("page-info").textContent)`, 10*time.Second)
	if finders, _ := b.eval(`[...document.querySelectorAll('#blocks tr[data-hash] td:nth-child(4)')].every((td) => td.textContent.endsWith(".rig1"))`).(bool); !finders {
		t.Fatal("the blocks page shows a block not found by rig1")
	}
	b.noConsoleErrors("blocks page")

	// The payments page loads its (empty: no wallet here) table.
	b.do(chromedp.Navigate(base + "/payments"))
	b.waitFor("the payments table", `(() => { const r = document.querySelector('#payments tr'); return r && r.textContent !== "loading…"; })()`, 20*time.Second)
	if got, _ := b.eval(`document.querySelector('#payments tr').textContent`).(string); got != "none yet" {
		t.Fatalf("payments table shows %q, want none yet", got)
	}
	b.noConsoleErrors("payments page")

	// The miner page shows the worker, online, with its chart.
	b.do(chromedp.Navigate(base + "/miner/" + url.PathEscape(btcd.MiningAddr)))
	b.waitFor("the worker row", `document.querySelector('#workers tr[data-worker="rig1"]')`, 20*time.Second)
	if got, _ := b.eval(`document.querySelector('#workers tr[data-worker="rig1"]').cells[1].textContent`).(string); got != "online" {
		t.Fatalf("rig1 status %q, want online; %s", got, b.diag())
	}
	b.waitFor("the worker's chart", `document.querySelectorAll('#worker-charts .uplot').length === 1`, 10*time.Second)
	b.noConsoleErrors("miner page")
	b.screenshot("miner.png", "")

	// On a phone: nothing wider than the screen, the cards two by two.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	b.do(chromedp.Navigate(base + "/"))
	b.waitFor("the live feed connected", `document.getElementById("status").classList.contains("live")`, 20*time.Second)
	b.waitFor("the blocks loaded", `document.querySelector('#blocks tr[data-hash]')`, 20*time.Second)
	b.waitFor("the stats loaded", `document.getElementById("workers").textContent === "1"`, 20*time.Second)
	if w, _ := b.eval(`document.documentElement.scrollWidth - window.innerWidth`).(float64); w > 0 {
		t.Fatalf("the overview is %v px wider than a phone screen", w)
	}
	b.noConsoleErrors("overview on a phone")
	b.screenshot("dashboard-phone.png", "")
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
