package pool

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/pow"
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
	// BlockJournal, when set, keeps every found block on local disk
	// before it is submitted and again with its verdict before the miner
	// hears back (see BlockJournal). Nil: blocks live in memory until the
	// ledger took them.
	BlockJournal BlockJournal
	// Bans, when set, hears of every share, line and authorization by
	// client address and bans those that send mostly garbage; its OnBan
	// closes their connections (the stratum Gate does it). Nil: no bans.
	Bans *ban.Table
	// ResumeKey authenticates the session ids miners resume with. Every
	// node of a pool shares it (serve keeps it in the database), so a
	// restarted node takes back the ids it handed out before. Empty: a
	// random key per process.
	ResumeKey []byte
}

// BlockSubmitter submits a solved block to the node. verdict is "" when the
// node accepted the block, its reject reason otherwise.
type BlockSubmitter interface {
	SubmitBlock(ctx context.Context, blockHex string) (verdict string, err error)
}

// Server is the pool core: it builds jobs from templates (Run, jobs.go),
// speaks Stratum to miners (it implements stratum.Handler, session.go),
// checks shares, submits blocks (block.go), records them (blockrecorder.go)
// and hands accepted shares to the ledger; it keeps the counters (stats.go)
// and publishes events (events.go).
type Server struct {
	cfg     Config
	log     *slog.Logger
	payout  []byte // output script paying cfg.PoolAddress
	soloFee []byte // output script paying cfg.SoloFeeAddress
	submit  BlockSubmitter
	shares  ShareSink
	jobs    jobManager
	now     func() time.Time

	// Lock order, outermost first: a goroutine holding one of these takes
	// only locks further down the list.
	//
	//  1. session.mu: one session's state, held across its share check
	//     and the sends to it. Never two sessions' at once: broadcast and
	//     Online copy the session set under Server.mu, release it, then
	//     lock each session in turn.
	//  2. Server.mu: the session set and the extranonce1 allocator. Taken
	//     alone, or under session.mu (subscribe, reassignExtranonce).
	//  3. Leaves, held for a few loads and stores and never while taking
	//     another lock: JobBook.mu, Job.soloMu and the duplicate shards'
	//     dupShard.mu (share checks and job sends, under session.mu);
	//     stats.mu; blockRecorder.mu; eventBus.mu.
	//
	// No lock is held while the pool waits on anything outside it: a block
	// is submitted after session.mu is released, the recorder calls the
	// ledger with its mutex free, events go out through an atomic snapshot
	// of the subscribers without waiting, and the stratum layer's sends
	// under session.mu only queue the line.
	mu       sync.Mutex
	sessions map[*session]struct{}
	en1      extranonceAllocator
	// resumeKey authenticates the session ids miners resume with.
	resumeKey [32]byte
	events    eventBus

	stats  stats
	protos protoStats

	// submitBackoff is the submitblock retry schedule; the package
	// default, shortened by tests.
	submitBackoff []time.Duration
	rec           *blockRecorder
	// external carries blocks other pool nodes announced to Run.
	external chan AnnouncedBlock
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
		jobs:     jobManager{JobBook: NewJobBook(DefaultJobBookSize), base: hex.EncodeToString(seed[:4])},
		now:      time.Now,
		sessions: make(map[*session]struct{}),
		external: make(chan AnnouncedBlock, 8),

		submitBackoff: submitBackoff,
	}
	if len(cfg.ResumeKey) > 0 {
		s.resumeKey = sha256.Sum256(cfg.ResumeKey)
	} else if _, err := rand.Read(s.resumeKey[:]); err != nil {
		return nil, fmt.Errorf("pool: random session key: %w", err)
	}
	s.rec = newBlockRecorder(blocks, s.log, s.publishBlock)
	s.rec.journaled = cfg.BlockJournal != nil
	// A random start spreads restarted nodes over the counter space, so
	// a restart does not hand yesterday's extranonce1 to a new miner.
	s.en1 = newExtranonceAllocator(cfg.NodeID, binary.LittleEndian.Uint32(seed[4:]), s.now())
	s.stats.init(s.now())
	return s, nil
}
