package loadtest

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// template is a mining.notify decoded once for every session that gets
// it: a pool encodes a job once and sends every session the same bytes,
// so the run decodes each distinct notify once (templateCache), not once
// per session.
type template struct {
	id      string
	idJSON  []byte // the job id as a JSON string, for submit lines
	ntime   uint32
	ntimeHx string // as the pool sent it: submitted back unchanged
	version uint32
	bits    uint32
	prev    [32]byte // header order (the notify word swap undone)
	coinb1  []byte
	coinb2  []byte
	branch  [][32]byte
	network pow.Target
}

// job is a template as one session grinds it.
type job struct {
	*template
	en1     []byte
	en2Size int
	// share is the target a share must meet; miss is the one a rejected
	// share must exceed: the easier of the share and network targets,
	// because a hash that solves a block is never refused as low
	// difficulty.
	share, miss pow.Target
}

// newJob is t for a session with extranonce en1 and en2Size at share
// target share.
func newJob(t *template, en1 []byte, en2Size int, share pow.Target) *job {
	j := &job{template: t, en1: en1, en2Size: en2Size, share: share, miss: share}
	if share.Less(t.network) {
		j.miss = t.network
	}
	return j
}

// parseJob decodes notify params for a session (tests; sessions go through
// the run's templateCache).
func parseJob(p *stratum.NotifyParams, en1 []byte, en2Size int, share pow.Target) (*job, error) {
	t, err := parseTemplate(p)
	if err != nil {
		return nil, err
	}
	return newJob(t, en1, en2Size, share), nil
}

func parseTemplate(p *stratum.NotifyParams) (*template, error) {
	j := &template{id: p.JobID, ntimeHx: p.NTime}
	var err error
	if j.idJSON, err = json.Marshal(p.JobID); err != nil {
		return nil, fmt.Errorf("notify job id: %w", err)
	}
	if j.coinb1, err = hex.DecodeString(p.Coinb1); err != nil {
		return nil, fmt.Errorf("notify coinb1: %w", err)
	}
	if j.coinb2, err = hex.DecodeString(p.Coinb2); err != nil {
		return nil, fmt.Errorf("notify coinb2: %w", err)
	}
	if hex.DecodedLen(len(p.PrevHash)) != 32 {
		return nil, fmt.Errorf("notify prevhash %q: want 64 hex digits", p.PrevHash)
	}
	if _, err := hex.Decode(j.prev[:], []byte(p.PrevHash)); err != nil {
		return nil, fmt.Errorf("notify prevhash: %w", err)
	}
	pow.SwapWords(&j.prev)
	j.branch = make([][32]byte, len(p.MerkleBranch))
	for i, b := range p.MerkleBranch {
		if hex.DecodedLen(len(b)) != 32 {
			return nil, fmt.Errorf("notify merkle branch %q: want 64 hex digits", b)
		}
		if _, err := hex.Decode(j.branch[i][:], []byte(b)); err != nil {
			return nil, fmt.Errorf("notify merkle branch: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		hex  string
		dst  *uint32
	}{{"version", p.Version, &j.version}, {"nbits", p.NBits, &j.bits}, {"ntime", p.NTime, &j.ntime}} {
		v, err := strconv.ParseUint(f.hex, 16, 32)
		if err != nil || len(f.hex) != 8 {
			return nil, fmt.Errorf("notify %s %q: want 8 hex digits", f.name, f.hex)
		}
		*f.dst = uint32(v)
	}
	if j.network, err = pow.CompactToTarget(j.bits); err != nil {
		return nil, fmt.Errorf("notify nbits: %w", err)
	}
	return j, nil
}

// templateCache maps a notify's params, byte for byte, to its template.
type templateCache struct {
	mu sync.Mutex
	m  map[string]*template
}

// maxTemplates bounds the cache. Jobs come and go; a pool that sends each
// session its own coinbase (SOLO) misses every time and must not grow it.
const maxTemplates = 64

// get returns the template of notify params raw, decoding them on a miss.
func (c *templateCache) get(raw []byte) (*template, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.m[string(raw)]; ok {
		return t, nil
	}
	p, err := stratum.ParseNotify(raw)
	if err != nil {
		return nil, err
	}
	t, err := parseTemplate(&p)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= maxTemplates {
		c.m = make(map[string]*template, maxTemplates)
	}
	c.m[string(raw)] = t
	return t, nil
}

// share is one ground solution, what a submit carries.
type share struct {
	en2   uint64
	nonce uint32
}

// grinder searches one job's space: extranonce2 from a counter that never
// repeats within the miner (so no two shares are alike, across jobs too),
// and within each extranonce2 every nonce in turn. Its buffers are reused
// for every share.
type grinder struct {
	job    *job
	en2    uint64 // the next extranonce2 to start
	cur    uint64 // the extranonce2 the header is built for
	nonce  uint64 // the next nonce to try; 1<<32 means take a new extranonce2
	cb     []byte
	en2Buf [8]byte
	header [80]byte
	rolls  int // extranonce2s started on this job
}

// setJob starts grinding j from a fresh extranonce2.
func (g *grinder) setJob(j *job) {
	g.job = j
	g.nonce = 1 << 32
	g.rolls = 0
}

// exhausted reports that the job has no untried share left: only with
// no extranonce2 to roll, after all 2^32 nonces.
func (g *grinder) exhausted() bool {
	return g.job != nil && g.job.en2Size == 0 && g.rolls > 0 && g.nonce >= 1<<32
}

// nextEn2 builds the header for the next extranonce2.
func (g *grinder) nextEn2() {
	j := g.job
	g.cur = g.en2
	g.en2++
	g.rolls++
	g.cb = append(g.cb[:0], j.coinb1...)
	g.cb = append(g.cb, j.en1...)
	g.cb = appendEn2(g.cb, g.cur, j.en2Size, &g.en2Buf)
	g.cb = append(g.cb, j.coinb2...)
	root := pow.FoldMerkleBranch(pow.SHA256d(g.cb), j.branch)
	pow.PutHeader(&g.header, j.version, &j.prev, &root, j.ntime, j.bits, 0)
	g.nonce = 0
}

// appendEn2 appends the low size bytes of v big-endian (zero-padded above
// 8 bytes): the counter's low bytes vary first within short extranonce2s.
func appendEn2(dst []byte, v uint64, size int, buf *[8]byte) []byte {
	binary.BigEndian.PutUint64(buf[:], v)
	for i := size; i > 8; i-- {
		dst = append(dst, 0)
	}
	return append(dst, buf[8-min(size, 8):]...)
}

// find hashes up to limit nonces looking for a hash that meets the share
// target (want) or misses the miss target (!want). It returns ok false
// after limit hashes without one, so the caller can look for a newer job.
func (g *grinder) find(want bool, limit int) (share, bool) {
	j := g.job
	for range limit {
		if g.nonce >= 1<<32 {
			if g.exhausted() {
				return share{}, false
			}
			g.nextEn2()
		}
		n := uint32(g.nonce)
		g.nonce++
		binary.LittleEndian.PutUint32(g.header[76:80], n)
		h := pow.SHA256d(g.header[:])
		var hit bool
		if want {
			hit = pow.HashMeets(&h, j.share)
		} else {
			hit = !pow.HashMeets(&h, j.miss)
		}
		if hit {
			return share{en2: g.cur, nonce: n}, true
		}
	}
	return share{}, false
}

// appendSubmit appends a mining.submit line for s, newline included.
func appendSubmit(dst []byte, id uint64, userJSON []byte, j *job, s share) []byte {
	var buf [8]byte
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":"mining.submit","params":[`...)
	dst = append(dst, userJSON...)
	dst = append(dst, ',')
	dst = append(dst, j.idJSON...)
	dst = append(dst, `,"`...)
	var en2 [32]byte // stratum caps extranonce2 at 32 bytes
	dst = hex.AppendEncode(dst, appendEn2(en2[:0], s.en2, j.en2Size, &buf))
	dst = append(dst, `","`...)
	dst = append(dst, j.ntimeHx...)
	dst = append(dst, `","`...)
	binary.BigEndian.PutUint32(buf[:4], s.nonce)
	dst = hex.AppendEncode(dst, buf[:4])
	return append(dst, "\"]}\n"...)
}
