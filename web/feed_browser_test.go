package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/pool"
)

func startChromium(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(devtest.Chromium(t)), chromedp.UserDataDir(t.TempDir())}
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
	// The browser lives as long as the context it was started on: start
	// it here (subscribing to the console starts it), not on a per-step
	// timeout context.
	msgs := chromedp.Console(ctx)
	go func() {
		for _, err := range msgs {
			if err != nil {
				return
			}
		}
	}()
	return ctx
}

func evalIn[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func waitIn(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !evalIn[bool](t, ctx, "!!("+expr+")"); {
		if time.Now().After(deadline) {
			t.Fatalf("page never showed %s (%s): %s", what, expr, evalIn[string](t, ctx, `document.body.innerText.slice(0, 600)`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A dashboard whose live feed is refused (the feed full of other
// clients) says so and keeps its numbers current by polling. A worker named with a right-to-left
// override is shown escaped, on the page and in its chart, and app.js's
// rule agrees with Shown.
func TestDashboardFeedFallbackInBrowser(t *testing.T) {
	env := newTestEnvWith(t, func(c *Config) {
		c.Limits = DefaultLimits()
		c.Limits.MaxFeeds, c.Limits.FeedPollInterval = 2, time.Second
	}, nil)
	env.pool.online = []pool.OnlineWorker{{Address: addrA, Worker: "rig\u202Eevil", Connections: 1, Difficulty: 1}}
	addr := serveReal(t, env)
	// Other clients take every feed slot.
	var others []interface{ Close() error }
	for range 2 {
		c, _, err := dialFeedFrom(t, addr, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, c)
	}
	ctx := startChromium(t)
	nav := func(path string) {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, chromedp.Navigate("http://"+addr+path)); err != nil {
			t.Fatal(err)
		}
	}

	nav("/miner/" + addrA)
	waitIn(t, ctx, "the fallback notice", `!document.getElementById("feed-notice").hidden && document.getElementById("feed-notice").textContent === "live feed full — updating every 1 s"`)
	waitIn(t, ctx, "the worker row", `document.querySelector('#workers td.worker-name')`)
	if got := evalIn[string](t, ctx, `document.querySelector('#workers td.worker-name').textContent`); got != `rig\u202Eevil` {
		t.Fatalf("worker name shown as %q", got)
	}
	waitIn(t, ctx, "the worker chart", `document.querySelector('#worker-charts h3')`)
	if bad := evalIn[bool](t, ctx, `/[\p{Cc}\p{Cf}]/u.test(document.body.innerText.replace(/[\n\t]/g, "")) || /[\p{Cf}]/u.test(document.title)`); bad {
		t.Fatalf("a hidden character reached the page: %q", evalIn[string](t, ctx, `document.body.innerText`))
	}
	// The page's shown() and Shown agree.
	samples := []string{"rig\u202Eevil", "\u2066a\u2069\u200E\u200F\u061C", "z\u200Bw\uFEFF", "t\tn\n", "tag\U000E0041", "plain ₿ 🙂"}
	js, _ := json.Marshal(samples)
	got := evalIn[[]any](t, ctx, "JSON.parse("+string(jsonString(js))+").map(shown)")
	for i, s := range samples {
		if got[i] != Shown(s) {
			t.Errorf("shown(%q) = %q, Shown %q", s, got[i], Shown(s))
		}
	}

	// Polling keeps the numbers current.
	nav("/")
	waitIn(t, ctx, "the fallback notice", `!document.getElementById("feed-notice").hidden`)
	waitIn(t, ctx, "the polled workers", `document.getElementById("workers").textContent === "2"`)
	env.pool.mu.Lock()
	env.pool.stats.AuthorizedWorkers = 7
	env.pool.mu.Unlock()
	waitIn(t, ctx, "the workers count from a later poll", `document.getElementById("workers").textContent === "7"`)

	for _, c := range others {
		c.Close()
	}
}

func jsonString(b []byte) []byte { s, _ := json.Marshal(string(b)); return s }
