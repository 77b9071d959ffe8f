package worker

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

// requestedVersionMask is what the miner offers to roll in mining.configure.
// The pool answers with the subset it allows; the top three bits are never
// rolled whatever a pool says, because they mark the version field format.
const requestedVersionMask = 0x1fffffff

// jobRecord is a job as the session knows it. target only ever gets harder
// while the job lives (see setDifficulty).
type jobRecord struct {
	job    *Job
	target [32]byte
	diff   float64
}

// session is one connection to one pool: handshake, notifications, submits.
type session struct {
	m      *Miner
	pool   *poolEntry
	addr   string
	client *stratum.Client
	v2     *v2conn // set instead of client on a Stratum V2 pool
	log    *slog.Logger

	mu         sync.Mutex
	en1        []byte
	en2Size    int
	mask       uint32
	rolling    bool
	diff       float64 // latest set_difficulty; applies in full from the next notify
	target     [32]byte
	haveDiff   bool
	jobs       map[string]*jobRecord
	jobOrder   []string // keys of jobs, oldest first
	current    *jobRecord
	authorized bool
	reconnect  *reconnectRequest
	closed     bool
}

// maxSessionJobs is how many jobs a session keeps shares for. Pools keep
// about 16; a clean job empties the list anyway.
const maxSessionJobs = 32

// maxExtranonce1Size bounds mining.set_extranonce as
// stratum.ParseSubscribeResult bounds the subscribe reply: with
// extranonce2 it must fit in a scriptSig of at most 100 bytes.
const maxExtranonce1Size = 32

// maxReconnectWait caps the wait a client.reconnect may ask for.
const maxReconnectWait = 10 * time.Minute

type reconnectRequest struct {
	addr string
	wait time.Duration
}

// sessionResult tells the pool loop how the session ended.
type sessionResult struct {
	authorized bool
	lived      time.Duration // from authorize to the end; 0 if never authorized
	reconnect  *reconnectRequest
	err        error
}

func newSession(m *Miner, p *poolEntry, addr string) *session {
	return &session{
		m:    m,
		pool: p,
		addr: addr,
		log:  m.log.With("pool", redactURL(addr)),
		jobs: map[string]*jobRecord{},
	}
}

// run connects, performs the handshake and serves the connection until it
// ends or ctx is cancelled.
func (s *session) run(ctx context.Context) sessionResult {
	if isV2URL(s.addr) {
		return s.runV2(ctx)
	}
	cfg := &s.m.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	c, err := dialPool(dctx, s.addr, cfg.TLS, s.log)
	cancel()
	if err != nil {
		return sessionResult{err: fmt.Errorf("connect %s: %w", redactURL(s.addr), err)}
	}
	s.client = c
	defer c.Close()

	// Notifications are handled from the start: pools send set_difficulty
	// and notify right after subscribe or authorize, before our calls return.
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.notificationLoop(ctx)
	}()
	defer func() {
		c.Close()
		<-loopDone
	}()

	if err := s.handshake(ctx); err != nil {
		return sessionResult{err: err}
	}

	upAt := time.Now()
	s.mu.Lock()
	s.authorized = true
	s.mu.Unlock()
	s.m.sessionUp(s)
	s.publish()
	defer s.m.sessionDown(s)

	select {
	case <-ctx.Done():
		err = ctx.Err()
		s.m.drainSubmits(2 * time.Second)
	case <-c.Done():
		err = c.Err()
		if err == nil {
			err = errors.New("connection closed by pool")
		}
	}
	s.mu.Lock()
	s.closed = true
	rr := s.reconnect
	s.mu.Unlock()
	return sessionResult{authorized: true, lived: time.Since(upAt), reconnect: rr, err: err}
}

func (s *session) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	cctx, cancel := context.WithTimeout(ctx, s.m.cfg.CallTimeout)
	defer cancel()
	return s.client.Call(cctx, method, params)
}

func (s *session) handshake(ctx context.Context) error {
	cfg := &s.m.cfg
	if !cfg.NoVersionRolling {
		s.configure(ctx)
	}

	prev := s.pool.resume
	params := []any{cfg.UserAgent}
	if prev.sessionID != "" {
		params = append(params, prev.sessionID)
	}
	res, err := s.call(ctx, "mining.subscribe", params)
	var serr *stratum.Error
	if err != nil && prev.sessionID != "" && errors.As(err, &serr) {
		// Some pools refuse an unknown or expired session id instead of
		// ignoring it; subscribe afresh.
		s.log.Debug("subscribe with session id refused, subscribing afresh", "err", err)
		res, err = s.call(ctx, "mining.subscribe", []any{cfg.UserAgent})
	}
	if err != nil {
		return fmt.Errorf("mining.subscribe: %w", err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		return fmt.Errorf("mining.subscribe: %w", err)
	}
	en1, _ := hex.DecodeString(sub.Extranonce1) // validated by ParseSubscribeResult
	s.mu.Lock()
	s.en1 = en1
	s.en2Size = sub.Extranonce2Size
	s.mu.Unlock()
	resumed := prev.sessionID != "" && sub.SessionID == prev.sessionID
	s.pool.resume = resumeState{sessionID: sub.SessionID}
	s.log.Info("subscribed", "session", sub.SessionID, "resumed", resumed,
		"extranonce1", sub.Extranonce1, "extranonce2_size", sub.Extranonce2Size)

	// Neither reply matters to mining: a pool that does not know these
	// methods must not delay or break the session, so they run on the side.
	go func() {
		if _, err := s.call(ctx, "mining.extranonce.subscribe", []any{}); err != nil {
			s.log.Debug("mining.extranonce.subscribe not supported", "err", err)
		}
	}()
	if cfg.SuggestDiff > 0 {
		go func() {
			if _, err := s.call(ctx, "mining.suggest_difficulty", []any{cfg.SuggestDiff}); err != nil {
				s.log.Debug("mining.suggest_difficulty not supported", "err", err)
			}
		}()
	}

	res, err = s.call(ctx, "mining.authorize", []any{cfg.User, cfg.Pass})
	if err != nil {
		return fmt.Errorf("mining.authorize %s: %w", cfg.User, err)
	}
	var ok bool
	if err := json.Unmarshal(res, &ok); err != nil || !ok {
		return fmt.Errorf("mining.authorize %s: pool refused the worker (result %s)", cfg.User, truncate(string(res), 64))
	}
	s.log.Info("authorized", "user", cfg.User)
	return nil
}

// configure negotiates BIP 310 version rolling. Any failure (error reply,
// refusal, garbage, or no reply at all from pools that drop unknown
// methods) leaves the session without rolling.
func (s *session) configure(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, s.m.cfg.ConfigureTimeout)
	defer cancel()
	res, err := s.client.Call(cctx, "mining.configure", []any{
		[]string{"version-rolling"},
		map[string]any{
			"version-rolling.mask":          hexUint32(requestedVersionMask),
			"version-rolling.min-bit-count": 2,
		},
	})
	if err != nil {
		s.log.Debug("mining.configure failed, mining without version rolling", "err", err)
		return
	}
	mask, err := parseConfigureReply(res)
	switch {
	case errors.Is(err, errNoRolling):
		s.log.Info("pool does not allow version rolling")
		return
	case errors.Is(err, errConfigureResult):
		s.log.Debug("mining.configure: mining without version rolling", "err", err)
		return
	case err != nil:
		s.log.Warn("mining.configure: mining without version rolling", "err", err)
		return
	}
	s.mu.Lock()
	s.mask = mask
	s.rolling = true
	s.mu.Unlock()
	s.log.Info("version rolling enabled", "mask", hexUint32(mask))
}

var (
	errNoRolling       = errors.New("pool does not allow version rolling")
	errConfigureResult = errors.New("unexpected mining.configure result")
)

// parseConfigureReply reads the version-rolling part of a mining.configure
// result: the mask the miner may roll, which is the pool's grant within
// requestedVersionMask. An error means no rolling: errNoRolling when the
// pool said so, errConfigureResult when the result is not an object.
func parseConfigureReply(res json.RawMessage) (uint32, error) {
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(res, &reply); err != nil || reply == nil {
		return 0, fmt.Errorf("%w %s", errConfigureResult, truncate(string(res), 128))
	}
	var on bool
	if raw, ok := reply["version-rolling"]; !ok || json.Unmarshal(raw, &on) != nil || !on {
		return 0, errNoRolling
	}
	var maskHex string
	if raw, ok := reply["version-rolling.mask"]; ok {
		_ = json.Unmarshal(raw, &maskHex)
	}
	mask, err := parseMask(maskHex)
	if err != nil {
		return 0, fmt.Errorf("bad version-rolling mask: %w", err)
	}
	return mask & requestedVersionMask, nil
}

// parseMask accepts the mask hex with or without leading zeros.
func parseMask(s string) (uint32, error) {
	if s == "" || len(s) > 8 {
		return 0, fmt.Errorf("want 1..8 hex digits, got %q", truncate(s, 16))
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err
}

func (s *session) notificationLoop(ctx context.Context) {
	ch := s.client.Notifications()
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-ch:
			if !ok {
				return
			}
			s.handle(ctx, n)
		}
	}
}

// handle dispatches one server→client message. Nothing a pool sends may
// kill the session: bad messages are logged and dropped.
func (s *session) handle(ctx context.Context, n stratum.Notification) {
	params, _ := n.Params.(json.RawMessage)
	if params == nil {
		if b, ok := n.Params.([]byte); ok {
			params = b
		}
	}
	var err error
	switch n.Method {
	case "mining.notify":
		err = s.onNotify(params)
	case "mining.set_difficulty":
		err = s.onSetDifficulty(params)
	case "mining.set_extranonce":
		err = s.onSetExtranonce(params)
	case "mining.set_version_mask":
		err = s.onSetVersionMask(params)
	case "client.reconnect":
		err = s.onReconnect(params)
		if err == nil {
			s.reply(ctx, n.ID, true, nil)
			// Closing ends run(), which hands the request to the pool loop.
			s.client.Close()
			return
		}
	case "client.get_version":
		s.reply(ctx, n.ID, s.m.cfg.UserAgent, nil)
		return
	case "client.show_message":
		var msg []string
		_ = json.Unmarshal(params, &msg)
		s.log.Info("message from pool", "message", strings.Join(msg, " "))
		s.reply(ctx, n.ID, true, nil)
		return
	default:
		s.log.Debug("ignoring unknown method from pool", "method", truncate(n.Method, 64))
		s.reply(ctx, n.ID, nil, stratum.Errorf(stratum.CodeOther, "method not supported"))
		return
	}
	if err != nil {
		s.log.Warn("ignoring bad message from pool", "method", n.Method, "err", err)
		if n.Method == "client.reconnect" {
			s.reply(ctx, n.ID, nil, stratum.Errorf(stratum.CodeOther, "%v", err))
		}
	}
}

// replier is the optional part of the client API that answers
// server→client requests; without it such requests go unanswered, which
// pools tolerate.
type replier interface {
	Reply(ctx context.Context, id json.RawMessage, result any, rerr *stratum.Error) error
}

func (s *session) reply(ctx context.Context, id json.RawMessage, result any, rerr *stratum.Error) {
	if len(id) == 0 || string(bytes.TrimSpace(id)) == "null" {
		return
	}
	r, ok := any(s.client).(replier)
	if !ok {
		return
	}
	if err := r.Reply(ctx, id, result, rerr); err != nil {
		s.log.Debug("reply to pool request failed", "err", err)
	}
}

func (s *session) onNotify(params json.RawMessage) error {
	p, err := stratum.ParseNotify(params)
	if err != nil {
		return err
	}
	job, err := ParseJob(&p)
	if err != nil {
		return err
	}
	s.addJob(job)
	return nil
}

// addJob makes job the current one, whichever protocol it came in.
func (s *session) addJob(job *Job) {
	s.mu.Lock()
	if job.Clean {
		// Every older job is now stale: candidates for them are dropped.
		clear(s.jobs)
		s.jobOrder = s.jobOrder[:0]
	}
	rec := &jobRecord{job: job, target: s.target, diff: s.diff}
	if !s.haveDiff {
		// Pools send set_difficulty before the first job; when one does
		// not, difficulty 1 is the protocol's default.
		rec.target, _ = DifficultyTarget(1)
		rec.diff = 1
	}
	// A job id reused for different work would let an old candidate pass
	// as a share for the new one; the record pointer check in submit
	// prevents that.
	if _, ok := s.jobs[job.ID]; !ok {
		s.jobOrder = append(s.jobOrder, job.ID)
	}
	s.jobs[job.ID] = rec
	s.current = rec
	// A pool that never sends a clean job must not grow the map forever:
	// the oldest jobs go (their late candidates are discarded as stale).
	for len(s.jobOrder) > maxSessionJobs {
		delete(s.jobs, s.jobOrder[0])
		s.jobOrder = s.jobOrder[1:]
	}
	s.mu.Unlock()
	s.log.Debug("new job", "job", job.ID, "clean", job.Clean, "diff", rec.diff)
	s.publish()
}

// onSetDifficulty records the new difficulty. It applies in full to the next
// job; live jobs take it only when it makes them harder. A share for the
// current job that meets the harder of the two targets is accepted by every
// pool, whichever of the two conventions it follows, so the miner never
// sends a share that a strict pool would count against it.
func (s *session) onSetDifficulty(params json.RawMessage) error {
	var p []json.RawMessage
	if err := json.Unmarshal(params, &p); err != nil || len(p) < 1 {
		return errors.New("mining.set_difficulty: want [difficulty]")
	}
	var diff float64
	if err := json.Unmarshal(p[0], &diff); err != nil {
		// A few pools quote the number.
		var str string
		if json.Unmarshal(p[0], &str) != nil {
			return errors.New("mining.set_difficulty: difficulty is not a number")
		}
		if diff, err = strconv.ParseFloat(str, 64); err != nil {
			return errors.New("mining.set_difficulty: difficulty is not a number")
		}
	}
	target, err := DifficultyTarget(diff)
	if err != nil {
		return fmt.Errorf("mining.set_difficulty: %w", err)
	}
	s.setShareTarget(diff, target)
	return nil
}

// setShareTarget is the part of a difficulty change both protocols share.
func (s *session) setShareTarget(diff float64, target [32]byte) {
	s.mu.Lock()
	s.diff, s.target, s.haveDiff = diff, target, true
	for _, rec := range s.jobs {
		rec.target = harderTarget(rec.target, target)
	}
	var cur [32]byte
	hasCur := s.current != nil
	if hasCur {
		cur = s.current.target
	}
	s.mu.Unlock()
	s.m.setDifficulty(diff)
	if hasCur && s.m.isCurrent(s) {
		s.m.sched.setTarget(cur)
	}
	s.log.Info("difficulty set", "diff", diff)
}

// onSetExtranonce switches extranonce1 at once (as cpuminer-opt does): the
// current job is republished with it and candidates built on the old one
// are dropped, since the pool checks shares against the new value.
func (s *session) onSetExtranonce(params json.RawMessage) error {
	var p []json.RawMessage
	if err := json.Unmarshal(params, &p); err != nil || len(p) < 1 {
		return errors.New("mining.set_extranonce: want [extranonce1, extranonce2_size]")
	}
	var en1Hex string
	if err := json.Unmarshal(p[0], &en1Hex); err != nil {
		return errors.New("mining.set_extranonce: extranonce1 is not a string")
	}
	en1, err := hex.DecodeString(en1Hex)
	if err != nil {
		return fmt.Errorf("mining.set_extranonce: extranonce1: %w", err)
	}
	if len(en1) > maxExtranonce1Size {
		return fmt.Errorf("mining.set_extranonce: extranonce1 of %d bytes (at most %d)", len(en1), maxExtranonce1Size)
	}
	s.mu.Lock()
	size := s.en2Size
	s.mu.Unlock()
	if len(p) > 1 {
		var f float64
		if err := json.Unmarshal(p[1], &f); err != nil || f < 0 || f > 32 || f != float64(int(f)) {
			return errors.New("mining.set_extranonce: extranonce2_size is not an integer 0..32")
		}
		size = int(f)
	}
	s.mu.Lock()
	s.en1, s.en2Size = en1, size
	s.mu.Unlock()
	s.log.Info("extranonce changed", "extranonce1", en1Hex, "extranonce2_size", size)
	s.publish()
	return nil
}

func (s *session) onSetVersionMask(params json.RawMessage) error {
	var p []string
	if err := json.Unmarshal(params, &p); err != nil || len(p) < 1 {
		return errors.New("mining.set_version_mask: want [mask]")
	}
	mask, err := parseMask(p[0])
	if err != nil {
		return fmt.Errorf("mining.set_version_mask: %w", err)
	}
	s.mu.Lock()
	if !s.rolling {
		s.mu.Unlock()
		// Without a configure grant the pool expects no version bits at
		// all; starting to roll now would only produce rejects.
		s.log.Debug("ignoring mining.set_version_mask without negotiated version rolling")
		return nil
	}
	s.mask = mask & requestedVersionMask
	s.mu.Unlock()
	s.log.Info("version mask changed", "mask", hexUint32(mask&requestedVersionMask))
	s.publish()
	return nil
}

// onReconnect parses client.reconnect [host, port, wait]: every element is
// optional, an empty host means this host, port may be a number or string.
func (s *session) onReconnect(params json.RawMessage) error {
	var p []json.RawMessage
	if len(params) > 0 && string(params) != "null" {
		if err := json.Unmarshal(params, &p); err != nil {
			return errors.New("client.reconnect: params must be an array")
		}
	}
	cur, err := parseStratumURL(s.addr)
	if err != nil {
		return err
	}
	host, port := cur.Hostname(), cur.Port()
	str := func(raw json.RawMessage) (string, error) {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", err
		}
		switch t := v.(type) {
		case nil:
			return "", nil
		case string:
			return t, nil
		case float64:
			return strconv.FormatFloat(t, 'f', -1, 64), nil
		}
		return "", errors.New("not a string or number")
	}
	if len(p) > 0 {
		h, err := str(p[0])
		if err != nil {
			return fmt.Errorf("client.reconnect: host: %w", err)
		}
		if h != "" {
			host = h
		}
	}
	if len(p) > 1 {
		pt, err := str(p[1])
		if err != nil {
			return fmt.Errorf("client.reconnect: port: %w", err)
		}
		if pt != "" {
			if n, err := strconv.Atoi(pt); err != nil || n <= 0 || n > 65535 {
				return fmt.Errorf("client.reconnect: bad port %q", truncate(pt, 16))
			}
			port = pt
		}
	}
	var wait time.Duration
	if len(p) > 2 {
		w, err := str(p[2])
		if err != nil {
			return fmt.Errorf("client.reconnect: wait: %w", err)
		}
		if w != "" {
			sec, err := strconv.ParseFloat(w, 64)
			if err != nil || !(sec >= 0) { // NaN too
				return fmt.Errorf("client.reconnect: bad wait %q", truncate(w, 16))
			}
			// A pool asking for more than ten minutes is broken; cap it so
			// the miner does not sit idle for hours. The cap comes before
			// the conversion, which overflows for huge values.
			wait = maxReconnectWait
			if sec < maxReconnectWait.Seconds() {
				wait = time.Duration(sec * float64(time.Second))
			}
		}
	}
	if strings.ContainsAny(host, "/@?# ") {
		return fmt.Errorf("client.reconnect: bad host %q", truncate(host, 64))
	}
	cur.Host = net.JoinHostPort(host, port)
	// Whatever the pool sent must make a URL the pool loop can dial.
	if u, err := parseStratumURL(cur.String()); err != nil || u.Hostname() != host || u.Port() != port {
		return fmt.Errorf("client.reconnect: bad host %q", truncate(host, 64))
	}
	rr := &reconnectRequest{addr: cur.String(), wait: wait}
	s.mu.Lock()
	s.reconnect = rr
	s.mu.Unlock()
	s.log.Info("pool asked to reconnect", "to", redactURL(rr.addr), "wait", wait)
	return nil
}

// publish hands the current job, as this session sees it now, to the
// devices. Called on every change of job, extranonce or mask.
func (s *session) publish() {
	s.mu.Lock()
	if !s.authorized || s.closed || s.current == nil {
		s.mu.Unlock()
		return
	}
	mask := uint32(0)
	if s.rolling {
		mask = s.mask
	}
	t := &template{
		job:     s.current.job,
		en1:     s.en1,
		en2Size: s.en2Size,
		mask:    mask,
		owner:   s,
		rec:     s.current,
	}
	target := s.current.target
	s.mu.Unlock()
	s.m.publish(s, t, target)
}

// errStale marks a candidate whose work the pool no longer accepts.
var errStale = errors.New("stale")

// prepareSubmit checks a candidate against the live session state and
// returns the submit params and the target the share must meet.
func (s *session) prepareSubmit(sl *Slice, nonce uint32) (params []any, target [32]byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := sl.tmpl
	if s.closed {
		return nil, target, errStale
	}
	rec := s.jobs[sl.JobID]
	if rec == nil || rec != t.rec {
		return nil, target, errStale
	}
	if !bytes.Equal(t.en1, s.en1) || len(sl.Extranonce2) != s.en2Size {
		return nil, target, errStale
	}
	mask := uint32(0)
	if s.rolling {
		mask = s.mask
	}
	rolled := (sl.Version ^ rec.job.Version) // bits this miner changed
	if rolled&^mask != 0 {
		return nil, target, errStale
	}
	params = []any{
		s.m.cfg.User,
		sl.JobID,
		hex.EncodeToString(sl.Extranonce2),
		hexUint32(rec.job.NTime),
		hexUint32(nonce),
	}
	if s.rolling {
		// BIP 310: the version's bits inside the mask; the pool rebuilds
		// (job version &^ mask) | (these & mask).
		params = append(params, hexUint32(sl.Version&mask))
	}
	return params, rec.target, nil
}

// parseStratumURL accepts stratum+tcp://host:port, tcp://host:port or a bare
// host:port, for TLS stratum+ssl://host:port (or the stratum+tls, ssl
// and tls spellings other miners use), and for Stratum V2
// stratum2+tcp://host:port/AUTHORITY_PUBKEY.
func parseStratumURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		raw = "stratum+tcp://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("pool url %q: %w", redactURL(raw), err)
	}
	switch u.Scheme {
	case "stratum+tcp", "stratum", "tcp":
	case stratum2.URLScheme:
		// The key is what authenticates the pool: a V2 URL without a
		// valid one is refused here, before any connection.
		if _, err := stratum2.ParseURL(raw); err != nil {
			return nil, fmt.Errorf("pool url %q: %w", redactURL(raw), err)
		}
	default:
		if !isTLSScheme(u.Scheme) {
			return nil, fmt.Errorf("pool url %q: unsupported scheme %q (want stratum+tcp, stratum+ssl or stratum2+tcp)", redactURL(raw), u.Scheme)
		}
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("pool url %q: want host:port", redactURL(raw))
	}
	return u, nil
}

func isTLSScheme(scheme string) bool {
	switch scheme {
	case "stratum+ssl", "stratum+tls", "ssl", "tls":
		return true
	}
	return false
}

// redactURL drops any user:password from a URL before it is logged.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return raw
}
