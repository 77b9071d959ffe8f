package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/jsonrpc"
)

// SetOptions tunes a Set. Zero values take the defaults.
type SetOptions struct {
	// Network is the chain every node must serve (required). A node is
	// used only once it proved to be on it; one on another chain never is.
	Network *chaincfg.Params
	// ProbeInterval is how often every node's tip is asked for
	// (getblockchaininfo). Default 2 s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe: a node that hangs counts as failing.
	// Default 2 s.
	ProbeTimeout time.Duration
	// FailLimit is how many calls in a row may fail (or getblocktemplate
	// refusals, for the active node) before the node is left. Default 3.
	FailLimit int
	// BehindGrace is how long the active node may stay below another
	// node's tip before it is left: nodes learn blocks a moment apart.
	// Default 5 s.
	BehindGrace time.Duration
	// ReturnAfter is how long a node of higher priority than the active
	// one must answer at the best tip before the set goes back to it, and
	// how long a node that refused templates is passed over. It keeps a
	// node that comes and goes from flapping the pool's work. Default 30 s.
	ReturnAfter time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (o *SetOptions) setDefaults() {
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 2 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 2 * time.Second
	}
	if o.FailLimit <= 0 {
		o.FailLimit = 3
	}
	if o.BehindGrace <= 0 {
		o.BehindGrace = 5 * time.Second
	}
	if o.ReturnAfter <= 0 {
		o.ReturnAfter = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Set is several nodes in priority order, used as one: templates come from
// the active node only, found blocks go to every node, chain questions go
// to the active node (docs/decisions.md, "Several nodes"). The first node
// is active while it is healthy. It is safe for concurrent use.
type Set struct {
	opts    SetOptions
	log     *slog.Logger
	members []*member
	via     *Client // Client(): calls follow the active node
	now     func() time.Time
	// afterRound, when set (tests), is called after each probe round's
	// decision.
	afterRound func()

	mu       sync.Mutex
	active   int
	changed  chan struct{} // closed and replaced at every switch
	switches int
}

// member is one node and what the set knows of its health; the fields
// after c are guarded by Set.mu.
type member struct {
	c *Client

	checked   bool  // proved to be on SetOptions.Network
	wrong     error // final network error: never used
	seen      bool  // answered a probe at least once
	failures  int   // calls failed in a row
	refusals  int   // getblocktemplate refusals in a row, while active
	refusedAt time.Time
	height    int64
	best      string

	behindSince time.Time // up and below the best tip since; zero otherwise
	goodSince   time.Time // up and at the best tip since; zero otherwise
}

// SplitURLs splits a comma-separated list of node URLs (the environment
// and config-file form of a repeated --node-url) into its non-empty,
// trimmed items, in order. A comma inside a password must be written %2C.
func SplitURLs(list string) []string {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// NewSet makes a Set of the nodes at urls, highest priority first. A URL
// with credentials (http://user:pass@host:port) uses them; the others use
// user and pass.
func NewSet(urls []string, user, pass string, opts SetOptions) (*Set, error) {
	if len(urls) == 0 {
		return nil, errors.New("no node URL")
	}
	if opts.Network == nil {
		return nil, errors.New("node set: no network")
	}
	opts.setDefaults()
	s := &Set{opts: opts, log: opts.Logger, now: time.Now, changed: make(chan struct{})}
	seen := map[string]bool{}
	for _, raw := range urls {
		u, p := user, pass
		endpoint, uu, up, err := jsonrpc.ParseURL(raw, "", "")
		if err != nil {
			return nil, fmt.Errorf("parse node URL: %w", err)
		}
		if uu != "" || up != "" {
			u, p = "", ""
		}
		if seen[endpoint] {
			return nil, fmt.Errorf("node %s listed twice", endpoint)
		}
		seen[endpoint] = true
		c, err := New(raw, u, p)
		if err != nil {
			return nil, err
		}
		s.members = append(s.members, &member{c: c})
	}
	s.via = &Client{route: s.Active}
	return s, nil
}

// Active is the node templates come from now.
func (s *Set) Active() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[s.active].c
}

// Client is a *Client whose every call goes to the active node at the
// time of the call, for what takes a *Client (payouts, block recovery).
func (s *Set) Client() *Client { return s.via }

// NodeStatus is one node as the set sees it.
type NodeStatus struct {
	URL      string // without credentials
	Active   bool
	Up       bool // answered the last probe, on the right network
	Height   int64
	Failures int // calls failed in a row
}

// Status lists the nodes in priority order, and how many times the set
// switched nodes.
func (s *Set) Status() (nodes []NodeStatus, switches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.members {
		nodes = append(nodes, NodeStatus{URL: m.c.Endpoint(), Active: i == s.active, Up: s.upLocked(m),
			Height: m.height, Failures: m.failures})
	}
	return nodes, s.switches
}

// CheckNetwork checks every node's network, concurrently. A node on
// another chain (IsFinalNetworkError) fails the whole set: a misconfigured
// node is refused at start, not silently skipped. Otherwise it returns nil
// when at least one node proved to be on params; nodes that could not be
// asked are checked later, before they are used.
func (s *Set) CheckNetwork(ctx context.Context, params *chaincfg.Params) error {
	errs := make([]error, len(s.members))
	var wg sync.WaitGroup
	for i, m := range s.members {
		s.mu.Lock()
		done := m.checked
		s.mu.Unlock()
		if done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.c.CheckNetwork(ctx, params)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var final, other error
	ok := false
	for i, m := range s.members {
		err := errs[i]
		switch {
		case err == nil:
			m.checked = true
			ok = true
		case IsFinalNetworkError(err):
			m.wrong = err
			final = errors.Join(final, err)
		default:
			other = errors.Join(other, fmt.Errorf("node %s: %w", m.c.Endpoint(), err))
		}
	}
	switch {
	case final != nil:
		return final
	case ok:
		return nil
	}
	return other
}

// WaitNetwork runs CheckNetwork until at least one node proved to be on
// params (nil), a node is on another chain (its error), or ctx ends.
func (s *Set) WaitNetwork(ctx context.Context, params *chaincfg.Params, log *slog.Logger, maxBackoff time.Duration) error {
	if log == nil {
		log = s.log
	}
	return waitNetwork(ctx, func(ctx context.Context) error { return s.CheckNetwork(ctx, params) }, log, maxBackoff,
		"cannot check any node's network yet, retrying")
}

// WatchTemplates is Client.WatchTemplates on the active node, moved to
// another node at every switch: the new node's watcher sends its template
// at once, so miners get work on its tip (a clean job when the tip
// differs). It also probes every node's health for as long as it runs.
// opts.Notices (ZMQ) belongs to the first node and is heard only while it
// is active.
func (s *Set) WatchTemplates(ctx context.Context, opts WatchOptions, out chan<- *Template) {
	s.probeAll(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.monitor(ctx)
	}()
	defer wg.Wait()
	for ctx.Err() == nil {
		s.mu.Lock()
		i, changed := s.active, s.changed
		s.mu.Unlock()
		o := opts
		if i != 0 {
			o.Notices = nil
		}
		o.onFetch = func(err error) { s.templateResult(i, err) }
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.members[i].c.WatchTemplates(wctx, o, out)
		}()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		cancel()
		<-done
	}
}

// monitor probes every node each ProbeInterval until ctx ends.
func (s *Set) monitor(ctx context.Context) {
	tick := time.NewTicker(s.opts.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.probeAll(ctx)
		}
	}
}

// probeAll asks every node for its tip, concurrently so that a hung node
// delays no verdict on the others, then decides whether to switch.
func (s *Set) probeAll(ctx context.Context) {
	type answer struct {
		height int64
		best   string
		err    error
	}
	answers := make([]answer, len(s.members))
	var wg sync.WaitGroup
	for i, m := range s.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, s.opts.ProbeTimeout)
			defer cancel()
			answers[i].height, answers[i].best, answers[i].err = s.probe(pctx, m)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	now := s.now()
	for i, a := range answers {
		s.observeLocked(i, a.height, a.best, a.err)
	}
	s.decideLocked(now)
	s.mu.Unlock()
	if s.afterRound != nil {
		s.afterRound()
	}
}

// probe checks a node's network until it proved right, then reads its tip.
func (s *Set) probe(ctx context.Context, m *member) (int64, string, error) {
	s.mu.Lock()
	checked, wrong := m.checked, m.wrong
	s.mu.Unlock()
	if wrong != nil {
		return 0, "", wrong
	}
	if !checked {
		err := m.c.CheckNetwork(ctx, s.opts.Network)
		if err != nil {
			return 0, "", err
		}
		s.mu.Lock()
		m.checked = true
		s.mu.Unlock()
	}
	var info struct {
		Blocks        int64  `json:"blocks"`
		BestBlockHash string `json:"bestblockhash"`
	}
	if err := m.c.Call(ctx, "getblockchaininfo", nil, &info); err != nil {
		return 0, "", err
	}
	return info.Blocks, info.BestBlockHash, nil
}

// observeLocked records a probe's outcome.
func (s *Set) observeLocked(i int, height int64, best string, err error) {
	m := s.members[i]
	switch {
	case err == nil:
		m.seen, m.failures, m.height, m.best = true, 0, height, best
	case IsFinalNetworkError(err):
		if m.wrong == nil {
			s.log.Error("node is on another network; it will not be used", "node", m.c.Endpoint(), "err", err)
		}
		m.wrong = err
	default:
		m.failures++
		if m.failures == s.opts.FailLimit {
			s.log.Warn("node stopped answering", "node", m.c.Endpoint(), "failures", m.failures, "err", err)
		}
	}
}

// templateResult hears the active node's getblocktemplate outcomes. A
// refusal counts towards leaving it; a transport failure is a failure like
// a probe's.
func (s *Set) templateResult(i int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[i]
	switch {
	case err == nil:
		m.refusals = 0
		return
	case IsRPCError(err, 0):
		m.refusals++
		if m.refusals >= s.opts.FailLimit {
			m.refusedAt = s.now()
		}
	default:
		m.failures++
	}
	s.decideLocked(s.now())
}

// upLocked: the node answered its last probe and is on the network.
func (s *Set) upLocked(m *member) bool {
	return m.checked && m.wrong == nil && m.seen && m.failures == 0
}

// usableLocked: the node may be switched to.
func (s *Set) usableLocked(m *member, now time.Time) bool {
	return s.upLocked(m) && (m.refusals < s.opts.FailLimit || now.Sub(m.refusedAt) >= s.opts.ReturnAfter)
}

// decideLocked updates every node's standing against the best tip and
// switches when the rules say so (docs/decisions.md, "Several nodes").
func (s *Set) decideLocked(now time.Time) {
	var best int64
	for _, m := range s.members {
		if s.upLocked(m) && m.height > best {
			best = m.height
		}
	}
	for _, m := range s.members {
		switch {
		case !s.upLocked(m):
			m.behindSince, m.goodSince = time.Time{}, time.Time{}
		case m.height >= best:
			m.behindSince = time.Time{}
			if m.goodSince.IsZero() {
				m.goodSince = now
			}
		default:
			m.goodSince = time.Time{}
			if m.behindSince.IsZero() {
				m.behindSince = now
			}
		}
	}
	to, why := s.pickLocked(now, best)
	if to == s.active {
		return
	}
	from := s.members[s.active]
	s.log.Warn("switching node", "from", from.c.Endpoint(), "to", s.members[to].c.Endpoint(), "reason", why,
		"from_height", from.height, "to_height", s.members[to].height, "best_height", best)
	s.active = to
	s.switches++
	close(s.changed)
	s.changed = make(chan struct{})
}

// pickLocked is the node that should be active, and why it changes.
func (s *Set) pickLocked(now time.Time, best int64) (int, string) {
	atBest := func(m *member) bool { return s.usableLocked(m, now) && m.height >= best }
	// Back to a node of higher priority once it has stayed healthy at the
	// best tip for ReturnAfter.
	for i := 0; i < s.active; i++ {
		m := s.members[i]
		if atBest(m) && now.Sub(m.goodSince) >= s.opts.ReturnAfter {
			return i, "a node of higher priority is back at the best tip"
		}
	}
	a := s.members[s.active]
	var why string
	switch {
	case a.wrong != nil:
		why = "the node is on another network"
	case a.failures >= s.opts.FailLimit:
		why = "the node stopped answering"
	case !a.checked || !a.seen:
		why = "the node has not answered yet"
	case a.refusals >= s.opts.FailLimit:
		why = "the node refuses block templates"
	case !a.behindSince.IsZero() && now.Sub(a.behindSince) >= s.opts.BehindGrace:
		why = "another node has a higher tip"
	default:
		return s.active, ""
	}
	for i, m := range s.members {
		if i != s.active && atBest(m) {
			return i, why
		}
	}
	return s.active, ""
}

// SubmitBlock submits the block to every node at once, so that it reaches
// the network through whichever node can take it. The verdict is ""
// (accepted) as soon as any node accepted; otherwise, once all answered,
// the active node's verdict (or the first answering node's, in priority
// order, when the active one did not answer). err only when no node
// answered. Submissions still running when a node accepted finish in the
// background, each logged.
func (s *Set) SubmitBlock(ctx context.Context, blockHex string) (verdict string, err error) {
	type result struct {
		i       int
		verdict string
		err     error
	}
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	if len(s.members) == 1 {
		return s.members[0].c.SubmitBlock(ctx, blockHex)
	}
	results := make(chan result, len(s.members))
	// Detached so that returning early (a node accepted) does not cut
	// the other submissions short; each is bounded by the client's call
	// timeout.
	bg := context.WithoutCancel(ctx)
	for i, m := range s.members {
		go func() {
			v, err := m.c.SubmitBlock(bg, blockHex)
			switch {
			case err != nil:
				s.log.Warn("submitblock: no answer from node", "node", m.c.Endpoint(), "err", err)
			case v == "":
				s.log.Info("submitblock: node accepted the block", "node", m.c.Endpoint())
			default:
				s.log.Info("submitblock: node did not accept the block", "node", m.c.Endpoint(), "verdict", v)
			}
			results <- result{i, v, err}
		}()
	}
	got := make([]*result, len(s.members))
	for range s.members {
		select {
		case r := <-results:
			if r.err == nil && r.verdict == "" {
				return "", nil
			}
			got[r.i] = &r
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if r := got[active]; r.err == nil {
		return r.verdict, nil
	}
	for _, r := range got {
		if r.err == nil {
			return r.verdict, nil
		}
	}
	return "", got[active].err
}

// GetBlockCount asks the active node (pool.ChainReader).
func (s *Set) GetBlockCount(ctx context.Context) (int64, error) { return s.via.GetBlockCount(ctx) }

// GetBlockHash asks the active node (pool.ChainReader).
func (s *Set) GetBlockHash(ctx context.Context, height int64) (string, error) {
	return s.via.GetBlockHash(ctx, height)
}

// GetBlockCoinbase asks the active node (pool.ChainReader).
func (s *Set) GetBlockCoinbase(ctx context.Context, hash string) (*BlockCoinbase, error) {
	return s.via.GetBlockCoinbase(ctx, hash)
}
