package pool

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

// Defaults for the zero values of Config.
const (
	DefaultStartDifficulty = 1.0
	DefaultMinDifficulty   = 0.001
	DefaultShareInterval   = 10 * time.Second
	// DefaultVersionMask is the BIP 320 general-purpose version bits.
	DefaultVersionMask = 0x1fffe000
	// BIP323VersionMask is the wider BIP 323 option.
	BIP323VersionMask = 0x1fffffe0
	DefaultJobRefresh = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	Network     *chaincfg.Params
	PoolAddress string // receives the coinbase value
	CoinbaseTag string // shown in the coinbase scriptSig, truncated to fit 100 bytes
	// NodeID is the first byte of every extranonce1 this node hands out,
	// so several pool nodes behind one address never give two miners the
	// same search space.
	NodeID          uint8
	Extranonce2Size int     // default 8
	StartDifficulty float64 // default 1
	MinDifficulty   float64 // vardiff floor, default 0.001
	ShareInterval   time.Duration
	VersionMask     uint32 // pool's version-rolling mask, default 0x1fffe000
	// JobRefresh is the least time between two non-clean jobs: templates
	// for the same previous block arriving faster (a node long-polling on
	// every new transaction) are coalesced, the newest winning. A new
	// previous block is always sent at once. Default 30 s.
	JobRefresh time.Duration
	Logger     *slog.Logger
	// Solo makes every session's coinbase pay the first address it
	// authorized (SOLO) instead of PoolAddress. SoloSplit, when set,
	// divides the coinbase value between the finder and the pool fee paid
	// to SoloFeeAddress (the payout package owns that rule:
	// payout.SoloCoinbase); nil gives the finder everything.
	Solo           bool
	SoloSplit      func(value int64) (finder, fee int64, err error)
	SoloFeeAddress string
}

// BlockSubmitter submits a solved block to the node. verdict is "" when the
// node accepted the block, its reject reason otherwise.
type BlockSubmitter interface {
	SubmitBlock(ctx context.Context, blockHex string) (verdict string, err error)
}

// Server is the pool core: it builds jobs from templates (Run), speaks
// Stratum to miners (it implements stratum.Handler), checks shares, submits
// blocks and hands accepted shares to the ledger.
type Server struct {
	cfg     Config
	log     *slog.Logger
	payout  []byte // output script paying cfg.PoolAddress
	soloFee []byte // output script paying cfg.SoloFeeAddress
	submit  BlockSubmitter
	shares  ShareSink
	jobs    *JobBook
	jobBase string // per-boot random job id prefix
	jobSeq  uint64 // owned by Run
	now     func() time.Time

	mu       sync.Mutex
	sessions map[*session]struct{}
	en1      extranonceAllocator
	fanout   []*session // broadcast's reusable snapshot; owned by Run
	events   eventBus

	stats stats

	// submitBackoff is the submitblock retry schedule; the package
	// default, shortened by tests.
	submitBackoff []time.Duration
	rec           *blockRecorder
}

// NewServer validates cfg, applies defaults and returns a Server ready to be
// given to a stratum.Server and to Run.
func NewServer(cfg Config, submit BlockSubmitter, shares ShareSink, blocks BlockSink) (*Server, error) {
	if cfg.Network == nil {
		return nil, errors.New("pool: config: no network")
	}
	if submit == nil || shares == nil || blocks == nil {
		return nil, errors.New("pool: config: block submitter, share sink and block sink are required")
	}
	payout, err := payoutScript(cfg.PoolAddress, cfg.Network)
	if err != nil {
		return nil, fmt.Errorf("pool: config: pool address: %w", err)
	}
	var soloFee []byte
	if cfg.Solo {
		if cfg.SoloSplit != nil {
			if soloFee, err = payoutScript(cfg.SoloFeeAddress, cfg.Network); err != nil {
				return nil, fmt.Errorf("pool: config: SOLO fee address: %w", err)
			}
		}
	}
	if cfg.Extranonce2Size == 0 {
		cfg.Extranonce2Size = DefaultExtranonce2Size
	}
	if cfg.Extranonce2Size < 1 || cfg.Extranonce2Size > maxExtranonce2Size {
		return nil, fmt.Errorf("pool: config: extranonce2 size %d outside 1..%d", cfg.Extranonce2Size, maxExtranonce2Size)
	}
	if cfg.MinDifficulty == 0 {
		cfg.MinDifficulty = DefaultMinDifficulty
	}
	if cfg.StartDifficulty == 0 {
		cfg.StartDifficulty = max(DefaultStartDifficulty, cfg.MinDifficulty)
	}
	for name, d := range map[string]float64{"start": cfg.StartDifficulty, "minimum": cfg.MinDifficulty} {
		if _, err := pow.DifficultyToTarget(d); err != nil {
			return nil, fmt.Errorf("pool: config: %s difficulty: %w", name, err)
		}
	}
	cfg.StartDifficulty = max(cfg.StartDifficulty, cfg.MinDifficulty)
	if cfg.ShareInterval <= 0 {
		cfg.ShareInterval = DefaultShareInterval
	}
	if cfg.VersionMask == 0 {
		cfg.VersionMask = DefaultVersionMask
	}
	if cfg.JobRefresh <= 0 {
		cfg.JobRefresh = DefaultJobRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("pool: random job prefix: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "pool"),
		payout:   payout,
		soloFee:  soloFee,
		submit:   submit,
		shares:   shares,
		jobs:     NewJobBook(DefaultJobBookSize),
		jobBase:  hex.EncodeToString(seed[:4]),
		now:      time.Now,
		sessions: make(map[*session]struct{}),

		submitBackoff: submitBackoff,
	}
	s.rec = newBlockRecorder(blocks, s.log, s.publishBlock)
	// A random start spreads restarted nodes over the counter space, so
	// a restart does not hand yesterday's extranonce1 to a new miner.
	s.en1 = newExtranonceAllocator(cfg.NodeID, binary.LittleEndian.Uint32(seed[4:]))
	s.stats.init(s.now())
	return s, nil
}

// Run builds jobs from templates until ctx ends (it then returns nil) or
// the template channel is closed (an error: the pool can no longer make
// work). A template on a new previous block becomes a clean job sent at
// once; templates on the same block are coalesced to one job per
// Config.JobRefresh.
//
// Run also bounds the life of the block recorder: found blocks the ledger
// has not taken yet are retried until Run returns, which first gives them a
// few seconds' grace and then logs every block it could not record.
func (s *Server) Run(ctx context.Context, templates <-chan *node.Template) error {
	defer s.rec.shutdown()
	var (
		pending   *node.Template
		lastSent  time.Time
		refresh   = time.NewTimer(time.Hour)
		refreshOn bool
	)
	refresh.Stop()
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t, ok := <-templates:
			if !ok {
				return errors.New("pool: template channel closed")
			}
			if t == nil {
				continue
			}
			cur := s.jobs.Current()
			newBlock := cur == nil || cur.prevHash != [32]byte(t.PreviousBlockHash)
			if cur != nil && !newBlock && t.Height != cur.Height {
				s.log.Warn("template height changed without a new previous block; ignoring",
					"height", t.Height, "job_height", cur.Height)
				continue
			}
			since := s.now().Sub(lastSent)
			if !newBlock && since < s.cfg.JobRefresh {
				pending = t
				if !refreshOn {
					refresh.Reset(s.cfg.JobRefresh - since)
					refreshOn = true
				}
				continue
			}
			pending = nil
			if s.publish(t, newBlock) {
				lastSent = s.now()
			}
		case <-refresh.C:
			refreshOn = false
			if pending != nil {
				if s.publish(pending, false) {
					lastSent = s.now()
				}
				pending = nil
			}
		}
	}
}

// publish turns a template into the current job and broadcasts it.
func (s *Server) publish(t *node.Template, clean bool) bool {
	s.jobSeq++
	j, err := NewJob(t, JobParams{
		ID:              fmt.Sprintf("%s%x", s.jobBase, s.jobSeq),
		Seq:             s.jobSeq,
		Clean:           clean,
		Tag:             s.cfg.CoinbaseTag,
		Extranonce2Size: s.cfg.Extranonce2Size,
		Outputs:         PoolOutputs(t, s.payout),
		SoloOutputs:     s.soloOutputs(t),
		Created:         s.now(),
	})
	if err == nil {
		err = j.encodeLines()
	}
	if err != nil {
		// Miners keep the previous job: better stale-ish work than none.
		s.log.Error("cannot build job from template", "height", t.Height, "prev", t.PreviousBlockHash.String(), "err", err)
		return false
	}
	s.jobs.Add(j)
	s.log.Info("new job", "job", j.ID, "height", j.Height, "clean", clean, "txs", len(j.txData),
		"network_difficulty", j.netDiff)
	start := time.Now()
	s.broadcast(j)
	s.publishJob(j, len(s.fanout), time.Since(start))
	return true
}

// broadcast sends j to every session that can work. The notify line is
// encoded once per job; a session whose difficulty changes gets its own
// set_difficulty first. Sending never blocks: a session whose queue is full
// is closed by the stratum layer and the others carry on.
func (s *Server) broadcast(j *Job) {
	s.mu.Lock()
	s.fanout = s.fanout[:0]
	for ss := range s.sessions {
		s.fanout = append(s.fanout, ss)
	}
	s.mu.Unlock()

	now := s.now()
	for i, ss := range s.fanout {
		ss.mu.Lock()
		if ss.ready() {
			// Silent miners never trigger a share-driven retarget;
			// the broadcast cadence is their clock.
			if f := ss.vd.tick(now); f != 1 {
				s.retargetLocked(ss, f, j)
			}
			s.sendJobLocked(ss, j, j.Clean)
		}
		ss.mu.Unlock()
		s.fanout[i] = nil
	}
}

// CurrentJob returns the height of the block the current job builds.
func (s *Server) CurrentJob() (height int64, ok bool) {
	j := s.jobs.Current()
	if j == nil {
		return 0, false
	}
	return j.Height, true
}

// encodeLines prepares the job's mining.notify lines once, for every
// session: the broadcast form and the clean_jobs=false form used when the
// job is re-sent after a difficulty change.
func (j *Job) encodeLines() error {
	var err error
	if j.lineClean, err = stratum.EncodeNotification("mining.notify", j.Notify(true)); err != nil {
		return fmt.Errorf("pool: encode job %s: %w", j.ID, err)
	}
	if j.lineNoClean, err = stratum.EncodeNotification("mining.notify", j.Notify(false)); err != nil {
		return fmt.Errorf("pool: encode job %s: %w", j.ID, err)
	}
	return nil
}

// soloOutputs returns the SOLO coinbase builder for a template, or nil
// when the pool shares rewards. The finder gets the coinbase value less
// the fee Config.SoloSplit takes, then the witness commitment follows as
// in PoolOutputs.
func (s *Server) soloOutputs(t *node.Template) func([]byte) []TxOut {
	if !s.cfg.Solo {
		return nil
	}
	value, fee := t.CoinbaseValue, int64(0)
	if s.cfg.SoloSplit != nil {
		finder, f, err := s.cfg.SoloSplit(value)
		if err != nil || finder+f != value {
			// Only a value no valid template carries gets here; the
			// finder is not the one to pay for it.
			s.log.Error("SOLO fee not computable; paying the finder the whole coinbase", "value", value, "err", err)
		} else {
			fee = f
		}
	}
	return func(finder []byte) []TxOut {
		outs := []TxOut{{Value: value - fee, Script: finder}}
		if fee > 0 {
			outs = append(outs, TxOut{Value: fee, Script: s.soloFee})
		}
		if len(t.WitnessCommitment) > 0 {
			outs = append(outs, TxOut{Value: 0, Script: t.WitnessCommitment})
		}
		return outs
	}
}
