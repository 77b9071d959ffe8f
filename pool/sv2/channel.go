package sv2

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"sync"

	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

// shareInterval is what a channel's nominal hashrate is turned into a
// starting difficulty for (vardiff takes it from there).
const shareInterval = 10.0 // seconds

// maxJobs is how many of a channel's jobs are remembered for its submits.
const maxJobs = 64

// channel is one V2 mining channel, a pool.Channel. It implements
// pool.Conn: the pool's V1 lines come in through SendLine and Reply.
type channel struct {
	conn     *connection
	id       uint32
	standard bool
	user     string
	remote   string
	pc       *pool.Channel

	mu sync.Mutex
	// opening: the pool's first lines (difficulty, job) wait until the
	// channel's Success has gone out; step is the reply to the request
	// being made while opening.
	opening bool
	pending []pendingLine
	step    stepReply

	en1     []byte // the extranonce prefix (the session's extranonce1)
	en2Size int
	mask    uint32
	rolling bool

	difficulty float64
	target     pow.Target
	jobs       [maxJobs]jobInfo
	jobIDs     map[uint32]int // V2 job id → index in jobs
	nextJob    uint32
	prev       [32]byte // the previous block of the last job, header order
	hasPrev    bool
	// future is the V2 id of the future job the miner holds (0: none)
	// and futureV1 the pool's id of it: the pool's job under that id is
	// its activation, sent as SetNewPrevHash alone.
	future   uint32
	futureV1 string
	closed   bool
}

type pendingLine struct {
	line   []byte
	future bool // a future job (pool.FutureConn)
}

type stepReply struct {
	result any
	err    *stratum.Error
	got    bool
}

// jobInfo is what a submit needs of a job.
type jobInfo struct {
	v1      string
	v2      uint32
	version uint32
	used    bool
}

// open makes a channel: subscribe and authorize on a pool.Channel, then
// the Success (or the Error), then the difficulty and job the pool sent
// meanwhile.
func (c *connection) open(reqID uint32, user string, hashrate float32, minExtranonce int, standard bool) {
	fail := func(code string) {
		c.send(&stratum2.OpenMiningChannelError{RequestID: reqID, ErrorCode: code})
	}
	c.mu.Lock()
	if c.channels == nil || len(c.channels) >= maxChannels {
		c.mu.Unlock()
		fail("too-many-channels")
		return
	}
	c.nextID++
	id := c.nextID
	if standard && c.groupID == 0 {
		// Standard channels belong to a group channel (the
		// specification); ours is one per connection. Jobs still go to
		// each channel as standard jobs, which a group's members may
		// always be sent.
		c.nextID++
		c.groupID = c.nextID
	}
	group := c.groupID
	c.mu.Unlock()

	ch := &channel{conn: c, id: id, standard: standard, user: user, remote: c.nc.RemoteAddr().String(),
		opening: true, jobIDs: make(map[uint32]int)}
	ch.pc = c.srv.Pool.OpenChannel(ch)
	ok := false
	defer func() {
		if !ok {
			ch.close()
		}
	}()
	if !standard {
		// Extended channels roll version bits as the pool allows (BIP 320).
		res, serr := ch.call("mining.configure", `[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]`)
		if serr == nil {
			if m, isMap := res.(map[string]any); isMap && m["version-rolling"] == true {
				if s, isStr := m["version-rolling.mask"].(string); isStr {
					if v, err := strconv.ParseUint(s, 16, 32); err == nil {
						ch.mask, ch.rolling = uint32(v), true
					}
				}
			}
		}
	}
	res, serr := ch.call("mining.subscribe", `["hashforge-sv2"]`)
	if serr != nil {
		fail("subscribe-failed")
		return
	}
	en1, en2Size, good := subscribeResult(res)
	if !good {
		fail("subscribe-failed")
		return
	}
	if minExtranonce > en2Size {
		fail("min-extranonce-size-too-large")
		return
	}
	ch.en1, ch.en2Size = en1, en2Size
	if hashrate > 0 && !math.IsInf(float64(hashrate), 0) {
		// A starting point, as mining.suggest_difficulty is for V1.
		d := float64(hashrate) * shareInterval / 4294967296
		_, _ = ch.call("mining.suggest_difficulty", "["+strconv.FormatFloat(d, 'g', -1, 64)+"]")
	}
	userJSON, _ := json.Marshal([]string{user, ""})
	res, serr = ch.call("mining.authorize", string(userJSON))
	if serr != nil || res != true {
		fail(stratum2.ErrCodeUnknownUser)
		return
	}

	c.mu.Lock()
	if c.channels == nil {
		c.mu.Unlock()
		return
	}
	c.channels[id] = ch
	c.mu.Unlock()
	ok = true
	if c.slot != nil {
		// A connection with an open channel keeps its place when the
		// caps are reached, as an authorized V1 session does.
		c.srv.Gate.Authorized(c.slot)
	}

	ch.mu.Lock()
	defer ch.mu.Unlock()
	pending := ch.pending
	ch.opening, ch.pending = false, nil
	// The pool's set_difficulty is among the pending lines: its target
	// goes in the Success.
	for _, p := range pending {
		if m := parseLine(p.line); m.Method == "mining.set_difficulty" {
			ch.setDifficultyLocked(m.Params, false)
		}
	}
	target := ch.target.Hash()
	if standard {
		c.send(&stratum2.OpenStandardMiningChannelSuccess{RequestID: reqID, ChannelID: id, Target: stratum2.U256(target),
			ExtranoncePrefix: ch.fullExtranonce(), GroupChannelID: group})
	} else {
		c.send(&stratum2.OpenExtendedMiningChannelSuccess{RequestID: reqID, ChannelID: id, Target: stratum2.U256(target),
			ExtranonceSize: uint16(en2Size), ExtranoncePrefix: en1})
	}
	for _, p := range pending {
		if p.future {
			ch.futureLocked(p.line)
		} else {
			ch.lineLocked(p.line)
		}
	}
}

// call makes a V1 request of the pool and returns its (synchronous) reply.
func (ch *channel) call(method, params string) (any, *stratum.Error) {
	ch.mu.Lock()
	ch.step = stepReply{}
	ch.mu.Unlock()
	ch.pc.Handle(&stratum.Request{ID: json.RawMessage(`"open"`), Method: method, Params: json.RawMessage(params)})
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.step.got {
		return nil, stratum.Errorf(stratum.CodeOther, "no reply")
	}
	return ch.step.result, ch.step.err
}

// subscribeResult reads the pool's subscribe reply, the Go value
// stratum.SubscribeResult makes (never decoded JSON: the channel is in
// the pool's process).
func subscribeResult(res any) (en1 []byte, en2Size int, ok bool) {
	arr, isArr := res.([]any)
	if !isArr || len(arr) < 3 {
		return nil, 0, false
	}
	s, isStr := arr[1].(string)
	n, isInt := arr[2].(int)
	if !isStr || !isInt || n < 1 || n > 32 {
		return nil, 0, false
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, 0, false
	}
	return b, n, true
}

// fullExtranonce is a standard channel's whole extranonce: the prefix and
// the part an extended channel would roll, fixed at zero (the channel is
// the session: its extranonce1 is unique in the pool).
func (ch *channel) fullExtranonce() []byte {
	b := make([]byte, len(ch.en1)+ch.en2Size)
	copy(b, ch.en1)
	return b
}

// submit hands a share to the pool; its verdict comes back through Reply
// or ReplyError with the sequence number as the id.
func (ch *channel) submit(seq, jobID, nonce, ntime, version uint32, extranonce []byte) {
	ch.mu.Lock()
	i, known := ch.jobIDs[jobID]
	var job jobInfo
	if known {
		job = ch.jobs[i]
	}
	rolling, mask := ch.rolling, ch.mask
	if ch.standard {
		extranonce = make([]byte, ch.en2Size)
	}
	ch.mu.Unlock()
	if !known {
		ch.conn.send(&stratum2.SubmitSharesError{ChannelID: ch.id, SequenceNumber: seq, ErrorCode: stratum2.ErrCodeInvalidJobID})
		return
	}
	p := stratum.SubmitParams{User: ch.user, JobID: job.v1, Extranonce2: extranonce, NTime: ntime, Nonce: nonce}
	if rolling {
		// The pool builds the header's version from the job's and the
		// rolled bits; bits the miner changed outside the mask make a
		// hash that does not match, refused as any bad share is.
		p.VersionBits, p.HasVersionBits = version&mask, true
	} else if version != job.version {
		ch.conn.send(&stratum2.SubmitSharesError{ChannelID: ch.id, SequenceNumber: seq, ErrorCode: "version-rolling-not-allowed"})
		return
	}
	ch.pc.Handle(stratum.NewSubmitRequest(json.RawMessage(strconv.FormatUint(uint64(seq), 10)), p))
}

// suggest turns UpdateChannel's nominal hashrate into a difficulty
// suggestion: it raises the channel's difficulty, never lowers what
// vardiff set (as for V1).
func (ch *channel) suggest(hashrate float32) {
	if hashrate <= 0 || math.IsInf(float64(hashrate), 0) || math.IsNaN(float64(hashrate)) {
		return
	}
	d := float64(hashrate) * shareInterval / 4294967296
	ch.pc.Handle(&stratum.Request{ID: json.RawMessage(`"update"`), Method: "mining.suggest_difficulty",
		Params: json.RawMessage("[" + strconv.FormatFloat(d, 'g', -1, 64) + "]")})
}

func (ch *channel) close() {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	ch.closed = true
	ch.mu.Unlock()
	ch.pc.Close()
}

// The pool.Conn side.

// RemoteAddr implements pool.Conn.
func (ch *channel) RemoteAddr() string { return ch.remote }

// SetAuthorized implements pool.Conn.
func (ch *channel) SetAuthorized() {}

// Reply implements pool.Conn: an opening step's answer, or a share's.
func (ch *channel) Reply(id json.RawMessage, result any) {
	if seq, ok := sequence(id); ok {
		ch.conn.send(&stratum2.SubmitSharesSuccess{ChannelID: ch.id, LastSequenceNumber: seq, NewSubmitsAcceptedCount: 1,
			NewSharesSum: ch.shareWeight()})
		return
	}
	ch.mu.Lock()
	ch.step = stepReply{result: result, got: true}
	ch.mu.Unlock()
}

// ReplyError implements pool.Conn.
func (ch *channel) ReplyError(id json.RawMessage, err *stratum.Error) {
	if seq, ok := sequence(id); ok {
		ch.conn.send(&stratum2.SubmitSharesError{ChannelID: ch.id, SequenceNumber: seq, ErrorCode: errorCode(err)})
		return
	}
	ch.mu.Lock()
	ch.step = stepReply{err: err, got: true}
	ch.mu.Unlock()
}

func (ch *channel) shareWeight() uint64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return uint64(math.Max(1, math.Round(ch.difficulty)))
}

// sequence reads a submit's id: its V2 sequence number.
func sequence(id json.RawMessage) (uint32, bool) {
	if len(id) == 0 || id[0] == '"' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(id), 10, 32)
	return uint32(v), err == nil
}

// errorCode names a refusal in the V2 specification's words where it has
// them.
func errorCode(err *stratum.Error) string {
	if err == nil {
		return "unknown"
	}
	switch err.Code {
	case stratum.CodeJobNotFound:
		if err.Message == "stale job" {
			return stratum2.ErrCodeStaleShare
		}
		return stratum2.ErrCodeInvalidJobID
	case stratum.CodeLowDifficulty:
		return stratum2.ErrCodeDifficultyTooLow
	case stratum.CodeDuplicate:
		return "duplicate-share"
	case stratum.CodeUnauthorized:
		return "unauthorized"
	}
	return "invalid-share"
}

// SendLine implements pool.Conn: the pool's V1 notifications, translated.
func (ch *channel) SendLine(line []byte) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return false
	}
	if ch.opening {
		ch.pending = append(ch.pending, pendingLine{line: append([]byte(nil), line...)})
		return true
	}
	ch.lineLocked(line)
	return true
}

// SendFutureJob implements pool.FutureConn: the next height's job, sent
// to the miner as a future job before its previous block exists.
func (ch *channel) SendFutureJob(line []byte) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return false
	}
	if ch.opening {
		ch.pending = append(ch.pending, pendingLine{line: append([]byte(nil), line...), future: true})
		return true
	}
	ch.futureLocked(line)
	return true
}

func (ch *channel) futureLocked(line []byte) {
	m := ch.conn.srv.lines.parse(line)
	if m.Method != "mining.notify" || !m.notifyOK {
		return
	}
	ch.future, ch.futureV1 = ch.sendJobLocked(m.notify, nil), m.notify.jobID
}

func (ch *channel) lineLocked(line []byte) {
	m := ch.conn.srv.lines.parse(line)
	switch m.Method {
	case "mining.set_difficulty":
		ch.setDifficultyLocked(m.Params, true)
	case "mining.notify":
		ch.notifyLocked(m.notify, m.notifyOK)
	case "mining.set_extranonce":
		var p []json.RawMessage
		var en1 string
		if json.Unmarshal(m.Params, &p) == nil && len(p) >= 1 && json.Unmarshal(p[0], &en1) == nil {
			if b, err := hex.DecodeString(en1); err == nil {
				ch.en1 = b
				// A standard channel's future job has the old
				// extranonce in its merkle root: the pool sends
				// the future job again.
				ch.future, ch.futureV1 = 0, ""
				prefix := b
				if ch.standard {
					prefix = ch.fullExtranonce()
				}
				ch.conn.send(&stratum2.SetExtranoncePrefix{ChannelID: ch.id, ExtranoncePrefix: prefix})
			}
		}
	case "client.reconnect":
		var p []json.RawMessage
		_ = json.Unmarshal(m.Params, &p)
		var host string
		var port float64
		if len(p) >= 2 {
			_ = json.Unmarshal(p[0], &host)
			_ = json.Unmarshal(p[1], &port)
		}
		ch.conn.send(&stratum2.Reconnect{NewHost: host, NewPort: uint16(port)})
	}
}

func (ch *channel) setDifficultyLocked(params json.RawMessage, send bool) {
	var p []float64
	if json.Unmarshal(params, &p) != nil || len(p) != 1 {
		return
	}
	t, err := pow.DifficultyToTarget(p[0])
	if err != nil {
		return
	}
	ch.difficulty, ch.target = p[0], t
	if send {
		ch.conn.send(&stratum2.SetTarget{ChannelID: ch.id, MaximumTarget: stratum2.U256(t.Hash())})
	}
}

// notifyLocked sends a job: a job on a new previous block goes ahead as a
// future job followed by SetNewPrevHash (one small message switches the
// miner), any other as a job active at once. The activation of the
// future job the miner already holds is the SetNewPrevHash alone.
func (ch *channel) notifyLocked(n *parsedNotify, ok bool) {
	if !ok {
		return
	}
	if ch.future != 0 && n.jobID == ch.futureV1 {
		id := ch.future
		ch.future, ch.futureV1 = 0, ""
		if slot, held := ch.jobIDs[id]; held && ch.jobs[slot].v1 == n.jobID {
			ch.prev, ch.hasPrev = n.prev, true
			ch.conn.send(&stratum2.SetNewPrevHash{ChannelID: ch.id, JobID: id, PrevHash: stratum2.U256(n.prev),
				MinNTime: n.ntime, NBits: n.nbits})
			return
		}
	}
	// V1's clean_jobs on the same previous block (the node's template
	// after an empty job) is no new block in V2: the job starts at once
	// and the ones before stay valid, as they do at the pool.
	newPrev := !ch.hasPrev || ch.prev != n.prev
	ntime := n.ntime
	var minNTime *uint32
	if !newPrev {
		minNTime = &ntime
	}
	id := ch.sendJobLocked(n, minNTime)
	if newPrev {
		// The miner drops every future job it holds on a SetNewPrevHash
		// for another job.
		ch.future, ch.futureV1 = 0, ""
		ch.prev, ch.hasPrev = n.prev, true
		ch.conn.send(&stratum2.SetNewPrevHash{ChannelID: ch.id, JobID: id, PrevHash: stratum2.U256(n.prev),
			MinNTime: ntime, NBits: n.nbits})
	}
}

// sendJobLocked gives a pool job a V2 id in this channel and sends it: a
// future job when minNTime is nil.
func (ch *channel) sendJobLocked(n *parsedNotify, minNTime *uint32) uint32 {
	ch.nextJob++
	id := ch.nextJob
	slot := int(id % maxJobs)
	if old := ch.jobs[slot]; old.used {
		delete(ch.jobIDs, old.v2)
	}
	ch.jobs[slot] = jobInfo{v1: n.jobID, v2: id, version: n.version, used: true}
	ch.jobIDs[id] = slot
	if ch.standard {
		root := n.merkleRoot(ch.fullExtranonce())
		ch.conn.send(&stratum2.NewMiningJob{ChannelID: ch.id, JobID: id, MinNTime: minNTime, Version: n.version,
			MerkleRoot: stratum2.U256(root)})
	} else {
		ch.conn.send(&stratum2.NewExtendedMiningJob{ChannelID: ch.id, JobID: id, MinNTime: minNTime, Version: n.version,
			VersionRollingAllowed: ch.rolling, MerklePath: n.path, CoinbaseTxPrefix: n.coinb1, CoinbaseTxSuffix: n.coinb2})
	}
	return id
}

// parsedNotify is a mining.notify in V2's terms.
type parsedNotify struct {
	jobID          string
	prev           [32]byte // header byte order
	coinb1, coinb2 []byte
	path           []stratum2.U256
	branch         [][32]byte
	version, nbits uint32
	ntime          uint32
}

// merkleRoot is the root of the job's block for a coinbase with the
// given whole extranonce (a standard channel's).
func (n *parsedNotify) merkleRoot(extranonce []byte) [32]byte {
	cb := make([]byte, 0, len(n.coinb1)+len(extranonce)+len(n.coinb2))
	cb = append(append(append(cb, n.coinb1...), extranonce...), n.coinb2...)
	return pow.FoldMerkleBranch(pow.SHA256d(cb), n.branch)
}

func decodeNotify(params json.RawMessage) (*parsedNotify, bool) {
	var p stratum.NotifyParams
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, false
	}
	n := &parsedNotify{jobID: p.JobID}
	prev, err := hex.DecodeString(p.PrevHash)
	if err != nil || len(prev) != 32 {
		return nil, false
	}
	copy(n.prev[:], prev)
	pow.SwapWords(&n.prev)
	if n.coinb1, err = hex.DecodeString(p.Coinb1); err != nil {
		return nil, false
	}
	if n.coinb2, err = hex.DecodeString(p.Coinb2); err != nil {
		return nil, false
	}
	for _, h := range p.MerkleBranch {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return nil, false
		}
		n.branch = append(n.branch, [32]byte(b))
		n.path = append(n.path, stratum2.U256(b))
	}
	for _, f := range []struct {
		s   string
		dst *uint32
	}{{p.Version, &n.version}, {p.NBits, &n.nbits}, {p.NTime, &n.ntime}} {
		b, err := hex.DecodeString(f.s)
		if err != nil || len(b) != 4 {
			return nil, false
		}
		*f.dst = binary.BigEndian.Uint32(b)
	}
	return n, true
}

// line is a V1 line from the pool, parsed.
type line struct {
	Method   string          `json:"method"`
	Params   json.RawMessage `json:"params"`
	notify   *parsedNotify
	notifyOK bool
}

func parseLine(b []byte) line {
	var l line
	_ = json.Unmarshal(b, &l)
	if l.Method == "mining.notify" {
		l.notify, l.notifyOK = decodeNotify(l.Params)
	}
	return l
}

// lineCache parses a job's notify line once for every channel it goes
// to: the pool sends every session the same line (one slice), so the
// last few are kept by content.
type lineCache struct {
	mu    sync.Mutex
	lines [4]struct {
		raw string
		l   line
	}
	next int
}

func (c *lineCache) parse(b []byte) line {
	c.mu.Lock()
	for i := range c.lines {
		if c.lines[i].raw != "" && c.lines[i].raw == string(b) {
			l := c.lines[i].l
			c.mu.Unlock()
			return l
		}
	}
	c.mu.Unlock()
	l := parseLine(b)
	if l.Method == "mining.notify" {
		c.mu.Lock()
		c.lines[c.next].raw, c.lines[c.next].l = string(b), l
		c.next = (c.next + 1) % len(c.lines)
		c.mu.Unlock()
	}
	return l
}

// Protocol tells the pool this session speaks Stratum V2.
func (ch *channel) Protocol() string { return pool.ProtocolV2 }
