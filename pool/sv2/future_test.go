package sv2

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/record"
	"github.com/hashforge/hashforge/stratum2"
)

// TestFutureJobThenSetNewPrevHash: a channel holds the next height's job
// as a future job from the moment it opens, and a block on the tip (here
// the pool's own) reaches it as one SetNewPrevHash for that job, no job
// message first; a share on it is accepted with the new previous block.
func TestFutureJobThenSetNewPrevHash(t *testing.T) {
	for _, standard := range []bool{false, true} {
		name := "extended"
		if standard {
			name = "standard"
		}
		t.Run(name, func(t *testing.T) { testFutureJob(t, standard) })
	}
}

func testFutureJob(t *testing.T, standard bool) {
	sink := &keepShares{}
	srv, err := pool.NewServer(pool.Config{Network: &chaincfg.RegressionNetParams, PoolAddress: benchAddr,
		CoinbaseTag: "/test/", NodeID: 7, StartDifficulty: 1e-12, MinDifficulty: 1e-12,
		Logger: slog.New(slog.DiscardHandler)}, noBlocks{}, sink, noBlocks{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tmpl := &node.Template{Version: 0x20000000, PreviousBlockHash: chainhash.Hash{1, 2, 3}, CoinbaseValue: 50_0000_0000 + 1234,
		Bits: 0x207fffff, Height: 850, CurTime: time.Now().Unix()}
	templates := make(chan *node.Template, 1)
	templates <- tmpl
	go func() { _ = srv.Run(ctx, templates) }()
	for srv.Stats().JobHeight == 0 {
		time.Sleep(time.Millisecond)
	}
	auth, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "authority.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Pool: srv, Authority: auth, Logger: slog.New(slog.DiscardHandler)}
	served := make(chan struct{})
	go func() { defer close(served); _ = s.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	c, err := stratum2.Client(nc, stratum2.AuthorityPubKeyOf(auth))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(m stratum2.Message) {
		if err := c.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	next := func() stratum2.Message {
		m, _, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(&stratum2.SetupConnection{Protocol: stratum2.ProtocolMining, MinVersion: 2, MaxVersion: 2,
		Flags: stratum2.FlagRequiresStandardJobs * boolFlag(standard), EndpointHost: "pool", EndpointPort: 1, Vendor: "test"})
	if _, ok := next().(*stratum2.SetupConnectionSuccess); !ok {
		t.Fatal("no SetupConnection.Success")
	}
	var prefix []byte
	var channel uint32
	if standard {
		send(&stratum2.OpenStandardMiningChannel{RequestID: 1, UserIdentity: benchAddr + ".std", NominalHashRate: 1e9})
	} else {
		send(&stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: benchAddr + ".ext", NominalHashRate: 1e9,
			MinExtranonceSize: 8})
	}

	// Jobs by id, whether each came as a future job, and the order.
	type job struct {
		future   bool
		version  uint32
		root     [32]byte // standard
		pre, suf []byte   // extended
	}
	jobs := map[uint32]job{}
	var active, lastMsgJob uint32
	var sawPrev bool
	var heldFuture uint32
	for heldFuture == 0 {
		switch m := next().(type) {
		case *stratum2.OpenExtendedMiningChannelSuccess:
			prefix, channel = append([]byte(nil), m.ExtranoncePrefix...), m.ChannelID
		case *stratum2.OpenStandardMiningChannelSuccess:
			channel = m.ChannelID
		case *stratum2.NewExtendedMiningJob:
			jobs[m.JobID] = job{future: m.MinNTime == nil, version: m.Version,
				pre: append([]byte(nil), m.CoinbaseTxPrefix...), suf: append([]byte(nil), m.CoinbaseTxSuffix...)}
			lastMsgJob = m.JobID
			if sawPrev && m.MinNTime == nil {
				heldFuture = m.JobID
			}
		case *stratum2.NewMiningJob:
			jobs[m.JobID] = job{future: m.MinNTime == nil, version: m.Version, root: [32]byte(m.MerkleRoot)}
			lastMsgJob = m.JobID
			if sawPrev && m.MinNTime == nil {
				heldFuture = m.JobID
			}
		case *stratum2.SetNewPrevHash:
			if m.JobID != lastMsgJob {
				t.Fatalf("first SetNewPrevHash for job %d, not the job just sent (%d)", m.JobID, lastMsgJob)
			}
			active, sawPrev = m.JobID, true
		}
	}
	if heldFuture == active {
		t.Fatal("the future job is the active one")
	}

	// The pool's block on the tip: the held future job is activated.
	blockHash := chainhash.Hash{9, 9, 9}
	srv.ExternalBlock(pool.AnnouncedBlock{Height: 850, Hash: blockHash.String(), PrevHash: tmpl.PreviousBlockHash.String(),
		Time: tmpl.CurTime + 1, Ours: true})
	var snp *stratum2.SetNewPrevHash
	for snp == nil {
		switch m := next().(type) {
		case *stratum2.SetNewPrevHash:
			snp = m
		case *stratum2.NewExtendedMiningJob, *stratum2.NewMiningJob:
			t.Fatalf("a job message (%T) before the SetNewPrevHash: the future job was not used", m)
		}
	}
	if snp.JobID != heldFuture || [32]byte(snp.PrevHash) != [32]byte(blockHash) || snp.NBits != tmpl.Bits ||
		int64(snp.MinNTime) <= tmpl.CurTime {
		t.Fatalf("SetNewPrevHash %+v; want job %d on %s", snp, heldFuture, blockHash)
	}

	// A share on it, with the new previous block, is accepted.
	j := jobs[heldFuture]
	root := j.root
	en2 := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	if !standard {
		cb := append(append(append(append([]byte(nil), j.pre...), prefix...), en2...), j.suf...)
		root = pow.SHA256d(cb)
	}
	// A nonce whose header (on the new previous block) meets regtest's
	// target: the share is a block, so the pool's record names its hash.
	netTarget, err := pow.CompactToTarget(snp.NBits)
	if err != nil {
		t.Fatal(err)
	}
	var nonce uint32
	var hash [32]byte
	for ; ; nonce++ {
		var h [80]byte
		prev := [32]byte(snp.PrevHash)
		pow.PutHeader(&h, j.version, &prev, &root, snp.MinNTime, snp.NBits, nonce)
		if hash = pow.SHA256d(h[:]); pow.HashMeets(&hash, netTarget) {
			break
		}
	}
	if standard {
		send(&stratum2.SubmitSharesStandard{ChannelID: channel, SequenceNumber: 1, JobID: heldFuture, Nonce: nonce,
			NTime: snp.MinNTime, Version: j.version})
	} else {
		send(&stratum2.SubmitSharesExtended{ChannelID: channel, SequenceNumber: 1, JobID: heldFuture, Nonce: nonce,
			NTime: snp.MinNTime, Version: j.version, Extranonce: en2})
	}
	for {
		switch m := next().(type) {
		case *stratum2.SubmitSharesSuccess:
			got := sink.all()
			if len(got) != 1 || got[0].Height != 851 || !got[0].IsBlock || got[0].BlockHash != pow.HashString(&hash) {
				t.Fatalf("shares kept %+v; want one block at 851, hash %s", got, pow.HashString(&hash))
			}
			return
		case *stratum2.SubmitSharesError:
			t.Fatalf("share on the activated future job refused: %s", m.ErrorCode)
		}
	}
}

// keepShares is a ShareSink that keeps every share.
type keepShares struct {
	mu     sync.Mutex
	shares []record.Share
}

func (k *keepShares) AddShare(s record.Share, done func(error)) {
	k.mu.Lock()
	k.shares = append(k.shares, s)
	k.mu.Unlock()
	done(nil)
}

func (k *keepShares) all() []record.Share {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]record.Share(nil), k.shares...)
}

func boolFlag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
