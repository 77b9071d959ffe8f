package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum2"
)

// A Stratum V2 pool is served by the same session as a V1 pool: its jobs
// become Job records, its targets the session's share target, so the
// scheduler, the devices and the submit checks never know which protocol
// fed them. Only the wire (v2conn) differs. The miner opens one extended
// channel: it rolls its own extranonce, as it does with V1.

// v2ProtocolVersion is the only Stratum V2 version there is.
const v2ProtocolVersion = 2

// v2VersionMask is what a job with version_rolling_allowed lets a miner
// change: the spec fixes it at the BIP 320 bits, nothing is negotiated.
const v2VersionMask = 0x1fffe000

// maxV2FutureJobs bounds the future jobs kept for a SetNewPrevHash. Pools
// send one or two per block; a pool that never activates them must not
// grow the map.
const maxV2FutureJobs = 16

// errWrongAuthority marks a pool whose certificate the URL's key did not
// sign: a wrong key in the URL, or a server that is not the pool.
var errWrongAuthority = errors.New("the pool's certificate is not signed by the authority key in the URL")

func isV2URL(raw string) bool { return strings.HasPrefix(raw, stratum2.URLScheme+"://") }

// v2conn is one encrypted connection with one channel: extended, or
// standard (header-only) with Config.V2Standard.
type v2conn struct {
	m        *Miner
	s        *session // nil for a probe
	log      *slog.Logger
	conn     *stratum2.Conn
	url      stratum2.URL
	raw      string // the URL as configured, for messages
	channel  uint32
	group    uint32 // a standard channel's group channel, whose jobs are its own too
	standard bool

	done chan struct{} // closed when the read loop ends
	err  error         // why it ended; read only after done

	mu      sync.Mutex
	seq     uint32
	pending map[uint32]chan v2ack

	// Only the read loop touches these.
	futures     map[uint32]v2Future
	futureOrder []uint32
	prev        [32]byte
	nbits       uint32
	hasPrev     bool
}

// v2Future is a job waiting for its SetNewPrevHash: the previous block,
// bits and time come with that.
type v2Future struct {
	job     *Job
	rolling bool // the pool allows version rolling on it
}

// v2Channel is what an open channel's Success says, extended or standard.
type v2Channel struct {
	id             uint32
	target         [32]byte
	prefix         []byte // extranonce prefix (standard: the whole extranonce)
	extranonceSize int    // bytes the miner rolls (standard: none)
}

type v2ack struct {
	ok   bool
	code string
}

// dialV2 connects and runs the Noise handshake, bounded by ctx. The
// certificate is checked against the URL's key before a byte of ours (the
// worker name included) goes out encrypted.
func dialV2(ctx context.Context, m *Miner, log *slog.Logger, raw string) (*v2conn, error) {
	u, err := stratum2.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Addr, err)
	}
	// stratum2.Client takes no context: the deadline and cancellation reach
	// it through the socket.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := stratum2.Client(nc, u.Authority)
	stop()
	if err != nil {
		nc.Close()
		if errors.Is(err, stratum2.ErrCertSignature) {
			return nil, fmt.Errorf("%w: check the key after the address, or the address is not that pool's", errWrongAuthority)
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return &v2conn{m: m, log: log, conn: c, url: u, raw: raw, done: make(chan struct{}),
		standard: m.cfg.V2Standard, pending: map[uint32]chan v2ack{}, futures: map[uint32]v2Future{}}, nil
}

// open sets the connection up for mining and opens the channel, reading
// replies synchronously: nothing else is sent before the channel exists.
func (v *v2conn) open(ctx context.Context) (*v2Channel, error) {
	cfg := &v.m.cfg
	nc := v.conn.NetConn()
	dl := time.Now().Add(cfg.CallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if stop() {
			_ = nc.SetDeadline(time.Time{})
		}
	}()

	host, port, _ := net.SplitHostPort(v.url.Addr)
	p, _ := strconv.ParseUint(port, 10, 16)
	// No REQUIRES_VERSION_ROLLING: the miner rolls versions when a job
	// allows it but does not need to (it rolls the extranonce first), so
	// it takes jobs either way, as it does with a V1 pool that refuses
	// mining.configure.
	if err := v.conn.WriteMessage(&stratum2.SetupConnection{Protocol: stratum2.ProtocolMining,
		MinVersion: v2ProtocolVersion, MaxVersion: v2ProtocolVersion, EndpointHost: host, EndpointPort: uint16(p),
		Vendor: "hashforge", Firmware: cut255(cfg.UserAgent)}); err != nil {
		return nil, fmt.Errorf("SetupConnection: %w", err)
	}
	for done := false; !done; {
		msg, err := v.read()
		if err != nil {
			return nil, fmt.Errorf("SetupConnection: %w", err)
		}
		switch msg := msg.(type) {
		case *stratum2.SetupConnectionSuccess:
			done = true
		case *stratum2.SetupConnectionError:
			return nil, fmt.Errorf("SetupConnection: pool refused the connection: %s", truncate(msg.ErrorCode, 64))
		}
	}
	var hashrate float32
	if v.m != nil {
		hashrate = float32(v.m.total.current())
	}
	var anyTarget stratum2.U256
	for i := range anyTarget {
		anyTarget[i] = 0xff
	}
	kind := "OpenExtendedMiningChannel"
	var open stratum2.Message = &stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: cut255(cfg.User),
		NominalHashRate: hashrate, MaxTarget: anyTarget}
	if v.standard {
		kind = "OpenStandardMiningChannel"
		open = &stratum2.OpenStandardMiningChannel{RequestID: 1, UserIdentity: cut255(cfg.User),
			NominalHashRate: hashrate, MaxTarget: anyTarget}
	}
	if err := v.conn.WriteMessage(open); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	for {
		msg, err := v.read()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, cfg.User, err)
		}
		var ch v2Channel
		switch msg := msg.(type) {
		case *stratum2.OpenExtendedMiningChannelSuccess:
			if msg.RequestID != 1 || v.standard {
				continue
			}
			ch = v2Channel{id: msg.ChannelID, target: [32]byte(msg.Target), prefix: bytes.Clone(msg.ExtranoncePrefix),
				extranonceSize: int(msg.ExtranonceSize)}
		case *stratum2.OpenStandardMiningChannelSuccess:
			if msg.RequestID != 1 || !v.standard {
				continue
			}
			ch = v2Channel{id: msg.ChannelID, target: [32]byte(msg.Target), prefix: bytes.Clone(msg.ExtranoncePrefix)}
			v.group = msg.GroupChannelID
		case *stratum2.OpenMiningChannelError:
			return nil, fmt.Errorf("%s %s: pool refused the worker: %s", kind, cfg.User, truncate(msg.ErrorCode, 64))
		default:
			continue
		}
		if len(ch.prefix)+ch.extranonceSize > 32 {
			return nil, fmt.Errorf("%s: extranonce of %d+%d bytes (at most 32)", kind, len(ch.prefix), ch.extranonceSize)
		}
		v.channel = ch.id
		return &ch, nil
	}
}

// read returns the next message it knows. A frame it cannot decode is
// skipped: the frame itself was authenticated, so the stream is intact, and
// a pool on a later revision may send messages this one does not know.
func (v *v2conn) read() (stratum2.Message, error) {
	for {
		f, err := v.conn.ReadFrame()
		if err != nil {
			return nil, err
		}
		msg, err := stratum2.DecodeFrame(f)
		if err != nil {
			v.log.Debug("ignoring a message from pool", "type", f.MsgType, "err", err)
			continue
		}
		return msg, nil
	}
}

// runV2 is session.run for a Stratum V2 pool.
func (s *session) runV2(ctx context.Context) sessionResult {
	cfg := &s.m.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	v, err := dialV2(dctx, s.m, s.log, s.addr)
	cancel()
	if err != nil {
		return sessionResult{err: fmt.Errorf("connect %s: %w", redactURL(s.addr), err)}
	}
	v.s = s
	s.v2 = v
	defer v.conn.Close()
	succ, err := v.open(ctx)
	if err != nil {
		return sessionResult{err: err}
	}
	target := succ.target
	diff := pow.HashDifficulty(&target)
	s.mu.Lock()
	s.en1, s.en2Size = succ.prefix, succ.extranonceSize
	s.target, s.diff, s.haveDiff = target, diff, true
	s.authorized = true
	s.mu.Unlock()
	s.m.setDifficulty(diff)
	s.log.Info("channel open", "channel", succ.id, "standard", v.standard, "user", cfg.User,
		"extranonce_prefix", fmt.Sprintf("%x", succ.prefix), "extranonce_size", succ.extranonceSize, "diff", diff)

	upAt := time.Now()
	s.m.sessionUp(s)
	defer s.m.sessionDown(s)
	go v.readLoop()
	select {
	case <-ctx.Done():
		err = ctx.Err()
		s.m.drainSubmits(2 * time.Second)
	case <-v.done:
		err = v.err
	}
	v.conn.Close()
	<-v.done
	s.mu.Lock()
	s.closed = true
	rr := s.reconnect
	s.mu.Unlock()
	return sessionResult{authorized: true, lived: time.Since(upAt), reconnect: rr, err: err}
}

func (v *v2conn) readLoop() {
	defer close(v.done)
	for {
		msg, err := v.read()
		if err != nil {
			v.err = err
			return
		}
		if err := v.handle(msg); err != nil {
			v.err = err
			return
		}
	}
}

// errV2Reconnect ends the read loop on a Reconnect; the session hands the
// request to the pool loop.
var errV2Reconnect = errors.New("pool asked to reconnect")

// handle takes one message from the pool. As for V1, nothing a pool sends
// kills the session but a request to leave: bad messages are logged and
// dropped. Decoded slices alias the read buffer; what is kept is copied.
func (v *v2conn) handle(msg stratum2.Message) error {
	s := v.s
	switch msg := msg.(type) {
	case *stratum2.NewExtendedMiningJob:
		if msg.ChannelID != v.channel || v.standard {
			break
		}
		if len(msg.CoinbaseTxPrefix) > maxCoinbaseHalf || len(msg.CoinbaseTxSuffix) > maxCoinbaseHalf || len(msg.MerklePath) > 32 {
			v.log.Warn("ignoring bad job from pool", "job", msg.JobID)
			break
		}
		v.job(msg.JobID, v2Job(msg), msg.MinNTime, msg.VersionRollingAllowed)
	case *stratum2.NewMiningJob:
		// A group channel's jobs are its members' (the specification).
		if !v.standard || msg.ChannelID != v.channel && (v.group == 0 || msg.ChannelID != v.group) {
			break
		}
		root := [32]byte(msg.MerkleRoot)
		// Standard jobs roll no version unless the connection asked for
		// it, which this miner does not.
		v.job(msg.JobID, &Job{ID: strconv.FormatUint(uint64(msg.JobID), 10), Version: msg.Version, Root: &root}, msg.MinNTime, false)
	case *stratum2.SetNewPrevHash:
		if msg.ChannelID != v.channel {
			break
		}
		v.prev, v.nbits, v.hasPrev = [32]byte(msg.PrevHash), msg.NBits, true
		f, ok := v.futures[msg.JobID]
		// Future jobs are all for the block this message starts; none is
		// any use after it.
		clear(v.futures)
		v.futureOrder = v.futureOrder[:0]
		if !ok {
			// Whatever the devices mine is on the old block now: idle them
			// until the pool sends a job for the new one.
			v.log.Warn("SetNewPrevHash for a job the pool never sent", "job", msg.JobID)
			s.mu.Lock()
			clear(s.jobs)
			s.jobOrder = s.jobOrder[:0]
			s.current = nil
			s.mu.Unlock()
			s.m.publish(s, nil, [32]byte{})
			break
		}
		v.activate(f.job, f.rolling, msg.MinNTime, true)
	case *stratum2.SetTarget:
		if msg.ChannelID != v.channel {
			break
		}
		target := [32]byte(msg.MaximumTarget)
		if target == ([32]byte{}) {
			v.log.Warn("ignoring a zero target from pool")
			break
		}
		s.setShareTarget(pow.HashDifficulty(&target), target)
	case *stratum2.SetExtranoncePrefix:
		if msg.ChannelID != v.channel {
			break
		}
		s.mu.Lock()
		size := s.en2Size
		s.mu.Unlock()
		if len(msg.ExtranoncePrefix)+size > 32 {
			v.log.Warn("ignoring an extranonce prefix too long for the channel", "bytes", len(msg.ExtranoncePrefix))
			break
		}
		s.mu.Lock()
		s.en1 = bytes.Clone(msg.ExtranoncePrefix)
		s.mu.Unlock()
		v.log.Info("extranonce changed", "extranonce_prefix", fmt.Sprintf("%x", msg.ExtranoncePrefix))
		s.publish()
	case *stratum2.SubmitSharesSuccess:
		if msg.ChannelID == v.channel {
			v.ackUpTo(msg.LastSequenceNumber)
		}
	case *stratum2.SubmitSharesError:
		if msg.ChannelID == v.channel {
			v.resolve(msg.SequenceNumber, v2ack{code: strings.Clone(msg.ErrorCode)})
		}
	case *stratum2.Reconnect:
		rr, err := v.reconnectTo(msg)
		if err != nil {
			v.log.Warn("ignoring bad message from pool", "message", "Reconnect", "err", err)
			break
		}
		s.mu.Lock()
		s.reconnect = rr
		s.mu.Unlock()
		v.log.Info("pool asked to reconnect", "to", redactURL(rr.addr))
		return errV2Reconnect
	case *stratum2.CloseChannel:
		if msg.ChannelID == v.channel {
			return fmt.Errorf("pool closed the channel: %s", truncate(msg.ReasonCode, 64))
		}
	default:
		v.log.Debug("ignoring a message from pool", "type", fmt.Sprintf("%T", msg))
	}
	return nil
}

// job takes a job message's work: a future job (no min_ntime) waits for
// its SetNewPrevHash, any other starts at once on the current block.
func (v *v2conn) job(id uint32, j *Job, minNTime *uint32, rolling bool) {
	if minNTime == nil {
		if _, ok := v.futures[id]; !ok {
			v.futureOrder = append(v.futureOrder, id)
		}
		v.futures[id] = v2Future{job: j, rolling: rolling}
		for len(v.futureOrder) > maxV2FutureJobs {
			delete(v.futures, v.futureOrder[0])
			v.futureOrder = v.futureOrder[1:]
		}
		return
	}
	if !v.hasPrev {
		v.log.Warn("ignoring an active job before any SetNewPrevHash", "job", j.ID)
		return
	}
	v.activate(j, rolling, *minNTime, false)
}

// activate makes a V2 job the session's current job on the current
// previous block.
func (v *v2conn) activate(j *Job, rolling bool, ntime uint32, clean bool) {
	s := v.s
	s.mu.Lock()
	s.rolling = rolling && !v.m.cfg.NoVersionRolling
	s.mask = v2VersionMask
	s.mu.Unlock()
	started := *j
	started.PrevHash, started.NBits, started.NTime, started.Clean = v.prev, v.nbits, ntime, clean
	started.NetTarget = netTarget(v.nbits)
	s.addJob(&started)
}

// v2Job maps an extended job into the miner's Job (its previous block,
// bits and time come when it starts): the coinbase prefix and suffix
// surround the extranonce prefix (the session's en1) and the rolled
// extranonce (en2), exactly as coinb1 and coinb2 surround V1's
// extranonces. Decoded slices alias the read buffer: they are copied.
func v2Job(j *stratum2.NewExtendedMiningJob) *Job {
	branch := make([][32]byte, len(j.MerklePath))
	for i := range j.MerklePath {
		branch[i] = [32]byte(j.MerklePath[i])
	}
	return &Job{
		ID:      strconv.FormatUint(uint64(j.JobID), 10),
		Coinb1:  bytes.Clone(j.CoinbaseTxPrefix),
		Coinb2:  bytes.Clone(j.CoinbaseTxSuffix),
		Branch:  branch,
		Version: j.Version,
	}
}

func (v *v2conn) reconnectTo(r *stratum2.Reconnect) (*reconnectRequest, error) {
	host, port, _ := net.SplitHostPort(v.url.Addr)
	if r.NewHost != "" {
		host = r.NewHost
	}
	if r.NewPort != 0 {
		port = strconv.Itoa(int(r.NewPort))
	}
	if host == "" || strings.ContainsAny(host, "/@?#[] \x00") || strings.IndexFunc(host, func(c rune) bool { return c < 0x20 || c > 0x7e }) >= 0 {
		return nil, fmt.Errorf("bad host %q", truncate(host, 64))
	}
	// The authority stays: a pool cannot send the miner to a server its
	// key did not sign.
	u := stratum2.URL{Addr: net.JoinHostPort(host, port), Authority: v.url.Authority}
	if _, err := parseStratumURL(u.String()); err != nil {
		return nil, err
	}
	return &reconnectRequest{addr: u.String()}, nil
}

// ackUpTo settles every pending share up to seq: SubmitShares.Success
// acknowledges a run of sequence numbers at once.
func (v *v2conn) ackUpTo(seq uint32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for n, ch := range v.pending {
		if int32(seq-n) >= 0 { // wraps with the counter
			ch <- v2ack{ok: true}
			delete(v.pending, n)
		}
	}
}

func (v *v2conn) resolve(seq uint32, a v2ack) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ch, ok := v.pending[seq]; ok {
		ch <- a
		delete(v.pending, seq)
	}
}

// submit sends one share (SubmitSharesExtended, or SubmitSharesStandard
// on a standard channel) and waits for its verdict; the outcomes are
// counted as V1's are.
func (v *v2conn) submit(ctx context.Context, sl *Slice, nonce uint32, hash *[32]byte) bool {
	m := v.m
	id, err := strconv.ParseUint(sl.JobID, 10, 32)
	if err != nil { // the id is ours (v2Job); only a bug gets here
		m.discarded.Add(1)
		return false
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.CallTimeout)
	defer cancel()
	ch := make(chan v2ack, 1)
	v.mu.Lock()
	v.seq++
	seq := v.seq
	v.pending[seq] = ch
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		delete(v.pending, seq)
		v.mu.Unlock()
	}()
	m.submitted.Add(1)
	job, nonceHex := sl.JobID, hexUint32(nonce)
	var share stratum2.Message = &stratum2.SubmitSharesExtended{ChannelID: v.channel, SequenceNumber: seq,
		JobID: uint32(id), Nonce: nonce, NTime: sl.tmpl.job.NTime, Version: sl.Version, Extranonce: sl.Extranonce2}
	if v.standard {
		share = &stratum2.SubmitSharesStandard{ChannelID: v.channel, SequenceNumber: seq,
			JobID: uint32(id), Nonce: nonce, NTime: sl.tmpl.job.NTime, Version: sl.Version}
	}
	err = v.conn.WriteMessage(share)
	if err != nil {
		m.lost.Add(1)
		m.log.Warn("share lost: no reply from pool", "job", job, "nonce", nonceHex, "err", err)
		return false
	}
	select {
	case a := <-ch:
		if a.ok {
			n := m.accepted.Add(1)
			m.log.Info("share accepted", "job", job, "nonce", nonceHex, "hash", pow.HashString(hash),
				"accepted", n, "rejected", m.rejected.Load())
			return true
		}
		if a.code == stratum2.ErrCodeStaleShare || a.code == stratum2.ErrCodeInvalidJobID {
			m.stale.Add(1)
		} else {
			m.rejected.Add(1)
		}
		m.log.Warn("share rejected", "job", job, "nonce", nonceHex, "code", truncate(a.code, 64))
	case <-v.done:
		m.lost.Add(1)
		m.log.Warn("share lost: no reply from pool", "job", job, "nonce", nonceHex, "err", "connection closed")
	case <-cctx.Done():
		m.lost.Add(1)
		m.log.Warn("share lost: no reply from pool", "job", job, "nonce", nonceHex, "err", cctx.Err())
	}
	return false
}

// probeV2 reports whether a V2 pool would take this miner now: the
// handshake passes and the channel opens.
func (m *Miner) probeV2(ctx context.Context, addr string) bool {
	v, err := dialV2(ctx, m, m.log, addr)
	if err != nil {
		m.log.Debug("probe: pool unavailable", "pool", redactURL(addr), "err", err)
		return false
	}
	defer v.conn.Close()
	if _, err := v.open(ctx); err != nil {
		m.log.Debug("probe: pool refused the channel", "pool", redactURL(addr), "err", err)
		return false
	}
	return true
}

// cut255 fits a string into a STR0_255 field.
func cut255(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}
