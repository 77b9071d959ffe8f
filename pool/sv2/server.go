// Package sv2 serves the pool over Stratum V2 (the stratum2 package's
// encrypted binary protocol): standard and extended mining channels, each
// a pool.Channel, so that their shares go through exactly the checks,
// vardiff, bans, ledger and block submission of a Stratum V1 session.
//
// A channel speaks to the pool in Stratum V1 terms (subscribe, authorize,
// submit in; set_difficulty, notify out) and translates: the pool core has
// one share path, tested once, and a V2 miner is a V1 session to it.
// Submits go in without JSON (stratum.NewSubmitRequest); each job's notify
// line is parsed once for every channel it goes to (lineCache).
package sv2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/hashforge/hashforge/internal/connlimit"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultIdleTimeout      = 10 * time.Minute
	defaultSendQueue        = 256
	// maxChannels bounds the channels one connection may open (a proxy
	// opens one per device).
	maxChannels = 1024
	// protocolVersion is the Stratum V2 version spoken.
	protocolVersion = 2
)

// Server accepts Stratum V2 connections for a pool.
type Server struct {
	Pool *pool.Server
	// Authority is the pool's authority key (stratum2's key file): it
	// signs the static keys handshakes use, a fresh one a day, each
	// valid for a day and an hour (docs/stratum-v2.md).
	Authority *btcec.PrivateKey
	// Gate, when set, is the V1 ports' Gate: V2 connections count
	// against the same total and per-address caps (a connection that has
	// not opened a channel gives way first, as an unauthorized V1
	// session does), banned addresses are refused at accept and a new
	// ban closes their connections.
	Gate   *stratum.Gate
	Logger *slog.Logger

	// HandshakeTimeout bounds the Noise handshake and SetupConnection;
	// IdleTimeout the wait for the next message. SendQueue is the number
	// of messages a connection may have waiting to be written; past it
	// the connection is closed (a miner that does not read must not stall
	// the pool's job broadcasts).
	HandshakeTimeout, IdleTimeout time.Duration
	SendQueue                     int

	lines lineCache
	mu    sync.Mutex
	conns map[*connection]struct{}

	keyMu    sync.Mutex
	key      *stratum2.StaticKey
	keyUntil time.Time
}

// staticKey is the key handshakes use, signed afresh once the current
// one has less than 12 hours left: a certificate is checked only at the
// handshake, so open connections never notice.
func (s *Server) staticKey() (*stratum2.StaticKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := time.Now()
	if s.key == nil || now.After(s.keyUntil.Add(-12*time.Hour)) {
		until := now.Add(25 * time.Hour)
		k, err := stratum2.NewSignedStaticKey(s.Authority, now.Add(-time.Hour), until)
		if err != nil {
			return nil, err
		}
		s.key, s.keyUntil = k, until
	}
	return s.key, nil
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on ln until ctx ends; then every connection
// is closed and their channels with them.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Pool == nil || s.Authority == nil {
		return errors.New("sv2: Server needs a Pool and an Authority key")
	}
	if _, err := s.staticKey(); err != nil {
		return fmt.Errorf("sv2: sign the static key: %w", err)
	}
	s.mu.Lock()
	s.conns = make(map[*connection]struct{})
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		s.mu.Lock()
		for c := range s.conns {
			c.close(errors.New("server shutting down"))
		}
		s.mu.Unlock()
		wg.Wait()
	}()
	s.log().Info("stratum v2 server listening", "addr", ln.Addr().String())
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log().Warn("stratum v2 accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var slot *stratum.GateSlot
		if s.Gate != nil {
			slot = stratum.NewGateSlot(connlimit.KeyOf(nc.RemoteAddr()), func(why error) {
				s.log().Info("stratum v2 connection closed", "remote", nc.RemoteAddr().String(), "reason", why)
				nc.Close()
			})
			if err := s.Gate.Admit(slot); err != nil {
				s.log().Debug("stratum v2 connection refused", "remote", nc.RemoteAddr().String(), "reason", err)
				stratum.RefuseConn(nc)
				continue
			}
		}
		wg.Go(func() {
			if slot != nil {
				defer s.Gate.Release(slot)
			}
			s.serveConn(ctx, nc, slot)
		})
	}
}

func (s *Server) timeouts() (hs, idle time.Duration, queue int) {
	hs, idle, queue = s.HandshakeTimeout, s.IdleTimeout, s.SendQueue
	if hs <= 0 {
		hs = defaultHandshakeTimeout
	}
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	if queue <= 0 {
		queue = defaultSendQueue
	}
	return hs, idle, queue
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn, slot *stratum.GateSlot) {
	hs, idle, queue := s.timeouts()
	log := s.log().With("remote", nc.RemoteAddr().String(), "protocol", "sv2")
	_ = nc.SetDeadline(time.Now().Add(hs))
	key, err := s.staticKey()
	if err != nil {
		log.Error("stratum v2 static key", "err", err)
		nc.Close()
		return
	}
	c, err := stratum2.Server(nc, key)
	if err != nil {
		log.Debug("stratum v2 handshake failed", "err", err)
		nc.Close()
		return
	}
	if err := setup(c); err != nil {
		log.Debug("stratum v2 setup refused", "err", err)
		c.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	conn := &connection{srv: s, c: c, nc: nc, slot: slot, log: log, out: make(chan stratum2.Message, queue),
		done: make(chan struct{}), channels: make(map[uint32]*channel)}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	go conn.writeLoop()
	conn.readLoop(ctx, idle)
}

// setup answers the connection's SetupConnection: the Mining Protocol,
// version 2, without work selection (a pool that builds its own jobs).
func setup(c *stratum2.Conn) error {
	m, _, err := c.ReadMessage()
	if err != nil {
		return err
	}
	sc, ok := m.(*stratum2.SetupConnection)
	if !ok {
		return fmt.Errorf("first message %T, want SetupConnection", m)
	}
	refuse := func(code string) error {
		_ = c.WriteMessage(&stratum2.SetupConnectionError{Flags: sc.Flags, ErrorCode: code})
		return errors.New(code)
	}
	switch {
	case sc.Protocol != stratum2.ProtocolMining:
		return refuse(stratum2.ErrCodeUnsupportedProtocol)
	case sc.MinVersion > protocolVersion || sc.MaxVersion < protocolVersion:
		return refuse(stratum2.ErrCodeProtocolVersionMismatch)
	case sc.Flags&stratum2.FlagRequiresWorkSelection != 0:
		return refuse(stratum2.ErrCodeUnsupportedFeatureFlags)
	}
	return c.WriteMessage(&stratum2.SetupConnectionSuccess{UsedVersion: protocolVersion})
}

// connection is one V2 client and its channels.
type connection struct {
	srv  *Server
	c    *stratum2.Conn
	nc   net.Conn
	slot *stratum.GateSlot // its place in the Gate, or nil
	log  *slog.Logger

	out       chan stratum2.Message
	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	channels map[uint32]*channel
	nextID   uint32
	groupID  uint32 // the group channel of its standard channels, once there is one
}

// send queues m without waiting; a full queue closes the connection.
func (c *connection) send(m stratum2.Message) {
	select {
	case <-c.done:
	case c.out <- m:
	default:
		c.close(errors.New("slow consumer: send queue full"))
	}
}

// writeLoop writes what is queued, everything queued at once in one
// write: a burst of acknowledgements (a share batch kept together) or a
// job's messages cost one syscall.
func (c *connection) writeLoop() {
	batch := make([]stratum2.Message, 0, maxWriteBatch)
	var deadline time.Time
	for {
		select {
		case <-c.done:
			return
		case m := <-c.out:
			batch = append(batch[:0], m)
		}
	more:
		for len(batch) < maxWriteBatch {
			select {
			case m := <-c.out:
				batch = append(batch, m)
			default:
				break more
			}
		}
		batch = coalesceAcks(batch)
		// Moved only when due, as the V1 writers do: a busy channel does
		// not reset a runtime timer per write.
		if now := time.Now(); deadline.Before(now.Add(writeTimeout)) {
			deadline = now.Add(writeTimeout + writeTimeout/10)
			_ = c.nc.SetWriteDeadline(deadline)
		}
		if err := c.c.WriteMessages(batch...); err != nil {
			c.close(fmt.Errorf("write: %w", err))
			return
		}
		clear(batch)
	}
}

// coalesceAcks merges the SubmitShares.Success messages of one channel
// queued one after another into one (the specification's batched
// acknowledgement: the last sequence number, the count and the sum). An
// error in between ends a run, so the order of verdicts is kept.
func coalesceAcks(batch []stratum2.Message) []stratum2.Message {
	out := batch[:0]
	for _, m := range batch {
		if s, ok := m.(*stratum2.SubmitSharesSuccess); ok && len(out) > 0 {
			if prev, ok := out[len(out)-1].(*stratum2.SubmitSharesSuccess); ok && prev.ChannelID == s.ChannelID {
				merged := *prev
				merged.LastSequenceNumber = s.LastSequenceNumber
				merged.NewSubmitsAcceptedCount += s.NewSubmitsAcceptedCount
				merged.NewSharesSum += s.NewSharesSum
				out[len(out)-1] = &merged
				continue
			}
		}
		out = append(out, m)
	}
	clear(batch[len(out):])
	return out
}

const (
	writeTimeout  = 10 * time.Second
	maxWriteBatch = 64
)

func (c *connection) close(why error) {
	c.closeOnce.Do(func() {
		c.log.Debug("stratum v2 connection closed", "reason", why)
		close(c.done)
		c.c.Close()
	})
}

func (c *connection) readLoop(ctx context.Context, idle time.Duration) {
	defer func() {
		c.close(errors.New("read loop ended"))
		c.mu.Lock()
		chans := c.channels
		c.channels = nil
		c.mu.Unlock()
		for _, ch := range chans {
			ch.close()
		}
	}()
	for ctx.Err() == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		m, _, err := c.c.ReadMessage()
		if err != nil {
			if errors.Is(err, stratum2.ErrUnknownMessage) {
				continue // a message of an extension or revision we do not speak
			}
			return
		}
		switch m := m.(type) {
		case *stratum2.OpenExtendedMiningChannel:
			c.open(m.RequestID, m.UserIdentity, m.NominalHashRate, int(m.MinExtranonceSize), false)
		case *stratum2.OpenStandardMiningChannel:
			c.open(m.RequestID, m.UserIdentity, m.NominalHashRate, 0, true)
		case *stratum2.SubmitSharesExtended:
			if ch := c.channel(m.ChannelID); ch != nil {
				ch.submit(m.SequenceNumber, m.JobID, m.Nonce, m.NTime, m.Version, m.Extranonce)
			} else {
				c.send(&stratum2.SubmitSharesError{ChannelID: m.ChannelID, SequenceNumber: m.SequenceNumber, ErrorCode: stratum2.ErrCodeInvalidChannelID})
			}
		case *stratum2.SubmitSharesStandard:
			if ch := c.channel(m.ChannelID); ch != nil {
				ch.submit(m.SequenceNumber, m.JobID, m.Nonce, m.NTime, m.Version, nil)
			} else {
				c.send(&stratum2.SubmitSharesError{ChannelID: m.ChannelID, SequenceNumber: m.SequenceNumber, ErrorCode: stratum2.ErrCodeInvalidChannelID})
			}
		case *stratum2.UpdateChannel:
			if ch := c.channel(m.ChannelID); ch != nil {
				ch.suggest(m.NominalHashRate)
			} else {
				c.send(&stratum2.UpdateChannelError{ChannelID: m.ChannelID, ErrorCode: stratum2.ErrCodeInvalidChannelID})
			}
		case *stratum2.CloseChannel:
			c.mu.Lock()
			ch := c.channels[m.ChannelID]
			delete(c.channels, m.ChannelID)
			c.mu.Unlock()
			if ch != nil {
				ch.close()
			}
		default:
			// Messages a pool does not take (a second SetupConnection,
			// what only a pool sends) are ignored.
		}
	}
}

func (c *connection) channel(id uint32) *channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channels[id]
}
