package pool

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/record"
)

// hashrateWindow is what Stats.Hashrate averages over.
const (
	hashrateBucket  = 10 * time.Second
	hashrateBuckets = 60
	hashrateWindow  = hashrateBucket * hashrateBuckets
)

// Stats is a snapshot of the pool for the dashboard.
type Stats struct {
	Sessions          int
	AuthorizedWorkers int
	Accepted          uint64
	Rejected          map[string]uint64 // by reason
	JobHeight         int64             // 0 before the first job
	NetworkDifficulty float64
	BlocksFound       uint64 // blocks the node accepted since start
	// BlocksUnrecorded counts found blocks the ledger has not taken yet
	// (kept in memory, retried in the background).
	BlocksUnrecorded int
	LastBlock        *record.Block // last block submitted, accepted or not
	// Hashrate estimates the pool's hashrate in H/s from the difficulty of
	// accepted shares over the last 10 minutes (or since start, if less).
	Hashrate float64
	// NotifyFanout is the time from a job broadcast starting to the job's
	// line being written to the socket of every session it went to.
	NotifyFanout Histogram
}

// Histogram is a cumulative histogram snapshot, in Prometheus' terms.
type Histogram struct {
	Bounds []float64 // upper bounds, ascending; +Inf implied
	Counts []uint64  // observations ≤ Bounds[i]
	Count  uint64
	Sum    float64
}

// NotifyFanoutBounds are the buckets of Stats.NotifyFanout, in seconds:
// 50 µs to ~1.6 s. A few sessions take microseconds, tens of thousands
// milliseconds; beyond a second a miner is working on an old block.
var NotifyFanoutBounds = func() []float64 {
	b := make([]float64, 16)
	for i := range b {
		b[i] = 50e-6 * float64(uint64(1)<<i)
	}
	return b
}()

// stats are the pool's live counters: shares accepted and refused,
// authorized workers, blocks found and the hashrate buckets.
//
// mu is a leaf in the lock order (see Server.mu): it is never held while
// another lock is taken.
type stats struct {
	accepted  atomic.Uint64
	workers   atomic.Int64
	startedAt time.Time // set once, before the server is shared

	mu        sync.Mutex
	rejected  map[string]uint64 // by reason
	blocksWon uint64
	lastBlock *record.Block
	hashrate  [hashrateBuckets]rateBucket
	fanout    [16]uint64 // per NotifyFanoutBounds bucket, not cumulative
	fanoutN   uint64
	fanoutSum float64
}

type rateBucket struct {
	epoch int64 // bucket index since the Unix epoch
	diff  float64
}

func (c *stats) init(now time.Time) {
	c.rejected = make(map[string]uint64)
	c.startedAt = now
}

// Stats returns a snapshot of the pool's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Accepted:          s.stats.accepted.Load(),
		AuthorizedWorkers: int(s.stats.workers.Load()),
		Rejected:          make(map[string]uint64),
	}
	s.mu.Lock()
	st.Sessions = len(s.sessions)
	s.mu.Unlock()
	if j := s.jobs.Current(); j != nil {
		st.JobHeight, st.NetworkDifficulty = j.Height, j.netDiff
	}
	now := s.now()
	sum := s.stats.snapshot(&st, now)
	st.BlocksUnrecorded = s.rec.pending()
	window := min(now.Sub(s.stats.startedAt), hashrateWindow).Seconds()
	if window < 1 {
		window = 1
	}
	st.Hashrate = sum * 4294967296 / window
	return st
}

// snapshot copies the counters guarded by mu into st and returns the sum
// of the credited difficulties in the hashrate window ending at now.
func (c *stats) snapshot(st *Stats, now time.Time) (sum float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.rejected {
		st.Rejected[k] = v
	}
	st.BlocksFound = c.blocksWon
	st.NotifyFanout = Histogram{Bounds: NotifyFanoutBounds, Counts: make([]uint64, len(NotifyFanoutBounds)),
		Count: c.fanoutN, Sum: c.fanoutSum}
	var cum uint64
	for i, n := range c.fanout {
		cum += n
		st.NotifyFanout.Counts[i] = cum
	}
	if c.lastBlock != nil {
		b := *c.lastBlock
		st.LastBlock = &b
	}
	cur := now.UnixNano() / int64(hashrateBucket)
	for _, b := range c.hashrate {
		if b.epoch > cur-hashrateBuckets && b.epoch <= cur {
			sum += b.diff
		}
	}
	return sum
}

func (c *stats) reject(reason string) {
	c.mu.Lock()
	c.rejected[reason]++
	c.mu.Unlock()
}

func (c *stats) accept(diff float64, now time.Time) {
	c.accepted.Add(1)
	e := now.UnixNano() / int64(hashrateBucket)
	c.mu.Lock()
	b := &c.hashrate[e%hashrateBuckets]
	if b.epoch != e {
		*b = rateBucket{epoch: e}
	}
	b.diff += diff
	c.mu.Unlock()
}

// notifyFanout records one broadcast's fan-out. It runs on whichever
// goroutine wrote the job's last line (see stratum.FanOut).
func (c *stats) notifyFanout(d time.Duration) {
	sec := d.Seconds()
	c.mu.Lock()
	c.fanoutN++
	c.fanoutSum += sec
	for i, b := range NotifyFanoutBounds {
		if sec <= b {
			c.fanout[i]++
			break
		}
	}
	c.mu.Unlock()
}

// block counts a submitted block: the last one, and the won ones.
func (c *stats) block(b record.Block) {
	c.mu.Lock()
	if b.Accepted {
		c.blocksWon++
	}
	c.lastBlock = &b
	c.mu.Unlock()
}
