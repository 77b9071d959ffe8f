package node

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// WatchOptions tunes WatchTemplates. Zero values take the defaults.
type WatchOptions struct {
	// PollInterval is how often getbestblockhash is polled when the node
	// does not long-poll. Default 250 ms: a stale job costs more than a
	// local RPC call.
	PollInterval time.Duration
	// Refresh is the longest time between two templates, so that new
	// transactions (and their fees) get into the work. Default 30 s.
	Refresh time.Duration
	// DisableLongPoll forces polling even when the node offers BIP 22
	// long polling.
	DisableLongPoll bool
	// MaxBackoff caps the wait between attempts while the node is
	// unreachable. Default 10 s.
	MaxBackoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o *WatchOptions) setDefaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// longPollFailureLimit is how many long polls in a row may fail while
// ordinary calls succeed before the watcher stops trusting long polling (a
// proxy that cuts long requests would otherwise make it refetch in a loop).
const longPollFailureLimit = 3

// WatchTemplates sends a template to out at start, again as soon as the
// node's best block changes, and at least every opts.Refresh. It uses BIP 22
// long polling when the node offers it and polls getbestblockhash otherwise.
// An unreachable or unready node is retried with exponential backoff and
// logged; WatchTemplates returns only when ctx is done. It never closes out:
// the caller owns it, and should keep receiving, since the watcher waits for
// each send.
func (c *Client) WatchTemplates(ctx context.Context, opts WatchOptions, out chan<- *Template) {
	opts.setDefaults()
	w := &watcher{c: c, opts: opts, out: out, log: opts.Logger.With("node", c.ep.URL)}
	w.run(ctx)
}

type watcher struct {
	c    *Client
	opts WatchOptions
	out  chan<- *Template
	log  *slog.Logger

	longPollOff      bool
	longPollFailures int
	downSince        time.Time // zero while the node answers
}

func (w *watcher) run(ctx context.Context) {
	started := false
	for {
		t, err := w.fetch(ctx)
		if err != nil {
			return // ctx done
		}
		if !started {
			started = true
			w.log.Info("watching node templates", "height", t.Height,
				"longpoll", t.LongPollID != "" && !w.opts.DisableLongPoll, "refresh", w.opts.Refresh)
		}
		if !w.send(ctx, t) {
			return
		}
		refreshAt := time.Now().Add(w.opts.Refresh)
		for t != nil {
			if !w.longPollOff && !w.opts.DisableLongPoll && t.LongPollID != "" {
				t = w.longPoll(ctx, t, refreshAt)
			} else {
				w.waitForNewTip(ctx, t.PreviousBlockHash, refreshAt)
				t = nil
			}
			if ctx.Err() != nil {
				return
			}
			if t != nil {
				if !w.send(ctx, t) {
					return
				}
				refreshAt = time.Now().Add(w.opts.Refresh)
			}
		}
	}
}

// longPoll waits on the node for a template newer than t. It returns the
// new template, or nil when the caller should fetch one itself: refresh
// time reached, or the long poll failed.
func (w *watcher) longPoll(ctx context.Context, t *Template, refreshAt time.Time) *Template {
	lpCtx, cancel := context.WithDeadline(ctx, refreshAt)
	defer cancel()
	nt, err := w.c.GetBlockTemplate(lpCtx, t.LongPollID)
	switch {
	case err == nil:
		w.longPollFailures = 0
		return nt
	case ctx.Err() != nil, lpCtx.Err() != nil:
		return nil
	case IsRPCError(err, 0) && !isTransient(err):
		w.longPollOff = true
		w.log.Warn("node refused long polling, polling getbestblockhash instead",
			"interval", w.opts.PollInterval, "err", err)
		return nil
	}
	w.longPollFailures++
	if w.longPollFailures >= longPollFailureLimit {
		w.longPollOff = true
		w.log.Warn("long polling keeps failing, polling getbestblockhash instead",
			"interval", w.opts.PollInterval, "err", err)
		return nil
	}
	w.log.Debug("long poll failed, fetching a template", "err", err)
	return nil
}

// waitForNewTip polls getbestblockhash until it differs from prev, the
// refresh time comes, a call fails (fetch then takes over the retrying), or
// ctx ends.
func (w *watcher) waitForNewTip(ctx context.Context, prev string, refreshAt time.Time) {
	tick := time.NewTicker(w.opts.PollInterval)
	defer tick.Stop()
	refresh := time.NewTimer(time.Until(refreshAt))
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			return
		case <-tick.C:
		}
		best, err := w.c.GetBestBlockHash(ctx)
		if err != nil || best != prev {
			return
		}
	}
}

// fetch gets a template, retrying with exponential backoff until it
// succeeds or ctx ends.
func (w *watcher) fetch(ctx context.Context) (*Template, error) {
	delay := min(250*time.Millisecond, w.opts.MaxBackoff)
	for {
		t, err := w.c.GetBlockTemplate(ctx, "")
		if err == nil {
			if !w.downSince.IsZero() {
				w.log.Info("node back", "height", t.Height, "down_for", time.Since(w.downSince).Round(time.Millisecond))
				w.downSince = time.Time{}
			}
			return t, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if w.downSince.IsZero() {
			w.downSince = time.Now()
		}
		var re *RPCError
		switch {
		case errors.As(err, &re) && re.Code == CodeClientInInitialDL:
			w.log.Warn("node not ready to mine: syncing, or its tip is older than 24 h (on a test network, mine a block); retrying",
				"in", delay, "code", re.Code, "message", re.Message)
		case errors.As(err, &re):
			w.log.Warn("node refused getblocktemplate, retrying", "in", delay, "code", re.Code, "message", re.Message)
		default:
			w.log.Warn("node unreachable, retrying", "in", delay, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, w.opts.MaxBackoff)
	}
}

func (w *watcher) send(ctx context.Context, t *Template) bool {
	select {
	case w.out <- t:
		return true
	case <-ctx.Done():
		return false
	}
}

// isTransient reports node errors that say "not now" rather than "never".
func isTransient(err error) bool {
	return IsRPCError(err, CodeClientInInitialDL) || IsRPCError(err, CodeClientNotConnected) ||
		IsRPCError(err, CodeWarmingUp)
}
