package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

const (
	subscribeID = 1
	authorizeID = 2
	firstShare  = 3 // submit ids count up from here
	userAgent   = "hashforge-loadtest/1"
	// grindChunk is how many hashes a miner computes between looks for a
	// newer job: ~1 ms of SHA-NI hashing, so a clean job drops old work
	// at once even at a difficulty this generator struggles with.
	grindChunk = 4096
)

// arrival is when a session first saw a job, in ns since the run began.
type arrival struct {
	job string
	at  int64
}

// slot remembers when a submit was written, for its reply's latency. The
// writer stores, the reader loads: atomics, not a lock, on this path.
type slot struct {
	id atomic.Uint64
	at atomic.Int64
}

// miner is one simulated session: its own goroutine dials, handshakes and
// writes submits; a reader goroutine handles everything the pool sends.
type miner struct {
	r        *run
	idx      int
	user     string
	userJSON []byte
	conn     net.Conn
	lr       *stratum.LineReader

	// Owned by whoever reads the connection: the handshake, then the
	// reader goroutine (which the handshake happens before).
	target   pow.Target // from the latest mining.set_difficulty
	en1      []byte
	en2Size  int
	notifies int
	seenJobs map[string]struct{}
	arrivals []arrival
	accepted int64
	rejected int64
	reasons  []reasonCount
	// otherReasons counts refusals past maxReasons distinct reasons.
	otherReasons int64
	replies      *histogram
	disconnect   error
	badMessages  int64

	// Between the reader and the writer.
	job        atomic.Pointer[job]
	wake       chan struct{} // a new job arrived
	inflight   chan struct{} // one token per submit without a reply
	replied    chan struct{} // a submit reply arrived (for the drain)
	slots      []slot
	readerDone chan struct{}
	closing    atomic.Bool

	// Owned by the writer.
	connectErr error
	submitted  int64
	unanswered int64
	nextID     uint64
	g          grinder
	line       []byte
}

func newMiner(r *run, idx int) *miner {
	user := minerUser(r.cfg.User, idx)
	userJSON, _ := json.Marshal(user) // a string always marshals
	ring := 2
	for ring < 2*r.cfg.Window {
		ring <<= 1
	}
	diff1, _ := pow.DifficultyToTarget(1) // Stratum's default before any set_difficulty
	return &miner{
		r: r, idx: idx, user: user, userJSON: userJSON, target: diff1,
		seenJobs:   map[string]struct{}{},
		wake:       make(chan struct{}, 1),
		inflight:   make(chan struct{}, r.cfg.Window),
		replied:    make(chan struct{}, 1),
		slots:      make([]slot, ring),
		readerDone: make(chan struct{}),
		nextID:     firstShare,
	}
}

// run is the miner's whole life; runCtx ends the submitting, ctx (the
// caller's) aborts everything.
func (m *miner) run(ctx, runCtx context.Context) {
	if err := m.connect(runCtx); err != nil {
		m.connectErr = err
		return
	}
	stop := context.AfterFunc(ctx, m.close)
	defer stop()
	if m.r.cfg.Mode == ModeIdle {
		// Nothing to write: this goroutine reads, and the run's end
		// closes the connection under it. One goroutine a session, not
		// two, when there are a hundred thousand.
		stopIdle := context.AfterFunc(runCtx, m.close)
		defer stopIdle()
		m.read()
		return
	}
	go m.read()
	m.submitLoop(runCtx)
	m.drain(ctx)
	m.close()
	<-m.readerDone
	m.unanswered = int64(len(m.inflight))
}

func (m *miner) close() {
	m.closing.Store(true)
	m.conn.Close()
}

// connect dials (from the miner's source address, if any), subscribes and
// authorizes, taking one of the run's connect slots meanwhile.
func (m *miner) connect(ctx context.Context) error {
	select {
	case m.r.connectSlots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("not connected before the run ended: %w", ctx.Err())
	}
	defer func() { <-m.r.connectSlots }()
	d := net.Dialer{}
	if ips := m.r.cfg.SourceIPs; len(ips) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: ips[m.idx%len(ips)].AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", m.r.hostport)
	if err != nil {
		return fmt.Errorf("dial %s: %w", m.r.hostport, err)
	}
	if m.r.tls != nil {
		tc := tls.Client(conn, m.r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			if tlsreload.IsUntrusted(err) {
				return fmt.Errorf("%s: pool certificate not trusted: %w (trust it with --tls-ca FILE or --tls-fingerprint SHA256, or --tls-skip-verify)", m.r.cfg.URL, err)
			}
			return fmt.Errorf("%s: tls handshake: %w", m.r.cfg.URL, err)
		}
		conn = tc
	}
	m.conn = conn
	m.lr = stratum.NewLineReader(conn, 0)
	if err := m.handshake(ctx); err != nil {
		conn.Close()
		return err
	}
	// Writes that the pool stops reading (it paces floods by reading
	// slower) must still end with the run.
	return conn.SetWriteDeadline(m.r.drainEnd)
}

func (m *miner) handshake(ctx context.Context) error {
	deadline, _ := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { m.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := m.conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	line := fmt.Appendf(nil, `{"id":%d,"method":"mining.subscribe","params":[%q]}`+"\n", subscribeID, userAgent)
	if _, err := m.conn.Write(line); err != nil {
		return fmt.Errorf("send mining.subscribe: %w", err)
	}
	res, err := m.await(subscribeID)
	if err != nil {
		return fmt.Errorf("mining.subscribe: %w", err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		return fmt.Errorf("mining.subscribe: %w", err)
	}
	if m.en1, err = hex.DecodeString(sub.Extranonce1); err != nil {
		return fmt.Errorf("mining.subscribe extranonce1: %w", err)
	}
	m.en2Size = sub.Extranonce2Size
	pass, _ := json.Marshal(m.r.cfg.Pass)
	line = fmt.Appendf(line[:0], `{"id":%d,"method":"mining.authorize","params":[%s,%s]}`+"\n", authorizeID, m.userJSON, pass)
	if _, err := m.conn.Write(line); err != nil {
		return fmt.Errorf("send mining.authorize: %w", err)
	}
	if res, err = m.await(authorizeID); err != nil {
		return fmt.Errorf("mining.authorize %s: %w", m.user, err)
	}
	if !bytes.Equal(bytes.TrimSpace(res), []byte("true")) {
		return fmt.Errorf("mining.authorize %s: result %s", m.user, res)
	}
	// Authorized just as the run ended: the deadline may already be in
	// the past, and the session would look closed by the pool.
	if !stop() {
		return fmt.Errorf("authorized as the run ended: %w", ctx.Err())
	}
	return m.conn.SetDeadline(time.Time{})
}

// await reads until the reply with id, handling notifications on the way.
func (m *miner) await(id uint64) (json.RawMessage, error) {
	for {
		line, err := m.lr.ReadLine()
		if err != nil {
			return nil, err
		}
		rep, ok := m.handle(line)
		if !ok || rep.id != id {
			continue
		}
		if !isNull(rep.err) {
			var se stratum.Error
			if err := se.UnmarshalJSON(rep.err); err != nil {
				return nil, err
			}
			return nil, &se
		}
		return rep.result, nil
	}
}

// reply is a response the handshake waits for.
type reply struct {
	id     uint64
	result json.RawMessage
	err    json.RawMessage
}

// message is every line the pool may send, for encoding/json.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// handle processes one line: notifications and submit replies here,
// other replies are returned (ok) for the handshake.
func (m *miner) handle(line []byte) (reply, bool) {
	now := m.r.now()
	if id, ok := parseAccept(line); ok && id >= firstShare {
		m.submitReply(id, now, nil, nil)
		return reply{}, false
	}
	if id, code, msg, ok := parseReject(line); ok && id >= firstShare {
		m.submitReply(id, now, code, msg)
		return reply{}, false
	}
	if bytes.HasPrefix(line, []byte(notifyPrefix)) && line[len(line)-1] == '}' {
		// Anything odd after the params is encoding/json's to read.
		if t, err := m.r.templates.get(line[len(notifyPrefix) : len(line)-1]); err == nil {
			m.arrive(t, now)
			return reply{}, false
		}
	}
	var msg message
	if err := json.Unmarshal(line, &msg); err != nil {
		m.badMessages++
		return reply{}, false
	}
	if msg.Method != "" {
		m.notification(msg.Method, msg.Params, now)
		return reply{}, false
	}
	id, err := strconv.ParseUint(string(bytes.TrimSpace(msg.ID)), 10, 64)
	if err != nil {
		m.badMessages++
		return reply{}, false
	}
	if id < firstShare {
		return reply{id: id, result: msg.Result, err: msg.Error}, true
	}
	switch {
	case !isNull(msg.Error):
		var se stratum.Error
		if se.UnmarshalJSON(msg.Error) == nil {
			m.submitReply(id, now, strconv.AppendInt(nil, int64(se.Code), 10), []byte(se.Message))
		} else {
			m.submitReply(id, now, []byte("unparsed error"), msg.Error)
		}
	case bytes.Equal(bytes.TrimSpace(msg.Result), []byte("true")):
		m.submitReply(id, now, nil, nil)
	default:
		m.submitReply(id, now, []byte("result"), bytes.TrimSpace(msg.Result))
	}
	return reply{}, false
}

// parseReject recognizes the usual refusal,
// {"id":N,"result":null,"error":[CODE,"MESSAGE",null]} with a message
// without escapes, without encoding/json: under a flood of stale or
// low-difficulty shares it is as hot as an accept.
func parseReject(line []byte) (id uint64, code, msg []byte, ok bool) {
	const prefix, mid, suffix = `{"id":`, `,"result":null,"error":[`, `,null]}`
	if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte(suffix)) {
		return 0, nil, nil, false
	}
	rest := line[len(prefix) : len(line)-len(suffix)]
	i := bytes.Index(rest, []byte(mid))
	if i < 0 {
		return 0, nil, nil, false
	}
	if id, ok = parseUint(rest[:i]); !ok {
		return 0, nil, nil, false
	}
	rest = rest[i+len(mid):]
	comma := bytes.IndexByte(rest, ',')
	if comma < 0 {
		return 0, nil, nil, false
	}
	code, quoted := rest[:comma], rest[comma+1:]
	if c := bytes.TrimPrefix(code, []byte("-")); len(c) > 9 || string(code) == "-0" {
		return 0, nil, nil, false
	} else if _, ok := parseUint(c); !ok {
		return 0, nil, nil, false
	}
	if len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return 0, nil, nil, false
	}
	msg = quoted[1 : len(quoted)-1]
	for _, c := range msg {
		// Printable ASCII without escapes reads the same in every
		// decoder; anything else is encoding/json's to decide.
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return 0, nil, nil, false
		}
	}
	return id, code, msg, true
}

// parseUint reads 1 to 19 decimal digits, as JSON writes a number: no
// leading zero.
func parseUint(digits []byte) (uint64, bool) {
	if len(digits) == 0 || len(digits) > 19 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var v uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// parseAccept recognizes the line nearly every submit gets,
// {"id":N,"result":true,"error":null}, without encoding/json.
func parseAccept(line []byte) (uint64, bool) {
	const prefix, suffix = `{"id":`, `,"result":true,"error":null}`
	if !bytes.HasPrefix(line, []byte(prefix)) || !bytes.HasSuffix(line, []byte(suffix)) {
		return 0, false
	}
	return parseUint(line[len(prefix) : len(line)-len(suffix)])
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// reasonCount is one refusal reason, "CODE message", and how often it
// came. A short list, searched without building the key, keeps a flood of
// refusals from allocating a string each.
type reasonCount struct {
	key string
	n   int64
}

// maxReasons bounds a miner's distinct reasons: a pool that puts the job
// id or a hash in its messages would grow the list without end.
const maxReasons = 32

// submitReply counts the reply to submit id: accepted when code is nil,
// else refused for "code msg".
func (m *miner) submitReply(id uint64, now int64, code, msg []byte) {
	if code == nil {
		m.accepted++
	} else {
		m.rejected++
		m.addReason(code, msg)
	}
	if s := &m.slots[id&uint64(len(m.slots)-1)]; s.id.Load() == id {
		if m.replies == nil {
			m.replies = new(histogram)
		}
		m.replies.add(time.Duration(now - s.at.Load()))
	}
	select {
	case <-m.inflight:
	default: // a reply to nothing we have in flight
	}
	select {
	case m.replied <- struct{}{}:
	default:
	}
}

func (m *miner) addReason(code, msg []byte) {
	for i := range m.reasons {
		k := m.reasons[i].key
		if len(k) == len(code)+1+len(msg) && k[:len(code)] == string(code) && k[len(code)+1:] == string(msg) {
			m.reasons[i].n++
			return
		}
	}
	if len(m.reasons) == maxReasons {
		m.otherReasons++
		return
	}
	m.reasons = append(m.reasons, reasonCount{key: string(code) + " " + string(msg), n: 1})
}

func (m *miner) notification(method string, params json.RawMessage, now int64) {
	switch method {
	case "mining.set_difficulty":
		var p []float64
		if json.Unmarshal(params, &p) != nil || len(p) < 1 || !(p[0] > 0) || math.IsInf(p[0], 0) {
			m.badMessages++
			return
		}
		if t, err := pow.DifficultyToTarget(p[0]); err == nil {
			m.target = t
		}
	case "mining.set_extranonce":
		var p []json.RawMessage
		var en1 string
		var size int
		if json.Unmarshal(params, &p) != nil || len(p) < 2 ||
			json.Unmarshal(p[0], &en1) != nil || json.Unmarshal(p[1], &size) != nil || size < 0 || size > 32 {
			m.badMessages++
			return
		}
		b, err := hex.DecodeString(en1)
		if err != nil {
			m.badMessages++
			return
		}
		// Like the difficulty, it binds from the next job.
		m.en1, m.en2Size = b, size
	case "mining.notify":
		m.notify(params, now)
	}
}

// notifyPrefix starts every mining.notify line a pool encodes the way
// stratum does; its params then run to the line's last '}'.
const notifyPrefix = `{"id":null,"method":"mining.notify","params":`

func (m *miner) notify(params []byte, now int64) {
	t, err := m.r.templates.get(params)
	if err != nil {
		m.badMessages++
		return
	}
	m.arrive(t, now)
}

// arrive takes job t, received at now.
func (m *miner) arrive(t *template, now int64) {
	m.notifies++
	// The first job answers the authorize, when this session arrived; it
	// says nothing of the broadcast's spread. A job sent again (after a
	// retarget) is not a new arrival.
	if _, seen := m.seenJobs[t.id]; !seen {
		m.seenJobs[t.id] = struct{}{}
		if m.notifies > 1 {
			m.arrivals = append(m.arrivals, arrival{job: t.id, at: now})
		}
	}
	if m.r.cfg.Mode == ModeIdle {
		return
	}
	m.job.Store(newJob(t, m.en1, m.en2Size, m.target))
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// read handles the pool's lines until the connection ends.
func (m *miner) read() {
	defer close(m.readerDone)
	for {
		line, err := m.lr.ReadLine()
		if err != nil {
			if !m.closing.Load() {
				m.disconnect = err
			}
			return
		}
		m.handle(line)
	}
}

// submitLoop grinds and submits until ctx ends or the connection does.
func (m *miner) submitLoop(ctx context.Context) {
	want := m.r.cfg.Mode == ModeAccept
	var interval time.Duration
	var next time.Time
	var pace *time.Timer
	if m.r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / m.r.cfg.Rate)
		// Spread the miners' first submits over one interval, so a
		// paced run does not arrive in lockstep bursts.
		next = time.Now().Add(time.Duration(m.idx) * interval / time.Duration(m.r.cfg.Miners))
		pace = time.NewTimer(0)
		defer pace.Stop()
	}
	for ctx.Err() == nil {
		if pace != nil {
			if wait := time.Until(m.r.onGrid(next)); wait > 0 {
				pace.Reset(wait)
				select {
				case <-pace.C:
				case <-ctx.Done():
					return
				}
			}
			// A pool that falls behind gets the rate, not a burst of
			// everything it missed.
			next = next.Add(interval)
			if behind := time.Now().Add(-interval); next.Before(behind) {
				next = behind
			}
		}
		select {
		case m.inflight <- struct{}{}:
		case <-ctx.Done():
			return
		case <-m.readerDone:
			return
		}
		j, s, ok := m.grind(ctx, want)
		if !ok {
			m.returnToken()
			return
		}
		id := m.nextID
		m.nextID++
		sl := &m.slots[id&uint64(len(m.slots)-1)]
		sl.at.Store(m.r.now())
		sl.id.Store(id)
		m.line = appendSubmit(m.line[:0], id, m.userJSON, j, s)
		if _, err := m.conn.Write(m.line); err != nil {
			m.returnToken()
			return
		}
		m.submitted++
	}
}

// returnToken gives back the window slot of a submit that was not sent.
// It never blocks: a stray reply may have taken the slot already.
func (m *miner) returnToken() {
	select {
	case <-m.inflight:
	default:
	}
}

// grind finds the next share on the newest job, waiting for one if there
// is none to work on.
func (m *miner) grind(ctx context.Context, want bool) (*job, share, bool) {
	for ctx.Err() == nil {
		j := m.job.Load()
		if j != nil && j != m.g.job {
			m.g.setJob(j)
		}
		if j == nil || (!want && j.miss == maxTarget) || m.g.exhausted() {
			// Nothing to grind: no job yet, a job no hash can miss, or
			// a job whose whole space this miner used.
			select {
			case <-m.wake:
			case <-ctx.Done():
			case <-m.readerDone:
				return nil, share{}, false
			}
			continue
		}
		if s, ok := m.g.find(want, grindChunk); ok {
			return j, s, true
		}
	}
	return nil, share{}, false
}

var maxTarget = pow.Target{math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64}

// drain waits, until the run's drain deadline, for the replies to the
// submits still in flight.
func (m *miner) drain(ctx context.Context) {
	t := time.NewTimer(time.Until(m.r.drainEnd))
	defer t.Stop()
	for len(m.inflight) > 0 {
		select {
		case <-m.replied:
		case <-t.C:
			return
		case <-m.readerDone:
			return
		case <-ctx.Done():
			return
		}
	}
}
