package stratum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
)

// Reasons a session ends, as passed to Handler.Disconnected (possibly
// wrapped; use errors.Is). A miner hanging up is io.EOF.
var (
	ErrSlowConsumer     = errors.New("stratum: slow consumer")
	ErrAuthTimeout      = errors.New("stratum: not authorized in time")
	ErrIdleTimeout      = errors.New("stratum: idle timeout")
	ErrTooManyMalformed = errors.New("stratum: too many malformed messages")
	ErrHandlerPanic     = errors.New("stratum: handler panicked")
	ErrServerClosed     = errors.New("stratum: server shutting down")
	ErrSessionClosed    = errors.New("stratum: session closed")
)

const (
	defaultIdleTimeout          = 10 * time.Minute
	defaultAuthTimeout          = 60 * time.Second
	defaultWriteTimeout         = 10 * time.Second
	defaultSendQueue            = 256
	defaultMaxRequestsPerSecond = 100

	// maxMalformed is how many unparseable messages a session may send
	// before it is dropped: enough to survive a miner's occasional odd
	// line, too few to let a port scanner or an HTTP client linger.
	maxMalformed = 10

	// flushTimeout bounds how long a closing session may spend delivering
	// its last queued lines (an error reply, a client.reconnect).
	flushTimeout = time.Second

	// maxWriteBatch is how many queued lines one writev may carry; a job
	// broadcast right after a difficulty change then costs one syscall.
	maxWriteBatch = 64
)

// Handler receives the traffic of every session.
type Handler interface {
	// Connected is called before the first read.
	Connected(s *Session)
	// Handle is called sequentially per session, in line order, for every
	// well-formed request with a non-empty method, known or not. It replies
	// with s.Reply or s.ReplyError.
	Handle(s *Session, req *Request)
	// Disconnected is called exactly once per session, after the last
	// Handle has returned.
	Disconnected(s *Session, err error)
}

// Server accepts Stratum connections and runs one Session per connection.
// The zero value of every field but Handler is a sensible default.
type Server struct {
	Handler Handler

	// MaxLineBytes caps an incoming line; a longer one closes the
	// connection. Default DefaultMaxLine.
	MaxLineBytes int
	// IdleTimeout is the longest wait for the next line. Miners at high
	// difficulty can be silent for minutes. Default 10 minutes.
	IdleTimeout time.Duration
	// AuthTimeout closes a connection that has not been authorized
	// (Session.SetAuthorized) in time. Default 60 seconds.
	AuthTimeout time.Duration
	// WriteTimeout bounds each write; a miner that cannot take our bytes in
	// time is dropped. Default 10 seconds.
	WriteTimeout time.Duration
	// SendQueue is the number of outgoing lines a session may have queued.
	// A full queue drops the session instead of blocking the sender, so one
	// stuck miner cannot stall a job broadcast. Default 256.
	SendQueue int
	// MaxRequestsPerSecond is the sustained request rate per session, with
	// bursts of twice that. A session above it is read more slowly (TCP
	// pushes back on the sender), not closed: on regtest an honest miner
	// finds blocks faster than any flood guard would expect. Default 100.
	MaxRequestsPerSecond int
	// Logger receives connection-level events. Default slog.Default().
	Logger *slog.Logger

	// now and sleep are the flood guard's clock, replaceable in tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration)

	mu       sync.Mutex
	serving  bool
	ln       net.Listener
	ready    chan struct{}
	sessions map[*Session]struct{} // live sessions; Sessions counts them
	nextID   atomic.Uint64
}

// serverConfig is the Server's settings with defaults applied, fixed for
// the lifetime of one Serve call.
type serverConfig struct {
	maxLine      int
	idle         time.Duration
	auth         time.Duration
	write        time.Duration
	queue        int
	rate         int
	log          *slog.Logger
	now          func() time.Time
	sleep        func(ctx context.Context, d time.Duration)
	handler      Handler
	registerDone func(*Session)
}

func (srv *Server) config() *serverConfig {
	c := &serverConfig{
		maxLine: srv.MaxLineBytes,
		idle:    srv.IdleTimeout,
		auth:    srv.AuthTimeout,
		write:   srv.WriteTimeout,
		queue:   srv.SendQueue,
		rate:    srv.MaxRequestsPerSecond,
		log:     srv.Logger,
		now:     srv.now,
		sleep:   srv.sleep,
		handler: srv.Handler,
	}
	if c.maxLine <= 0 {
		c.maxLine = DefaultMaxLine
	}
	if c.idle <= 0 {
		c.idle = defaultIdleTimeout
	}
	if c.auth <= 0 {
		c.auth = defaultAuthTimeout
	}
	if c.write <= 0 {
		c.write = defaultWriteTimeout
	}
	if c.queue <= 0 {
		c.queue = defaultSendQueue
	}
	if c.rate <= 0 {
		c.rate = defaultMaxRequestsPerSecond
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = func(ctx context.Context, d time.Duration) { backoff.Sleep(ctx, d) }
	}
	return c
}

// ListenAndServe listens on addr (TCP) and calls Serve.
func (srv *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("stratum: listen on %s: %w", addr, err)
	}
	return srv.Serve(ctx, ln)
}

// Ready is closed once Serve has its listener; Addr is valid from then on.
func (srv *Server) Ready() <-chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.readyLocked()
}

func (srv *Server) readyLocked() chan struct{} {
	if srv.ready == nil {
		srv.ready = make(chan struct{})
	}
	return srv.ready
}

// Addr is the listener's address once Serve has started, else nil.
func (srv *Server) Addr() net.Addr {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.ln == nil {
		return nil
	}
	return srv.ln.Addr()
}

// Sessions is the number of live sessions. A session leaves the count just
// before its Handler.Disconnected call, so whoever has seen Disconnected
// sees the count without that session.
func (srv *Server) Sessions() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// Serve accepts connections on ln until ctx is done or ln fails. On return
// the listener is closed and every session has ended, Disconnected included.
// It returns nil after ctx is done and the accept error otherwise. A Server
// serves at most once.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	if srv.Handler == nil {
		return errors.New("stratum: Server.Handler is nil")
	}
	cfg := srv.config()
	srv.mu.Lock()
	if srv.serving {
		srv.mu.Unlock()
		return errors.New("stratum: Server already serving")
	}
	srv.serving = true
	srv.ln = ln
	srv.sessions = make(map[*Session]struct{})
	close(srv.readyLocked())
	srv.mu.Unlock()

	cfg.registerDone = srv.unregister
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	var wg sync.WaitGroup
	defer func() {
		srv.mu.Lock()
		for s := range srv.sessions {
			s.closeWith(ErrServerClosed, false)
		}
		srv.mu.Unlock()
		wg.Wait()
	}()

	cfg.log.Info("stratum server listening", "addr", ln.Addr().String())
	retry := backoff.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !isTemporaryAcceptError(err) {
				return fmt.Errorf("stratum: accept: %w", err)
			}
			// Out of file descriptors and the like: wait for sessions to
			// end instead of spinning on the listener.
			delay := retry.Next()
			cfg.log.Warn("stratum accept failed; retrying", "err", err, "delay", delay)
			if !backoff.Sleep(ctx, delay) {
				return nil
			}
			continue
		}
		retry.Reset()
		s := newSession(ctx, srv.nextID.Add(1), conn, cfg)
		srv.mu.Lock()
		srv.sessions[s] = struct{}{}
		srv.mu.Unlock()
		wg.Go(s.run)
	}
}

func (srv *Server) unregister(s *Session) {
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
}

func isTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET)
}

// Session is one miner connection. Its send methods are safe for concurrent
// use and never block: lines go to a bounded queue drained by the session's
// own writer goroutine.
type Session struct {
	id     uint64
	conn   net.Conn
	remote string
	cfg    *serverConfig
	log    *slog.Logger

	out          chan []byte
	ctx          context.Context
	cancel       context.CancelCauseFunc
	closeOnce    sync.Once
	flushOnClose atomic.Bool
	writerDone   chan struct{}

	authorized atomic.Bool
	authTimer  *time.Timer

	stateMu sync.Mutex
	state   any
}

func newSession(ctx context.Context, id uint64, conn net.Conn, cfg *serverConfig) *Session {
	s := &Session{
		id:         id,
		conn:       conn,
		cfg:        cfg,
		out:        make(chan []byte, cfg.queue),
		writerDone: make(chan struct{}),
	}
	if conn != nil {
		s.remote = conn.RemoteAddr().String()
	}
	s.log = cfg.log.With("session", id, "remote", s.remote)
	// Sessions are ended by Serve explicitly, so their context keeps the
	// server context's values but not its cancellation.
	s.ctx, s.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	return s
}

// ID is unique among the sessions of one Server.
func (s *Session) ID() uint64 { return s.id }

// RemoteAddr is the miner's address as host:port.
func (s *Session) RemoteAddr() string { return s.remote }

// Logger returns the server logger annotated with this session.
func (s *Session) Logger() *slog.Logger { return s.log }

// Context is cancelled when the session ends; handlers can hang blocking
// work off it. context.Cause gives the reason.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err is why the session ended, or nil while it is live.
func (s *Session) Err() error { return context.Cause(s.ctx) }

// SetAuthorized marks the session authorized and stops the auth timer.
func (s *Session) SetAuthorized() {
	s.authorized.Store(true)
	if s.authTimer != nil {
		s.authTimer.Stop()
	}
}

// Authorized reports whether SetAuthorized has been called.
func (s *Session) Authorized() bool { return s.authorized.Load() }

// SetState stores the handler's per-session state.
func (s *Session) SetState(v any) {
	s.stateMu.Lock()
	s.state = v
	s.stateMu.Unlock()
}

// State returns what SetState stored.
func (s *Session) State() any {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.state
}

// Reply queues a success reply to the request with the given id.
func (s *Session) Reply(id json.RawMessage, result any) {
	r := Response{ID: id, Result: result}
	line, err := r.appendJSON(make([]byte, 0, 64))
	if err != nil {
		s.log.Error("stratum reply not encodable", "err", err)
		s.ReplyError(id, Errorf(CodeOther, "internal error"))
		return
	}
	s.enqueue(append(line, '\n'))
}

// ReplyError queues an error reply; a nil err is sent as CodeOther.
func (s *Session) ReplyError(id json.RawMessage, err *Error) {
	if err == nil {
		err = Errorf(CodeOther, "unknown error")
	}
	r := Response{ID: id, Error: err}
	line, _ := r.appendJSON(make([]byte, 0, 64+len(err.Message))) // no result to fail on
	s.enqueue(append(line, '\n'))
}

// Notify encodes and queues a notification. It returns false if the
// session is closed (a full queue closes it) or params cannot be encoded.
func (s *Session) Notify(method string, params any) bool {
	line, err := EncodeNotification(method, params)
	if err != nil {
		s.log.Error("stratum notification not encodable", "method", method, "err", err)
		return false
	}
	return s.enqueue(line)
}

// SendLine queues a pre-encoded line (see EncodeNotification). The slice
// may be shared with other sessions: it is only read, and only until it
// has been written.
func (s *Session) SendLine(line []byte) bool {
	return s.enqueue(line)
}

func (s *Session) enqueue(line []byte) bool {
	if s.ctx.Err() != nil {
		return false
	}
	select {
	case s.out <- line:
		return true
	default:
		s.log.Warn("stratum send queue full; dropping slow miner", "queue", cap(s.out))
		s.closeWith(ErrSlowConsumer, false)
		return false
	}
}

// Close ends the session. Lines already queued (an error reply, a
// client.reconnect) are still written, within a short bound.
func (s *Session) Close(reason string) {
	s.closeWith(fmt.Errorf("%w: %s", ErrSessionClosed, reason), true)
}

// closeWith ends the session with cause err; the first cause wins. With
// flush the writer delivers what is queued before closing the socket;
// without it the socket is closed at once, which also unblocks a writer
// stuck on a miner that does not read.
func (s *Session) closeWith(err error, flush bool) {
	s.closeOnce.Do(func() {
		s.flushOnClose.Store(flush)
		s.cancel(err)
		if s.conn == nil {
			return
		}
		if flush {
			_ = s.conn.SetReadDeadline(time.Now())
		} else {
			_ = s.conn.Close()
		}
	})
}

// run is the session's reader goroutine: it owns the read side and every
// Handler call, so Handle is sequential and Disconnected comes last.
func (s *Session) run() {
	go s.writeLoop()
	s.authTimer = time.AfterFunc(s.cfg.auth, func() {
		if !s.authorized.Load() {
			s.log.Info("stratum session not authorized in time", "timeout", s.cfg.auth)
			s.closeWith(ErrAuthTimeout, true)
		}
	})
	if s.call("Connected", func() { s.cfg.handler.Connected(s) }) {
		s.readLoop()
	}
	s.closeWith(io.EOF, false) // no-op unless the read loop left without a cause
	<-s.writerDone
	s.authTimer.Stop()
	_ = s.conn.Close()
	err := s.Err()
	s.log.Debug("stratum session ended", "err", err)
	s.cfg.registerDone(s) // before Disconnected: Sessions agrees with it
	s.call("Disconnected", func() { s.cfg.handler.Disconnected(s, err) })
}

// call runs a Handler method, turning a panic into the end of this session
// only: one bad message must not take down the pool.
func (s *Session) call(what string, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("stratum handler panicked", "in", what, "panic", r, "stack", string(debug.Stack()))
			s.closeWith(fmt.Errorf("%w in %s: %v", ErrHandlerPanic, what, r), false)
			ok = false
		}
	}()
	fn()
	return true
}

func (s *Session) readLoop() {
	lr := NewLineReader(s.conn, s.cfg.maxLine)
	var dec Decoder
	start := s.cfg.now()
	bucket := newTokenBucket(s.cfg.rate, start)
	throttled := 0 // requests read late because of the rate limit
	requests := 0
	defer func() {
		if throttled > 0 {
			s.log.Info("stratum session was read more slowly for its request rate",
				"throttled_requests", throttled, "requests", requests)
		}
	}()
	malformed := 0
	for s.ctx.Err() == nil {
		_ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.idle))
		line, err := lr.ReadLine()
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.readFailed(err)
			return
		}
		requests++
		if wait := bucket.take(s.cfg.now()); wait > 0 {
			if throttled == 0 {
				// Once per session: a miner above the limit is either
				// broken or flooding, and either is worth a look.
				s.log.Warn("stratum session over its request rate; reading it more slowly",
					"limit_per_second", s.cfg.rate, "requests", requests,
					"session_age", s.cfg.now().Sub(start).Round(time.Millisecond))
			}
			throttled++
			s.cfg.sleep(s.ctx, wait)
		}
		req, err := dec.Decode(line)
		if err != nil {
			if err == errNotRequest {
				continue
			}
			malformed++
			var serr *Error
			errors.As(err, &serr)
			s.ReplyError(req.ID, serr)
			if malformed > maxMalformed {
				s.log.Info("stratum session sent too many malformed messages; closing", "count", malformed)
				s.closeWith(ErrTooManyMalformed, true)
				return
			}
			continue
		}
		if !s.call("Handle", func() { s.cfg.handler.Handle(s, req) }) {
			return
		}
	}
}

func (s *Session) readFailed(err error) {
	switch {
	case errors.Is(err, ErrLineTooLong):
		s.log.Warn("stratum line too long; closing", "max", s.cfg.maxLine)
		s.closeWith(ErrLineTooLong, false)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.closeWith(fmt.Errorf("%w: nothing received for %s", ErrIdleTimeout, s.cfg.idle), false)
	case errors.Is(err, io.EOF):
		s.closeWith(io.EOF, false)
	default:
		s.closeWith(fmt.Errorf("stratum: read: %w", err), false)
	}
}

// writeLoop is the only writer of the connection. It batches whatever is
// queued into one writev.
func (s *Session) writeLoop() {
	defer close(s.writerDone)
	defer s.conn.Close()
	batch := make(net.Buffers, 0, maxWriteBatch)
	for {
		select {
		case <-s.ctx.Done():
			if s.flushOnClose.Load() {
				_ = s.conn.SetWriteDeadline(time.Now().Add(min(s.cfg.write, flushTimeout)))
				for {
					batch = s.collect(batch[:0])
					if len(batch) == 0 || s.write(batch) != nil {
						return
					}
				}
			}
			return
		case line := <-s.out:
			batch = s.collect(append(batch[:0], line))
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.write))
			if err := s.write(batch); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					s.log.Warn("stratum write timed out; dropping slow miner", "timeout", s.cfg.write)
					err = fmt.Errorf("%w: write blocked for %s", ErrSlowConsumer, s.cfg.write)
				} else {
					err = fmt.Errorf("stratum: write: %w", err)
				}
				s.closeWith(err, false)
				return
			}
		}
	}
}

// collect appends queued lines to batch without waiting.
func (s *Session) collect(batch net.Buffers) net.Buffers {
	for len(batch) < cap(batch) {
		select {
		case line := <-s.out:
			batch = append(batch, line)
		default:
			return batch
		}
	}
	return batch
}

func (s *Session) write(batch net.Buffers) error {
	pending := batch // WriteTo consumes its receiver
	_, err := pending.WriteTo(s.conn)
	clear(batch) // drop references to shared broadcast lines
	return err
}

// tokenBucket is the per-session flood guard. It is used by the reader
// goroutine only, so it needs no lock.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(perSecond int, now time.Time) *tokenBucket {
	burst := float64(2 * perSecond)
	return &tokenBucket{rate: float64(perSecond), burst: burst, tokens: burst, last: now}
}

// take spends a token and returns how long to wait before acting on the
// request: zero within the rate, else until the spent token has refilled.
func (b *tokenBucket) take(now time.Time) time.Duration {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed*b.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
