package stratum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
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
	defaultMaxRequestsPerSecond = 10_000
	defaultMaxErrorsPerSecond   = 100

	// maxMalformed is how many unparseable messages a session may send
	// before it is dropped: enough to survive a miner's occasional odd
	// line, too few to let a port scanner or an HTTP client linger.
	maxMalformed = 10

	// flushTimeout bounds how long a closing session may spend delivering
	// its last queued lines (an error reply, a client.reconnect).
	flushTimeout = time.Second

	// workQueue is how many sessions may wait for a shared writer; beyond
	// it a session gets a writer goroutine of its own, so a sender never
	// waits.
	workQueue = 1 << 16

	// maxWriteBatch is how many queued lines one writev may carry; a job
	// broadcast right after a difficulty change then costs one syscall.
	// It is also how many replies the reader lets pile up before it
	// writes them, however many more lines it has buffered.
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

// LineObserver is implemented by a Handler that wants to hear of every
// line a session sends, malformed or not (a ban on an address whose lines
// are mostly garbage needs both counts). It is called on the session's
// reader, before Handle.
type LineObserver interface {
	ObserveLine(s *Session, malformed bool)
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
	// MaxRequestsPerSecond is the overall guard on a session's request
	// rate, with bursts of twice that. It is far above what a miner sends:
	// a farm proxy forwards the shares of hundreds of machines on one
	// connection, and honest work must not wait. A session above it is
	// read more slowly (TCP pushes back on the sender), not closed.
	// Default 10,000.
	MaxRequestsPerSecond int
	// MaxErrorsPerSecond paces what is wrong: malformed lines and requests
	// answered with an error (ReplyError, from any goroutine), with bursts
	// of twice that. A session above it is read more slowly, not closed: a
	// miner on stale work sends a burst of rejected shares after every new
	// block, and pacing bounds a flood's cost just as well. Default 100.
	MaxErrorsPerSecond int
	// Logger receives connection-level events. Default slog.Default().
	Logger *slog.Logger
	// Gate, when set, caps the sessions and refuses banned addresses; one
	// Gate may serve several Servers. Nil: no caps.
	Gate *Gate

	// now and sleep are the flood guard's clock, replaceable in tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration)

	mu       sync.Mutex
	serving  bool
	draining bool // StopAccepting was called
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
	errRate      int
	log          *slog.Logger
	now          func() time.Time
	sleep        func(ctx context.Context, d time.Duration)
	handler      Handler
	lines        LineObserver // the handler, if it observes lines
	gate         *Gate
	registerDone func(*Session)
	// sessions counts the goroutines of live sessions, for Serve to wait
	// for; nil outside Serve.
	sessions *sync.WaitGroup
	// work feeds the shared writers: sessions with lines queued by other
	// goroutines. nil outside Serve (tests), where each gets a writer.
	work chan *Session
}

func (srv *Server) config() *serverConfig {
	c := &serverConfig{
		maxLine: srv.MaxLineBytes,
		idle:    srv.IdleTimeout,
		auth:    srv.AuthTimeout,
		write:   srv.WriteTimeout,
		queue:   srv.SendQueue,
		rate:    srv.MaxRequestsPerSecond,
		errRate: srv.MaxErrorsPerSecond,
		log:     srv.Logger,
		now:     srv.now,
		sleep:   srv.sleep,
		handler: srv.Handler,
		gate:    srv.Gate,
	}
	c.lines, _ = srv.Handler.(LineObserver)
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
	if c.errRate <= 0 {
		c.errRate = defaultMaxErrorsPerSecond
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
	cfg.work = make(chan *Session, workQueue)
	var writers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		writers.Go(func() {
			for s := range cfg.work {
				s.writeShared()
			}
		})
	}
	defer func() {
		// After every session ended (deferred below, so run first):
		// nothing sends to work any more.
		close(cfg.work)
		writers.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()

	var wg sync.WaitGroup
	cfg.sessions = &wg
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
			if srv.isDraining() {
				// Sessions go on until ctx ends (see StopAccepting).
				<-ctx.Done()
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
		if cfg.gate != nil {
			if err := cfg.gate.Admit(&s.slot); err != nil {
				if cfg.log.Enabled(ctx, slog.LevelDebug) {
					cfg.log.Debug("stratum connection refused", "remote", s.remote, "reason", err)
				}
				RefuseConn(conn)
				continue
			}
		}
		srv.mu.Lock()
		srv.sessions[s] = struct{}{}
		srv.mu.Unlock()
		wg.Go(s.run)

	}
}

// StopAccepting closes the listener and keeps the sessions: a pool node
// going down tells its miners to reconnect elsewhere and gives them time
// to leave, and to have their last shares answered, before Serve's
// context ends them.
func (srv *Server) StopAccepting() {
	srv.mu.Lock()
	srv.draining = true
	ln := srv.ln
	srv.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
}

func (srv *Server) isDraining() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.draining
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
// use, also after the session ended, and never block: lines go to a
// bounded queue. The reader goroutine writes its own replies itself, all
// the replies to the lines of one read in one write, just before it reads
// again; lines sent from other goroutines (broadcasts, replies made later)
// are written by the Server's shared writers without waiting; only a
// session whose socket is full gets a writer goroutine of its own, which
// lives until its backlog is written. An idle session has no writer
// goroutine and no queue. While the reader is inside Handle, lines from
// other goroutines wait for its write too: a Handle that blocks for long
// delays that session's jobs (its requests wait anyway).
type Session struct {
	id     uint64
	conn   net.Conn
	remote string
	cfg    *serverConfig
	logp   atomic.Pointer[slog.Logger] // see Logger

	ctx          context.Context
	cancel       context.CancelCauseFunc
	closeOnce    sync.Once
	flushOnClose atomic.Bool

	wmu sync.Mutex
	// queue holds the lines not yet handed to the socket, at most
	// cfg.queue; spare is the other half of the double buffer.
	queue, spare [][]byte
	// writing: a goroutine (the writer, or the reader flushing) owns the
	// socket's write side and will write whatever is queued.
	writing bool
	// inBatch: the reader is handling lines it has already read and
	// writes the queue itself before it next waits, so nobody else needs
	// to start a writer.
	inBatch bool
	// wclosed: the session ended; nothing more is queued.
	wclosed bool
	// queuedSeq counts the lines ever queued, writtenSeq those written or
	// dropped; marks are the followed broadcasts among them (see FanOut).
	queuedSeq, writtenSeq uint64
	marks                 []fanOutMark
	writers               sync.WaitGroup
	// wdeadline is the write deadline set last, by whoever owns the
	// write side (see write).
	wdeadline time.Time

	errReplies atomic.Uint64 // ReplyError calls, for the error pacing
	raw        rawWriter     // the shared writers' non-blocking writes

	authorized atomic.Bool
	// authTimer is dropped once stopped: an authorized session keeps no
	// timer (nor its callback).
	authTimer atomic.Pointer[time.Timer]

	stateMu sync.Mutex
	state   any

	// slot is the session's place in the Gate; its key is the client key
	// (IPv4 address or IPv6 /64) the Gate counts and bans under.
	slot GateSlot
}

func newSession(ctx context.Context, id uint64, conn net.Conn, cfg *serverConfig) *Session {
	s := &Session{
		id:   id,
		conn: conn,
		cfg:  cfg,
	}
	if conn != nil {
		s.remote = conn.RemoteAddr().String()
		s.slot.key = keyOf(conn)
	}
	s.slot.close = s.gateClose
	// Sessions are ended by Serve explicitly, so their context keeps the
	// server context's values but not its cancellation.
	s.ctx, s.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	return s
}

// ID is unique among the sessions of one Server.
func (s *Session) ID() uint64 { return s.id }

// RemoteAddr is the miner's address as host:port.
func (s *Session) RemoteAddr() string { return s.remote }

// Key is the miner's client key: its IPv4 address or IPv6 /64, what caps
// and bans count.
func (s *Session) Key() netip.Prefix { return s.slot.key }

// Logger returns the server logger annotated with this session.
func (s *Session) Logger() *slog.Logger {
	// Made on first use: most sessions never log, and the annotated
	// logger is a few hundred bytes per idle session.
	if l := s.logp.Load(); l != nil {
		return l
	}
	l := s.cfg.log.With("session", s.id, "remote", s.remote)
	if s.logp.CompareAndSwap(nil, l) {
		return l
	}
	return s.logp.Load()
}

// Context is cancelled when the session ends; handlers can hang blocking
// work off it. context.Cause gives the reason.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err is why the session ended, or nil while it is live.
func (s *Session) Err() error { return context.Cause(s.ctx) }

// SetAuthorized marks the session authorized and stops the auth timer.
func (s *Session) SetAuthorized() {
	if s.authorized.Swap(true) {
		return
	}
	s.stopAuthTimer()
	if s.cfg.gate != nil {
		s.cfg.gate.Authorized(&s.slot)
	}
}

// gateClose ends the session for the Gate: evicted to make room (no
// flush: it never authorized) or its address banned.
func (s *Session) gateClose(err error) {
	if errors.Is(err, ErrEvicted) {
		s.Logger().Info("stratum session evicted", "reason", err)
		s.closeWith(err, false)
		return
	}
	s.Logger().Info("stratum session closed", "reason", err)
	s.closeWith(err, true)
}

func (s *Session) stopAuthTimer() {
	if t := s.authTimer.Swap(nil); t != nil {
		t.Stop()
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
	line, err := r.appendJSON(make([]byte, 0, 48+len(id)))
	if err != nil {
		s.Logger().Error("stratum reply not encodable", "err", err)
		s.ReplyError(id, Errorf(CodeOther, "internal error"))
		return
	}
	s.enqueue(append(line, '\n'))
}

// ReplyError queues an error reply; a nil err is sent as CodeOther. Error
// replies count towards the session's error pacing (MaxErrorsPerSecond).
func (s *Session) ReplyError(id json.RawMessage, err *Error) {
	s.errReplies.Add(1)
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
		s.Logger().Error("stratum notification not encodable", "method", method, "err", err)
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
	s.wmu.Lock()
	if s.wclosed || s.ctx.Err() != nil {
		s.wmu.Unlock()
		return false
	}
	if len(s.queue) >= s.cfg.queue {
		s.wmu.Unlock()
		s.Logger().Warn("stratum send queue full; dropping slow miner", "queue", s.cfg.queue)
		s.closeWith(ErrSlowConsumer, false)
		return false
	}
	s.queue = append(s.queue, line)
	if f := trackedFanOut(line); f != nil {
		s.marks = append(s.marks, fanOutMark{f, s.queuedSeq})
	}
	s.queuedSeq++
	if !s.writing && !s.inBatch {
		s.writing = true
		s.writers.Add(1)
		select {
		case s.cfg.work <- s: // a nil work (no Serve) never takes
		default:
			go s.writeLoop()
		}
	}
	s.wmu.Unlock()
	return true
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
			// Wake the reader, and bound a write already under way by
			// the flush's deadline rather than the full write timeout.
			_ = s.conn.SetReadDeadline(time.Now())
			_ = s.conn.SetWriteDeadline(time.Now().Add(min(s.cfg.write, flushTimeout)))
		} else {
			_ = s.conn.Close()
		}
	})
}

// run is the session's reader goroutine: it owns the read side and every
// Handler call, so Handle is sequential and Disconnected comes last.
func (s *Session) run() {
	s.authTimer.Store(time.AfterFunc(s.cfg.auth, func() {
		if !s.authorized.Load() {
			s.Logger().Info("stratum session not authorized in time", "timeout", s.cfg.auth)
			s.closeWith(ErrAuthTimeout, true)
		}
	}))
	if s.call("Connected", func() { s.cfg.handler.Connected(s) }) {
		if r := s.readLoop(); r != nil {
			// The session is set up and has gone quiet: it goes on
			// reading on a fresh goroutine, whose stack holds only the
			// frames of a wait. This one's grew with the setup (the
			// authorize, the first job) and the runtime would keep it at
			// that size however long the miner stays idle.
			s.cfg.sessions.Go(func() {
				r.loop()
				r.done()
				s.end()
			})
			return
		}
	}
	s.end()
}

// end tears the session down once reading is over; Disconnected is the
// last thing it does.
func (s *Session) end() {
	s.closeWith(io.EOF, false) // no-op unless the read loop left without a cause
	s.wmu.Lock()
	s.wclosed = true
	s.wmu.Unlock()
	s.writers.Wait()
	if s.flushOnClose.Load() {
		s.flushFinal()
	}
	s.wmu.Lock()
	s.dropQueueLocked() // whatever the flush left
	s.wmu.Unlock()
	s.stopAuthTimer()
	_ = s.conn.Close()
	err := s.Err()
	if s.cfg.log.Enabled(s.ctx, slog.LevelDebug) {
		s.Logger().Debug("stratum session ended", "err", err)
	}
	if s.cfg.gate != nil {
		s.cfg.gate.Release(&s.slot)
	}
	s.cfg.registerDone(s) // before Disconnected: Sessions agrees with it
	s.call("Disconnected", func() { s.cfg.handler.Disconnected(s, err) })
}

// call runs a Handler method, turning a panic into the end of this session
// only: one bad message must not take down the pool.
func (s *Session) call(what string, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.Logger().Error("stratum handler panicked", "in", what, "panic", r, "stack", string(debug.Stack()))
			s.closeWith(fmt.Errorf("%w in %s: %v", ErrHandlerPanic, what, r), false)
			ok = false
		}
	}()
	fn()
	return true
}

// reader is the read loop's state. It lives on the heap, not in the
// loop's frame: an idle session's goroutine is parked in the read with
// only a few small frames below it, so the garbage collector can shrink
// its stack to the minimum (the stack is most of an idle session's cost).
type reader struct {
	s            *Session
	lr           *LineReader
	dec          Decoder
	bucket       tokenBucket // every request
	errBucket    tokenBucket // malformed lines and error replies
	start        time.Time
	throttled    int    // requests read late for the request rate
	errThrottled int    // for the error rate
	seenErrs     uint64 // errReplies already charged to errBucket
	requests     int
	malformed    int
	read         bool      // a read happened since the last line
	deadline     time.Time // the read deadline set last
	// moved: the reader has gone on on a fresh goroutine (see run).
	moved bool
}

// readLoop reads until the session ends, or until an authorized session
// first has nothing to read: then it returns the reader, for run to go
// on with on a fresh goroutine.
func (s *Session) readLoop() *reader {
	start := s.cfg.now()
	r := &reader{s: s, lr: NewLineReader(s.conn, s.cfg.maxLine), start: start,
		bucket: *newTokenBucket(s.cfg.rate, start), errBucket: *newTokenBucket(s.cfg.errRate, start)}
	r.lr.beforeRead = r.beforeRead
	r.lr.useRaw(s.conn)
	r.moved = !r.lr.raw.ok() || s.cfg.sessions == nil // nothing to gain, or nowhere to go
	if r.loop() {
		r.moved = true
		return r
	}
	r.done()
	return nil
}

// loop handles lines until the session ends (false) or the reader yields
// to move to a fresh goroutine (true).
func (r *reader) loop() bool {
	for r.s.ctx.Err() == nil {
		line, err := r.lr.ReadLine()
		if err == errYield {
			return true
		}
		if !r.line(line, err) {
			return false
		}
	}
	return false
}

// beforeRead runs when everything read so far is handled: the replies go
// out in one write before the reader waits for more.
func (r *reader) beforeRead() {
	s := r.s
	s.flush(true)
	r.read = true
	r.lr.raw.yield = !r.moved && s.authorized.Load()
	if now := time.Now(); r.deadline.Before(now.Add(s.cfg.idle)) {
		// Moved only when it is due, a tenth further than needed: a
		// busy miner's reads do not each reset a runtime timer, and the
		// idle timeout is between IdleTimeout and 1.1 times that.
		r.deadline = now.Add(s.cfg.idle + s.cfg.idle/10)
		_ = s.conn.SetReadDeadline(r.deadline)
		if s.ctx.Err() != nil {
			// closeWith's wake-up may have come before the line above.
			_ = s.conn.SetReadDeadline(now)
		}
	}
}

func (r *reader) done() {
	if r.throttled > 0 || r.errThrottled > 0 {
		r.s.Logger().Info("stratum session was read more slowly for its request rate",
			"throttled_requests", r.throttled, "throttled_for_errors", r.errThrottled, "requests", r.requests)
	}
}

// pace sleeps for the rate limits; replies owed go out first.
func (r *reader) pace(wait time.Duration) {
	r.s.flush(false)
	r.s.cfg.sleep(r.s.ctx, wait)
}

// line handles one line (or the read error) and reports whether to go on.
func (r *reader) line(line []byte, err error) bool {
	s := r.s
	if r.read {
		s.beginBatch()
		r.read = false
	}
	if s.ctx.Err() != nil {
		return false
	}
	if err != nil {
		s.readFailed(err)
		return false
	}
	r.requests++
	if wait := r.bucket.take(s.cfg.now()); wait > 0 {
		if r.throttled == 0 {
			// Once per session: a miner above the limit is either
			// broken or flooding, and either is worth a look.
			s.Logger().Warn("stratum session over its request rate; reading it more slowly",
				"limit_per_second", s.cfg.rate, "requests", r.requests,
				"session_age", s.cfg.now().Sub(r.start).Round(time.Millisecond))
		}
		r.throttled++
		r.pace(wait)
	}
	req, err := r.dec.Decode(line)
	if o := s.cfg.lines; o != nil {
		o.ObserveLine(s, err != nil && err != errNotRequest)
	}
	if err == nil {
		if !s.call("Handle", func() { s.cfg.handler.Handle(s, req) }) {
			return false
		}
	} else if err != errNotRequest {
		r.malformed++
		var serr *Error
		errors.As(err, &serr)
		s.ReplyError(req.ID, serr)
		if r.malformed > maxMalformed {
			s.Logger().Info("stratum session sent too many malformed messages; closing", "count", r.malformed)
			s.closeWith(ErrTooManyMalformed, true)
			return false
		}
	}
	// Error replies, this line's or ones sent since from elsewhere, are
	// paced at the error rate.
	if n := s.errReplies.Load(); n != r.seenErrs {
		var wait time.Duration
		now := s.cfg.now()
		for ; r.seenErrs < n; r.seenErrs++ {
			wait = r.errBucket.take(now)
		}
		if wait > 0 {
			if r.errThrottled == 0 {
				s.Logger().Warn("stratum session over its error rate; reading it more slowly",
					"limit_per_second", s.cfg.errRate, "errors", n, "requests", r.requests,
					"session_age", now.Sub(r.start).Round(time.Millisecond))
			}
			r.errThrottled++
			r.pace(wait)
		}
	}
	if s.queued() >= maxWriteBatch {
		s.flush(false)
	}
	return true
}

func (s *Session) readFailed(err error) {
	switch {
	case errors.Is(err, ErrLineTooLong):
		s.Logger().Warn("stratum line too long; closing", "max", s.cfg.maxLine)
		s.closeWith(ErrLineTooLong, false)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.closeWith(fmt.Errorf("%w: nothing received for %s", ErrIdleTimeout, s.cfg.idle), false)
	case errors.Is(err, io.EOF):
		s.closeWith(io.EOF, false)
	default:
		s.closeWith(fmt.Errorf("stratum: read: %w", err), false)
	}
}

// beginBatch marks the reader as busy with lines it has read: replies
// sent meanwhile wait for its flush instead of starting a writer.
func (s *Session) beginBatch() {
	s.wmu.Lock()
	s.inBatch = true
	s.wmu.Unlock()
}

func (s *Session) queued() int {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return len(s.queue)
}

// flush is the reader writing the queue itself, in as few writes as
// there are batches. With end it also leaves its batch: from then on lines
// from other goroutines start a writer. If a writer is already running it
// is left to it. It reports false if the session ended on a write error.
func (s *Session) flush(end bool) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if end {
		defer func() { s.inBatch = false }()
	}
	if s.writing {
		return true
	}
	s.writing = true
	defer func() { s.writing = false }()
	return s.writeQueueLocked(s.cfg.write)
}

// writeLoop writes what other goroutines queued, then exits: sessions that
// are sent nothing keep no writer goroutine.
func (s *Session) writeLoop() {
	defer s.writers.Done()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.writeQueueLocked(s.cfg.write)
	s.writing = false
}

// writeShared runs on a shared writer: it writes what the socket takes at
// once, without waiting, so one writer serves every session; a session
// whose socket is full gets a writer goroutine of its own for the rest,
// which may wait up to the write timeout.
func (s *Session) writeShared() {
	s.wmu.Lock()
	for len(s.queue) > 0 && s.ctx.Err() == nil {
		batch := s.queue
		s.queue, s.spare = s.spare[:0], nil
		s.wmu.Unlock()
		if !s.wdeadline.IsZero() {
			// A deadline a blocking write left behind would fail this
			// write once it passed (the poller checks it before any
			// write, even one that cannot wait), however long ago that
			// write was. These writes never wait: they need none.
			_ = s.conn.SetWriteDeadline(time.Time{})
			s.wdeadline = time.Time{}
		}
		lines, partial, ok, err := s.raw.write(s.conn, batch)
		s.wmu.Lock()
		if err != nil {
			s.doneLocked(uint64(len(batch)))
			s.dropQueueLocked()
			s.wmu.Unlock()
			s.closeWith(fmt.Errorf("stratum: write: %w", err), false)
			s.wmu.Lock()
			break
		}
		s.doneLocked(uint64(lines))
		if !ok || lines < len(batch) {
			// The unwritten rest goes back in front of what came since,
			// and a writer that may wait takes over.
			rest := batch[lines:]
			if partial > 0 {
				rest[0] = rest[0][partial:]
			}
			s.queue = append(append(make([][]byte, 0, len(rest)+len(s.queue)), rest...), s.queue...)
			clear(batch)
			go s.writeLoop() // inherits writing and the writers count
			s.wmu.Unlock()
			return
		}
		clear(batch)
		if cap(batch) <= maxWriteBatch {
			s.spare = batch[:0]
		}
	}
	if s.ctx.Err() != nil && !s.flushOnClose.Load() {
		s.dropQueueLocked()
	}
	s.writing = false
	s.wmu.Unlock()
	s.writers.Done()
}

// flushFinal writes what is left after the session ended with a flush
// (an error reply, a client.reconnect), within flushTimeout.
func (s *Session) flushFinal() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.writeQueueLocked(min(s.cfg.write, flushTimeout))
}

// writeQueueLocked writes the queue until it is empty, releasing wmu
// during each write so that senders never wait on the socket. The caller
// owns the write side (writing, or the session ended).
func (s *Session) writeQueueLocked(timeout time.Duration) bool {
	for len(s.queue) > 0 {
		if s.ctx.Err() != nil && !s.flushOnClose.Load() {
			s.dropQueueLocked()
			return false
		}
		if s.ctx.Err() != nil {
			timeout = min(timeout, flushTimeout)
		}
		batch := s.queue
		s.queue, s.spare = s.spare[:0], nil
		s.wmu.Unlock()
		err := s.write(batch, timeout)
		s.wmu.Lock()
		if err == nil {
			s.doneLocked(uint64(len(batch)))
		}
		clear(batch) // drop references to shared broadcast lines
		if cap(batch) <= maxWriteBatch {
			// Reused, but a burst's large buffer is not kept by an
			// idle session.
			s.spare = batch[:0]
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && s.ctx.Err() == nil {
				s.Logger().Warn("stratum write timed out; dropping slow miner", "timeout", timeout)
				err = fmt.Errorf("%w: write blocked for %s", ErrSlowConsumer, timeout)
			} else {
				err = fmt.Errorf("stratum: write: %w", err)
			}
			s.doneLocked(uint64(len(batch)))
			s.dropQueueLocked()
			s.wmu.Unlock()
			s.closeWith(err, false)
			s.wmu.Lock()
			return false
		}
	}
	return true
}

// dropQueueLocked forgets the queue of a session that ended: its lines
// will never be written, so the broadcasts among them are done with it.
func (s *Session) dropQueueLocked() {
	s.doneLocked(uint64(len(s.queue)))
	clear(s.queue)
	s.queue = s.queue[:0]
}

// doneLocked accounts n more lines as written (or dropped) and completes
// the followed broadcasts among them.
func (s *Session) doneLocked(n uint64) {
	s.writtenSeq += n
	k := 0
	for k < len(s.marks) && s.marks[k].seq < s.writtenSeq {
		s.marks[k].f.release()
		k++
	}
	if k > 0 {
		// Shifted, not resliced: the array is reused by the next
		// broadcast instead of allocated again.
		n := copy(s.marks, s.marks[k:])
		clear(s.marks[n:])
		s.marks = s.marks[:n]
	}
}

// write hands batch to the socket, maxWriteBatch lines per writev.
func (s *Session) write(batch [][]byte, timeout time.Duration) error {
	switch {
	case s.ctx.Err() == nil:
		// As for reads: moved only when due, so the write timeout is
		// between WriteTimeout and 1.1 times that.
		if now := time.Now(); s.wdeadline.Before(now.Add(timeout)) {
			s.wdeadline = now.Add(timeout + timeout/10)
			_ = s.conn.SetWriteDeadline(s.wdeadline)
		}
	case !s.flushOnClose.Load():
		_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	for len(batch) > 0 {
		n := min(len(batch), maxWriteBatch)
		var err error
		if n == 1 {
			_, err = s.conn.Write(batch[0])
		} else {
			bufs := net.Buffers(batch[:n:n]) // WriteTo consumes its receiver
			_, err = bufs.WriteTo(s.conn)
		}
		if err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
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
