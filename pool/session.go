package pool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"sync"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/record"
	"github.com/hashforge/hashforge/stratum"
)

// conn is what the pool needs of a Stratum connection. *stratum.Session
// implements it; benchmarks and fuzz tests use an in-memory one, so they
// exercise the very same handler and fan-out code.
type conn interface {
	SendLine(line []byte) bool
	Reply(id json.RawMessage, result any)
	ReplyError(id json.RawMessage, err *stratum.Error)
	SetAuthorized()
	RemoteAddr() string
}

// maxWorkersPerSession bounds the usernames one connection may authorize
// (proxies multiplex many workers; a flood of names must not grow memory).
const maxWorkersPerSession = 256

// session is the pool's per-connection state, kept small: thousands of
// these live at once.
type session struct {
	c      conn
	remote string
	// key is the client address (IPv4, or IPv6 /64) bans count under;
	// invalid when the connection has no IP address.
	key netip.Prefix
	// proto indexes protocolNames: the protocol the miner speaks.
	proto uint8

	mu            sync.Mutex // first in the lock order: see Server.mu
	en1           [Extranonce1Size]byte
	en1Hex        string
	subscribed    bool
	extranonceSub bool
	authorized    bool
	workers       workerSet
	versionMask   uint32
	floor         float64 // the miner's own minimum (configure / suggest)
	desired       float64 // difficulty vardiff or the miner asked for
	// fixed is set by a d=N password: the miner chose its difficulty and
	// vardiff leaves it alone.
	fixed bool
	// Shares answered on this session, for the one warning a session with
	// a high reject ratio gets.
	accepted, rejected uint64
	rejectWarned       bool
	diffs              DifficultyLog
	vd                 vardiff
	lastJob            *Job
	// soloScript is what this session's coinbases pay under SOLO: the
	// first address it authorized.
	soloScript string
	// keeping holds a token per share handed to the sink and not yet
	// kept (made at the first share).
	keeping chan struct{}
	// suggestedAt is when the last difficulty suggestion after the
	// session's first accepted share took effect.
	suggestedAt time.Time
}

// maxSharesInFlight bounds a session's shares waiting for the group
// commit: far above what a farm proxy has in flight (a few milliseconds'
// worth), far below the sink's queue.
const maxSharesInFlight = 256

// suggestInterval is how often a miner's difficulty suggestion may move
// its floor. Miners send one at connect; one that keeps sending them is
// trying to hold vardiff down.
const suggestInterval = 10 * time.Minute

// workerSet is the usernames a session authorized, by the name as the miner
// sends it. Nearly every miner authorizes one, which is held inline: a map
// is made only for a proxy's second, so an idle miner holds none.
type workerSet struct {
	name string
	user Username
	n    int
	more map[string]Username // all but the first
}

func (w *workerSet) len() int { return w.n }

func (w *workerSet) get(name string) (Username, bool) {
	if w.n > 0 && w.name == name {
		return w.user, true
	}
	u, ok := w.more[name]
	return u, ok
}

// add records a name get does not know.
func (w *workerSet) add(name string, u Username) {
	if w.n == 0 {
		w.name, w.user = name, u
	} else {
		if w.more == nil {
			w.more = make(map[string]Username, 1)
		}
		w.more[name] = u
	}
	w.n++
}

// all yields every name and its username, the first authorized first.
func (w *workerSet) all() iter.Seq2[string, Username] {
	return func(yield func(string, Username) bool) {
		if w.n == 0 || !yield(w.name, w.user) {
			return
		}
		for name, u := range w.more {
			if !yield(name, u) {
				return
			}
		}
	}
}

// ready reports whether the session can be sent work.
func (ss *session) ready() bool { return ss.subscribed && ss.authorized }

// Connected implements stratum.Handler.
func (s *Server) Connected(st *stratum.Session) {
	st.SetState(s.connect(st))
}

// Handle implements stratum.Handler.
func (s *Server) Handle(st *stratum.Session, req *stratum.Request) {
	ss, ok := st.State().(*session)
	if !ok {
		st.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "internal error"))
		return
	}
	s.handle(ss, req)
}

// Disconnected implements stratum.Handler.
func (s *Server) Disconnected(st *stratum.Session, err error) {
	if ss, ok := st.State().(*session); ok {
		s.disconnect(ss)
	}
}

func (s *Server) connect(c conn) *session {
	ss := &session{
		c:       c,
		remote:  c.RemoteAddr(),
		key:     banKey(c),
		proto:   protocolOf(c),
		desired: s.cfg.StartDifficulty,
		vd:      newVardiff(s.cfg.ShareInterval, s.now()),
	}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	s.protos.sessions[ss.proto].Add(1)
	return ss
}

func (s *Server) disconnect(ss *session) {
	s.protos.sessions[ss.proto].Add(-1)
	ss.mu.Lock()
	subscribed, en1 := ss.subscribed, binary.BigEndian.Uint32(ss.en1[:])
	s.stats.workers.Add(-int64(ss.workers.len()))
	for _, u := range ss.workers.all() {
		s.publishWorker(EventWorkerDown, u, ss.remote)
	}
	ss.mu.Unlock()
	s.mu.Lock()
	delete(s.sessions, ss)
	if subscribed {
		s.en1.release(en1, s.now())
	}
	s.mu.Unlock()
}

func (s *Server) handle(ss *session, req *stratum.Request) {
	switch req.Method {
	case "mining.submit":
		s.handleSubmit(ss, req)
	case "mining.subscribe":
		s.handleSubscribe(ss, req)
	case "mining.authorize":
		s.handleAuthorize(ss, req)
	case "mining.configure":
		s.handleConfigure(ss, req)
	case "mining.extranonce.subscribe":
		ss.mu.Lock()
		ss.extranonceSub = true
		ss.mu.Unlock()
		ss.c.Reply(req.ID, true)
	case "mining.suggest_difficulty":
		s.handleSuggestDifficulty(ss, req)
	default:
		ss.c.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "unknown method %q", truncate(req.Method, 64)))
	}
}

func (s *Server) handleSubscribe(ss *session, req *stratum.Request) {
	p, err := stratum.ParseSubscribe(req.Params)
	if err != nil {
		ss.c.ReplyError(req.ID, asStratumError(err))
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.subscribed {
		resume, hasResume := s.parseSessionID(p.SessionID)
		s.mu.Lock()
		en1, resumed, err := s.en1.acquire(resume, hasResume, s.now())
		s.mu.Unlock()
		if err != nil {
			s.log.Error("cannot assign extranonce1", "remote", ss.remote, "err", err)
			ss.c.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "pool full"))
			return
		}
		ss.setExtranonce1(en1)
		ss.subscribed = true
		s.log.Debug("subscribed", "remote", ss.remote, "agent", truncate(p.UserAgent, 64),
			"extranonce1", ss.en1Hex, "resumed", resumed)
	}
	// A repeated subscribe gets the same answer: the extranonce1 the
	// miner's current work is built on must not change under it.
	ss.c.Reply(req.ID, stratum.SubscribeResult(s.sessionID(binary.BigEndian.Uint32(ss.en1[:])), ss.en1Hex, s.cfg.Extranonce2Size))
	if ss.authorized {
		s.startWorkLocked(ss)
	}
}

func (ss *session) setExtranonce1(en1 uint32) {
	binary.BigEndian.PutUint32(ss.en1[:], en1)
	ss.en1Hex = hex.EncodeToString(ss.en1[:])
}

// The session id a miner may resume with is its extranonce1 followed by a
// MAC of it under a key only this process knows: ids must not be
// guessable, or anyone could subscribe with a neighbour's id and take its
// extranonce1 (and with it the work that miner is doing). Sequential
// extranonce1 values alone are trivially guessable.
const sessionMACSize = 12

// sessionID returns the id a session with extranonce1 en1 may resume with.
func (s *Server) sessionID(en1 uint32) string {
	var b [Extranonce1Size + sessionMACSize]byte
	binary.BigEndian.PutUint32(b[:Extranonce1Size], en1)
	m := hmac.New(sha256.New, s.resumeKey[:])
	m.Write(b[:Extranonce1Size])
	copy(b[Extranonce1Size:], m.Sum(nil))
	return hex.EncodeToString(b[:])
}

// parseSessionID reads the session id a miner offers to resume: the
// extranonce1 it names, if the id is one this process handed out.
func (s *Server) parseSessionID(id string) (uint32, bool) {
	if len(id) != 2*(Extranonce1Size+sessionMACSize) {
		return 0, false
	}
	var b [Extranonce1Size + sessionMACSize]byte
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return 0, false
	}
	en1 := binary.BigEndian.Uint32(b[:Extranonce1Size])
	want, _ := hex.DecodeString(s.sessionID(en1))
	if !hmac.Equal(want, b[:]) {
		return 0, false
	}
	return en1, true
}

func (s *Server) handleAuthorize(ss *session, req *stratum.Request) {
	p, err := stratum.ParseAuthorize(req.Params)
	if err != nil {
		ss.c.ReplyError(req.ID, asStratumError(err))
		return
	}
	u, err := ParseUsername(p.User, s.cfg.Network)
	if err != nil {
		s.tallyAuthFailure(ss)
		s.stats.reject("unauthorized")
		ss.c.ReplyError(req.ID, stratum.Errorf(stratum.CodeUnauthorized, "unauthorized: %s", truncate(err.Error(), 200)))
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, known := ss.workers.get(p.User); !known {
		if ss.workers.len() >= maxWorkersPerSession {
			ss.c.ReplyError(req.ID, stratum.Errorf(stratum.CodeUnauthorized, "too many workers on one connection"))
			return
		}
		ss.workers.add(p.User, u)
		if s.cfg.Solo && ss.soloScript == "" {
			// Validated by ParseUsername just above.
			script, _ := payoutScript(u.Address, s.cfg.Network)
			ss.soloScript = string(script)
		}
		s.stats.workers.Add(1)
		s.publishWorker(EventWorkerUp, u, ss.remote)
	}
	if d, ok := PasswordDifficulty(p.Password); ok {
		// d=N: the miner's fixed difficulty, within --min-difficulty (and
		// its own floor) and the network difficulty.
		ss.fixed = true
		ss.desired = s.requestedDifficulty(d, s.floor(ss))
	}
	first := !ss.authorized
	ss.authorized = true
	ss.c.SetAuthorized()
	ss.c.Reply(req.ID, true)
	if first && ss.subscribed {
		// Work goes out now: a miner that waits for the pool after
		// authorizing would otherwise idle until the next block.
		s.startWorkLocked(ss)
		return
	}
	s.applyDifficultyLocked(ss)
}

// startWorkLocked sends a session its first difficulty and job.
func (s *Server) startWorkLocked(ss *session) {
	j := s.jobs.Current()
	if j == nil || ss.lastJob != nil {
		return
	}
	ss.vd.reset(s.now())
	if s.sendJobLocked(ss, j, true) {
		s.sendFutureLocked(ss)
	}
}

func (s *Server) handleConfigure(ss *session, req *stratum.Request) {
	p, err := stratum.ParseConfigure(req.Params)
	if err != nil {
		ss.c.ReplyError(req.ID, asStratumError(err))
		return
	}
	result := make(map[string]any, len(p.Extensions)+1)
	ss.mu.Lock()
	for _, ext := range p.Extensions {
		switch ext {
		case stratum.ExtVersionRolling:
			if !p.HasVersionRolling {
				result[ext] = false
				continue
			}
			// The miner may use only bits both sides allow; it is
			// the miner's call whether fewer bits than its
			// min-bit-count are worth using.
			ss.versionMask = p.VersionRollingMask & s.cfg.VersionMask
			result[ext] = true
			result[ext+".mask"] = fmt.Sprintf("%08x", ss.versionMask)
		case stratum.ExtMinimumDifficulty:
			if !p.HasMinimumDifficulty {
				result[ext] = false
				continue
			}
			ss.floor = max(p.MinimumDifficulty, s.cfg.MinDifficulty)
			ss.desired = max(ss.desired, ss.floor)
			result[ext] = true
		default:
			result[ext] = false
		}
	}
	ss.c.Reply(req.ID, result)
	s.applyDifficultyLocked(ss)
	ss.mu.Unlock()
}

// applyDifficultyLocked makes a difficulty change (a vardiff retarget,
// suggest_difficulty, configure's minimum-difficulty) take effect now on a
// session already at work: set_difficulty binds from the next job, so the
// current job goes out again after it, without clean_jobs. Before the first
// job there is nothing to do: the first job carries the new difficulty
// anyway.
func (s *Server) applyDifficultyLocked(ss *session) {
	if !ss.ready() || ss.lastJob == nil {
		return
	}
	cur := s.jobs.Current()
	if cur == nil {
		return
	}
	if told, _ := ss.diffs.Current(); s.sessionDifficulty(ss, cur) == told {
		return
	}
	s.sendJobLocked(ss, cur, false)
}

func (s *Server) handleSuggestDifficulty(ss *session, req *stratum.Request) {
	d, err := stratum.ParseSuggestDifficulty(req.Params)
	if err != nil {
		ss.c.ReplyError(req.ID, asStratumError(err))
		return
	}
	if _, err := pow.DifficultyToTarget(d); err != nil {
		ss.c.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "invalid difficulty"))
		return
	}
	ss.mu.Lock()
	now := s.now()
	if ss.accepted > 0 {
		if !ss.suggestedAt.IsZero() && now.Sub(ss.suggestedAt) < suggestInterval {
			// Acknowledged, not applied: once shares flow, a suggestion
			// is a floor the miner may move rarely, never a way to
			// reset vardiff at will.
			ss.mu.Unlock()
			ss.c.Reply(req.ID, true)
			return
		}
		ss.suggestedAt = now
	}
	// The suggestion becomes the miner's floor, bounded by the network
	// ceiling: a miner asks for a share rate, not to skip blocks. Before
	// vardiff has judged the miner it is also where the miner starts;
	// after, it only raises the difficulty, never undoes vardiff's work.
	ss.floor = s.requestedDifficulty(d, s.cfg.MinDifficulty)
	if ss.accepted == 0 || ss.floor > ss.desired {
		ss.desired = ss.floor
		// Shares so far were found at the old difficulty and say
		// nothing about the rate at the new one.
		ss.vd.reset(now)
	}
	ss.c.Reply(req.ID, true)
	s.applyDifficultyLocked(ss)
	ss.mu.Unlock()
}

func (s *Server) handleSubmit(ss *session, req *stratum.Request) {
	now := s.now()
	p, err := req.Submit()
	if err != nil {
		s.tallyShare(ss, true, now)
		s.refuseShare(ss, req.ID, "invalid params", asStratumError(err))
		return
	}
	ss.mu.Lock()
	if !ss.subscribed {
		ss.mu.Unlock()
		s.refuseShare(ss, req.ID, "not subscribed", stratum.Errorf(stratum.CodeNotSubscribed, "not subscribed"))
		return
	}
	user, ok := ss.workers.get(p.User)
	if !ok {
		ss.mu.Unlock()
		s.tallyShare(ss, true, now)
		s.refuseShare(ss, req.ID, "unauthorized", stratum.Errorf(stratum.CodeUnauthorized, "unauthorized worker"))
		return
	}
	en1, en1Hex := ss.en1, ss.en1Hex
	sub := Submission{
		JobID:          p.JobID,
		Extranonce1:    en1[:],
		Extranonce2:    p.Extranonce2,
		NTime:          p.NTime,
		Nonce:          p.Nonce,
		VersionBits:    p.VersionBits,
		HasVersionBits: p.HasVersionBits,
		VersionMask:    ss.versionMask,
		SoloScript:     ss.soloScript,
	}
	res, err := s.jobs.CheckShare(&sub, &ss.diffs)
	if err != nil {
		ss.rejected++
		s.warnRejectsLocked(ss)
	} else {
		ss.accepted++
	}
	ss.mu.Unlock()
	if err != nil {
		var re *RejectError
		if !errors.As(err, &re) {
			re = &RejectError{Code: stratum.CodeOther, Reason: err.Error()}
		}
		s.tallyShare(ss, invalidForBans(re), now)
		s.refuseShare(ss, req.ID, re.Reason, re.Stratum())
		return
	}
	s.tallyShare(ss, false, now)
	if res.IsBlock {
		s.submitBlock(&res, en1[:], p.Extranonce2, user, ss.remote)
	}

	share := record.Share{
		Time:              now,
		Address:           user.Address,
		Worker:            user.Worker,
		JobID:             res.Job.ID,
		Difficulty:        res.Difficulty,
		ActualDiff:        res.ActualDiff,
		Height:            res.Job.Height,
		IsBlock:           res.IsBlock,
		NetworkDifficulty: res.Job.netDiff,
		RemoteAddr:        ss.remote,
		ExtraNonce1:       en1Hex,
	}
	if res.IsBlock {
		share.BlockHash = res.BlockHash()
	}
	// "Accepted" only once the share is kept: the reply waits for the
	// sink's group commit (an fsync shared by every share arriving
	// together), so that no crash loses a share a miner was paid for by
	// our word. The stratum server never reuses a request, so its id
	// may be kept for the reply.
	id := req.ID
	diff := res.Difficulty
	// A session may have only so many shares waiting to be kept: one that
	// floods (a miner pinned at a tiny difficulty, a proxy gone wild) waits
	// here, in its own reader, instead of filling the sink's queue that
	// every session shares.
	ss.mu.Lock()
	if ss.keeping == nil {
		ss.keeping = make(chan struct{}, maxSharesInFlight)
	}
	keeping := ss.keeping
	ss.mu.Unlock()
	keeping <- struct{}{}
	s.shares.AddShare(share, func(err error) {
		<-keeping
		if err != nil {
			s.refuseShare(ss, id, reasonNotKept, stratum.Errorf(stratum.CodeOther, reasonNotKept))
			return
		}
		s.stats.accept(diff, now)
		s.protos.accepted[ss.proto].Add(1)
		ss.c.Reply(id, true)
	})

	ss.mu.Lock()
	if f := ss.vd.share(now); f != 1 {
		if cur := s.jobs.Current(); cur != nil && s.retargetLocked(ss, f, cur) {
			s.applyDifficultyLocked(ss)
		}
	}
	ss.mu.Unlock()
}

// refuseShare answers a submit with serr and counts the refusal, by
// reason and by protocol.
func (s *Server) refuseShare(ss *session, id json.RawMessage, reason string, serr *stratum.Error) {
	s.protos.rejected[ss.proto].Add(1)
	s.stats.reject(reason)
	ss.c.ReplyError(id, serr)
}

// reasonNotKept answers a valid share the pool cannot keep (its spool and
// database both failing): a temporary error, so that a miner's failover
// takes it to a backup pool rather than mining for nothing here.
const reasonNotKept = "pool cannot record shares right now, try again later"

// A session is warned about once, when at least rejectWarnMin of its
// shares were refused and they are more than rejectWarnRatio of all.
const (
	rejectWarnMin   = 50
	rejectWarnRatio = 0.5
)

// warnRejectsLocked logs a WARN, once per session, for a miner whose shares
// are mostly refused: a misconfigured or broken miner an operator should
// look at (each reject on its own is only counted).
func (s *Server) warnRejectsLocked(ss *session) {
	if ss.rejectWarned || ss.rejected < rejectWarnMin ||
		float64(ss.rejected) <= rejectWarnRatio*float64(ss.accepted+ss.rejected) {
		return
	}
	ss.rejectWarned = true
	var worker string
	for name := range ss.workers.all() {
		worker = name
		break
	}
	s.log.Warn("session has a high reject ratio", "remote", ss.remote, "user", truncate(worker, 128),
		"rejected", ss.rejected, "accepted", ss.accepted)
}

// floor is the lowest difficulty the session may be given.
func (s *Server) floor(ss *session) float64 { return max(s.cfg.MinDifficulty, ss.floor) }

// ceiling is the highest difficulty a session may work at on job j: the
// network difficulty, so that a miner never skips a block it found, except
// on a job at the network's minimum difficulty (regtest always, testnet's
// 20-minute blocks), where the network difficulty says nothing about what
// a miner can sustain and a ceiling would make nearly every hash a share
// (0 = none). The floor wins over the ceiling either way (clampDifficulty),
// and a share that meets the network target is accepted whatever the
// session's difficulty (CheckShare).
func (s *Server) ceiling(j *Job) float64 {
	if j == nil || j.bits == s.cfg.Network.PowLimitBits {
		return 0
	}
	return j.netDiff
}

// requestedDifficulty bounds a difficulty a miner asked for (d=,
// suggest_difficulty) by the current job's ceiling, then by floor, which
// wins when they cross.
func (s *Server) requestedDifficulty(d, floor float64) float64 {
	return clampDifficulty(d, floor, s.ceiling(s.jobs.Current()))
}

// sessionDifficulty is the difficulty the session should work at on j.
func (s *Server) sessionDifficulty(ss *session, j *Job) float64 {
	return clampDifficulty(ss.desired, s.floor(ss), s.ceiling(j))
}

// retargetLocked scales the session's wanted difficulty by f within its
// floor and j's ceiling, reporting whether it changed. A d= session keeps
// its difficulty.
func (s *Server) retargetLocked(ss *session, f float64, j *Job) bool {
	if ss.fixed {
		return false
	}
	d := clampDifficulty(ss.desired*f, s.floor(ss), s.ceiling(j))
	if d == ss.desired {
		return false
	}
	s.log.Debug("vardiff retarget", "remote", ss.remote, "from", ss.desired, "to", d)
	ss.desired = d
	return true
}

// sendJobLocked sends j on the session, preceded by set_difficulty when the
// difficulty the session should work at differs from what it was last told,
// and records the difficulty the job was sent at.
func (s *Server) sendJobLocked(ss *session, j *Job, clean bool) bool {
	line := j.lineNoClean
	if clean {
		line = j.lineClean
	}
	if ss.soloScript != "" && j.soloOutputs != nil {
		// A SOLO session gets the same form with its own coinbase.
		w, err := j.soloFor(ss.soloScript)
		if err != nil {
			s.log.Error("cannot build SOLO job", "remote", ss.remote, "job", j.ID, "err", err)
			return false
		}
		line = w.lineNoClean
		if clean {
			line = w.lineClean
		}
	}
	want := s.sessionDifficulty(ss, j)
	if cur, _ := ss.diffs.Current(); want != cur {
		target := j.netTarget
		if want != j.netDiff {
			var err error
			if target, err = pow.DifficultyToTarget(want); err != nil {
				s.log.Error("bad session difficulty", "remote", ss.remote, "difficulty", want, "err", err)
				return false
			}
		}
		msg, err := stratum.EncodeNotification("mining.set_difficulty", []float64{want})
		if err != nil {
			s.log.Error("encode set_difficulty", "err", err)
			return false
		}
		if !ss.c.SendLine(msg) {
			return false // closed as a slow consumer; Disconnected follows
		}
		ss.diffs.Set(want, target)
	}
	if !ss.c.SendLine(line) {
		return false
	}
	ss.diffs.JobSent(j.Seq)
	ss.lastJob = j
	return true
}

// reassignExtranonce gives a session a fresh extranonce1 and tells the
// miner with mining.set_extranonce, followed by the current job as a clean
// job (work on the old extranonce1 is void). Only sessions that sent
// mining.extranonce.subscribe can be moved; others would keep hashing
// coinbases the pool no longer recognises.
func (s *Server) reassignExtranonce(ss *session) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.subscribed || !ss.extranonceSub {
		return errors.New("pool: session did not subscribe to extranonce changes")
	}
	old := binary.BigEndian.Uint32(ss.en1[:])
	now := s.now()
	s.mu.Lock()
	en1, _, err := s.en1.acquire(0, false, now)
	if err == nil {
		s.en1.release(old, now)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ss.setExtranonce1(en1)
	line, err := stratum.EncodeNotification("mining.set_extranonce", []any{ss.en1Hex, s.cfg.Extranonce2Size})
	if err != nil {
		return fmt.Errorf("pool: encode set_extranonce: %w", err)
	}
	if !ss.c.SendLine(line) {
		return errors.New("pool: session closed")
	}
	if j := s.jobs.Current(); j != nil && ss.authorized && s.sendJobLocked(ss, j, true) {
		s.sendFutureLocked(ss)
	}
	return nil
}

func asStratumError(err error) *stratum.Error {
	var se *stratum.Error
	if errors.As(err, &se) {
		return se
	}
	return stratum.Errorf(stratum.CodeOther, "%s", err.Error())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Session resume: a miner reconnecting within resumeTTL may ask for its old
// extranonce1 back (the session id in mining.subscribe). Until then a
// released extranonce1 is parked, not reissued.
const (
	resumeTTL = 10 * time.Minute
	// resumeMax bounds the parked set; beyond it the oldest lose their
	// claim early.
	resumeMax = 1 << 16
	// en1CounterMask is the per-node part of extranonce1: 2^24 sessions.
	en1CounterMask = 1<<24 - 1
)

type parkedEn1 struct {
	en1 uint32
	at  time.Time
}

// extranonceAllocator hands out extranonce1 values: the node id in the top
// byte, a counter in the rest, skipping values in use or parked for resume.
// Guarded by Server.mu.
type extranonceAllocator struct {
	started time.Time // the process's start: see acquire
	prefix  uint32
	next    uint32
	inUse   map[uint32]struct{}
	parked  map[uint32]time.Time
	queue   []parkedEn1 // parking order, for expiry
}

func newExtranonceAllocator(nodeID uint8, start uint32, now time.Time) extranonceAllocator {
	return extranonceAllocator{
		started: now,
		prefix:  uint32(nodeID) << 24,
		next:    start & en1CounterMask,
		inUse:   make(map[uint32]struct{}),
		parked:  make(map[uint32]time.Time),
	}
}

var errExtranonceExhausted = errors.New("pool: extranonce1 space exhausted")

// acquire returns the resume value if it is this node's, parked and free,
// else the next free counter value.
func (a *extranonceAllocator) acquire(resume uint32, hasResume bool, now time.Time) (uint32, bool, error) {
	a.expire(now)
	if hasResume && resume&^en1CounterMask == a.prefix {
		if _, parked := a.parked[resume]; parked {
			delete(a.parked, resume)
			a.inUse[resume] = struct{}{}
			return resume, true, nil
		}
		// Just after a restart nothing is parked, but the miners of the
		// previous process come back with its ids (the key is the
		// pool's, Config.ResumeKey): for a resume window after the
		// start they get their extranonce1 back, if no one has it.
		if _, used := a.inUse[resume]; !used && now.Sub(a.started) < resumeTTL {
			a.inUse[resume] = struct{}{}
			return resume, true, nil
		}
	}
	for range en1CounterMask + 1 {
		v := a.prefix | a.next
		a.next = (a.next + 1) & en1CounterMask
		if _, used := a.inUse[v]; used {
			continue
		}
		if _, parked := a.parked[v]; parked {
			continue
		}
		a.inUse[v] = struct{}{}
		return v, false, nil
	}
	return 0, false, errExtranonceExhausted
}

func (a *extranonceAllocator) release(en1 uint32, now time.Time) {
	if _, ok := a.inUse[en1]; !ok {
		return
	}
	delete(a.inUse, en1)
	a.parked[en1] = now
	a.queue = append(a.queue, parkedEn1{en1, now})
	a.expire(now)
}

func (a *extranonceAllocator) expire(now time.Time) {
	for len(a.queue) > 0 {
		p := a.queue[0]
		if now.Sub(p.at) < resumeTTL && len(a.parked) <= resumeMax {
			break
		}
		// A value re-parked later has a newer time; only its latest
		// parking may remove it.
		if at, ok := a.parked[p.en1]; ok && at.Equal(p.at) {
			delete(a.parked, p.en1)
		}
		a.queue = a.queue[1:]
	}
	if len(a.queue) == 0 {
		a.queue = nil
	}
}
