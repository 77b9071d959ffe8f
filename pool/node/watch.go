package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
)

// WatchOptions tunes WatchTemplates. Zero values take the defaults.
type WatchOptions struct {
	// PollInterval is how often getbestblockhash is polled when neither
	// long polling nor ZMQ tells of new blocks. Default 250 ms: a stale
	// job costs more than a local RPC call.
	PollInterval time.Duration
	// FallbackPollInterval is how often getbestblockhash is polled while
	// long polling or ZMQ works, in case a notice is lost (a ZMQ
	// reconnect drops messages). Default 5 s.
	FallbackPollInterval time.Duration
	// Refresh is the longest time between two templates, so that new
	// transactions (and their fees) get into the work. Default 30 s. A
	// refresh is a plain getblocktemplate call; it never touches the
	// outstanding long poll.
	Refresh time.Duration
	// DisableLongPoll forces polling even when the node offers BIP 22
	// long polling.
	DisableLongPoll bool
	// Notices, when not nil, carries new-block notices (block hashes,
	// display order) from ZMQ `hashblock` (Client.SubscribeBlocks): each
	// one not already the template's previous block fetches a template
	// at once.
	Notices <-chan string
	// MaxBackoff caps the wait between attempts while the node is
	// unreachable. Default 10 s.
	MaxBackoff time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// onFetch, when set, hears every getblocktemplate attempt's outcome
	// (nil: a template): a Set leaves a node that refuses templates.
	onFetch func(error)
}

func (o *WatchOptions) setDefaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.FallbackPollInterval <= 0 {
		o.FallbackPollInterval = 5 * time.Second
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
// node's best block changes, and at least every opts.Refresh.
//
// New blocks are learnt from a BIP 22 long poll when the node offers one,
// from opts.Notices (ZMQ) when given, and from polling getbestblockhash
// (fast when neither of the others works, slowly as a fallback otherwise).
// At most one long poll is outstanding at any time, and it is held for as
// long as the node holds it: it is never cancelled except when ctx ends.
// Bitcoin Core keeps serving an abandoned long poll on one of its few RPC
// threads until the next block, so a client that gives up on long polls
// and opens new ones exhausts the node on a quiet chain. When the long
// poll returns (a new block, or new transactions), the next one starts with
// the newest longpollid. Refreshes are separate plain getblocktemplate
// calls.
//
// An unreachable or unready node is retried with exponential backoff and
// logged; WatchTemplates returns only when ctx is done, after its long poll
// has ended. It never closes out: the caller owns it, and should keep
// receiving, since the watcher waits for each send.
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

	downSince time.Time // zero while the node answers; owned by run

	mu     sync.Mutex
	latest *Template // newest template from any source, for the next long poll's id
}

func (w *watcher) setLatest(t *Template) {
	w.mu.Lock()
	w.latest = t
	w.mu.Unlock()
}

func (w *watcher) latestTemplate() *Template {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

func (w *watcher) run(ctx context.Context) {
	t, err := w.fetch(ctx)
	if err != nil {
		return // ctx done
	}
	longPoll := t.LongPollID != "" && !w.opts.DisableLongPoll
	w.log.Info("watching node templates", "height", t.Height, "longpoll", longPoll,
		"zmq", w.opts.Notices != nil, "refresh", w.opts.Refresh)
	w.setLatest(t)
	if !w.send(ctx, t) {
		return
	}

	var (
		lpOut = make(chan *Template)
		lpOff = make(chan struct{})
		lpWG  sync.WaitGroup
	)
	if longPoll {
		lpWG.Add(1)
		go func() {
			defer lpWG.Done()
			w.longPollLoop(ctx, lpOut, lpOff)
		}()
	} else {
		close(lpOff)
		lpOff = nil // nothing more to hear from it
	}
	defer lpWG.Wait()

	pollEvery := func() time.Duration {
		if longPoll || w.opts.Notices != nil {
			return w.opts.FallbackPollInterval
		}
		return w.opts.PollInterval
	}
	poll := time.NewTicker(pollEvery())
	defer poll.Stop()
	refresh := time.NewTimer(w.opts.Refresh)
	defer refresh.Stop()
	notices := w.opts.Notices

	for {
		fetchNow := false
		select {
		case <-ctx.Done():
			return
		case nt := <-lpOut:
			// The long poll loop already made it the latest.
			if !w.send(ctx, nt) {
				return
			}
			refresh.Reset(w.opts.Refresh)
			continue
		case <-lpOff:
			lpOff, longPoll = nil, false
			poll.Reset(pollEvery())
			continue
		case hash, ok := <-notices:
			if !ok {
				notices = nil
				poll.Reset(pollEvery())
				continue
			}
			fetchNow = !strings.EqualFold(hash, w.latestTemplate().PreviousBlockHash.String())
		case <-poll.C:
			best, err := w.c.GetBestBlockHash(ctx)
			// On an error, fetch does the retrying and the logging.
			fetchNow = err != nil || !strings.EqualFold(best, w.latestTemplate().PreviousBlockHash.String())
		case <-refresh.C:
			fetchNow = true
		}
		if !fetchNow {
			continue
		}
		nt, err := w.fetch(ctx)
		if err != nil {
			return
		}
		w.setLatest(nt)
		if !w.send(ctx, nt) {
			return
		}
		refresh.Reset(w.opts.Refresh)
	}
}

// longPollLoop keeps exactly one long poll outstanding, each made with the
// newest longpollid, and hands what they return to out. It closes off and
// returns when long polling proves unusable, and returns when ctx ends.
func (w *watcher) longPollLoop(ctx context.Context, out chan<- *Template, off chan<- struct{}) {
	failures := 0
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: w.opts.MaxBackoff}
	for {
		id := w.latestTemplate().LongPollID
		if id == "" {
			// A refresh from a node that stopped offering long polls.
			w.log.Warn("node stopped offering long polling, polling getbestblockhash instead", "interval", w.opts.PollInterval)
			close(off)
			return
		}
		nt, err := w.c.GetBlockTemplate(ctx, id)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			retry.Reset()
			w.setLatest(nt)
			select {
			case out <- nt:
			case <-ctx.Done():
				return
			}
			continue
		}
		if IsRPCError(err, 0) && !isTransient(err) {
			w.log.Warn("node refused long polling, polling getbestblockhash instead",
				"interval", w.opts.PollInterval, "err", err)
			close(off)
			return
		}
		// A node that is down fails every call; that is not the long
		// poll's fault, and the main loop reports it.
		if _, berr := w.c.GetBestBlockHash(ctx); berr == nil {
			failures++
			if failures >= longPollFailureLimit {
				w.log.Warn("long polling keeps failing, polling getbestblockhash instead",
					"interval", w.opts.PollInterval, "err", err)
				close(off)
				return
			}
		}
		delay := retry.Next()
		w.log.Debug("long poll failed; starting another", "in", delay, "err", err)
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
}

// fetch gets a template, retrying with exponential backoff until it
// succeeds or ctx ends.
func (w *watcher) fetch(ctx context.Context) (*Template, error) {
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: w.opts.MaxBackoff}
	for {
		t, err := w.c.GetBlockTemplate(ctx, "")
		if w.opts.onFetch != nil && ctx.Err() == nil {
			w.opts.onFetch(err)
		}
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
		delay := retry.Next()
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
		if !backoff.Sleep(ctx, delay) {
			return nil, ctx.Err()
		}
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
