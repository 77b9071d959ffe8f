package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

// v2Miner is a Stratum V2 miner written against the specification with
// the stratum2 package, independent of the pool's code: it builds the
// header from the jobs and checks the hash itself.
type v2Miner struct {
	t *testing.T
	c *stratum2.Conn
}

func dialV2(ctx context.Context, t *testing.T, url string) *v2Miner {
	t.Helper()
	u, err := stratum2.ParseURL(url)
	if err != nil {
		t.Fatalf("stratum2 URL %q: %v", url, err)
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	c, err := stratum2.Client(nc, u.Authority)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	m := &v2Miner{t: t, c: c}
	m.send(&stratum2.SetupConnection{Protocol: stratum2.ProtocolMining, MinVersion: 2, MaxVersion: 2,
		Flags: stratum2.FlagRequiresVersionRolling, EndpointHost: "pool", EndpointPort: 3336, Vendor: "hashforge-test"})
	if _, ok := m.next().(*stratum2.SetupConnectionSuccess); !ok {
		t.Fatal("no SetupConnection.Success")
	}
	return m
}

func (m *v2Miner) send(msg stratum2.Message) {
	m.t.Helper()
	if err := m.c.WriteMessage(msg); err != nil {
		m.t.Fatalf("write %T: %v", msg, err)
	}
}

func (m *v2Miner) next() stratum2.Message {
	m.t.Helper()
	msg, _, err := m.c.ReadMessage()
	if err != nil {
		m.t.Fatalf("read: %v", err)
	}
	return msg
}

// v2Work is what the miner knows of its channel's current job.
type v2Work struct {
	channel    uint32
	target     pow.Target
	prefix     []byte // extranonce prefix
	en2Size    int
	job        *stratum2.NewExtendedMiningJob
	std        *stratum2.NewMiningJob
	prev       [32]byte
	ntime      uint32
	nbits      uint32
	activeJob  uint32
	hasPrevJob bool
	newPrev    bool   // a SetNewPrevHash came since the flag was cleared
	prevJob    uint32 // the job the last SetNewPrevHash started
	// Jobs by id: a SetNewPrevHash may start a future job sent long
	// before (the next height's, sent ahead), not the last one.
	jobs map[uint32]*stratum2.NewExtendedMiningJob
	stds map[uint32]*stratum2.NewMiningJob
}

// apply takes a message for the channel into w and reports whether it
// started a new active job. Decoded slices alias the connection's read
// buffer: what is kept is copied.
func (w *v2Work) apply(msg stratum2.Message) bool {
	switch msg := msg.(type) {
	case *stratum2.SetTarget:
		if msg.ChannelID == w.channel {
			w.target = pow.TargetFromHash((*[32]byte)(&msg.MaximumTarget))
		}
	case *stratum2.NewExtendedMiningJob:
		if msg.ChannelID != w.channel {
			return false
		}
		msg.CoinbaseTxPrefix = bytes.Clone(msg.CoinbaseTxPrefix)
		msg.CoinbaseTxSuffix = bytes.Clone(msg.CoinbaseTxSuffix)
		msg.MerklePath = slices.Clone(msg.MerklePath)
		if w.jobs == nil {
			w.jobs = map[uint32]*stratum2.NewExtendedMiningJob{}
		}
		w.jobs[msg.JobID] = msg
		if msg.MinNTime != nil && w.hasPrevJob {
			w.job = msg
			w.activeJob, w.ntime = msg.JobID, *msg.MinNTime
			return true
		}
	case *stratum2.NewMiningJob:
		if msg.ChannelID != w.channel {
			return false
		}
		if w.stds == nil {
			w.stds = map[uint32]*stratum2.NewMiningJob{}
		}
		w.stds[msg.JobID] = msg
		if msg.MinNTime != nil && w.hasPrevJob {
			w.std = msg
			w.activeJob, w.ntime = msg.JobID, *msg.MinNTime
			return true
		}
	case *stratum2.SetNewPrevHash:
		if msg.ChannelID != w.channel {
			return false
		}
		w.prev, w.ntime, w.nbits, w.activeJob, w.hasPrevJob = [32]byte(msg.PrevHash), msg.MinNTime, msg.NBits, msg.JobID, true
		w.newPrev, w.prevJob = true, msg.JobID
		if j, ok := w.jobs[msg.JobID]; ok {
			w.job = j
		} else if j, ok := w.stds[msg.JobID]; ok {
			w.std = j
		}
		return true
	}
	return false
}

// work reads until the channel has an active job.
func (m *v2Miner) work(w *v2Work) {
	m.t.Helper()
	for !w.apply(m.next()) {
	}
}

// solve grinds a nonce whose header hash meets the channel's target, for
// the extended job with extranonce en2, or the standard job.
func (w *v2Work) solve(t *testing.T, en2 []byte) (nonce uint32, hash [32]byte) {
	t.Helper()
	var root [32]byte
	var version uint32
	if w.job != nil {
		cb := append(append(append([]byte(nil), w.job.CoinbaseTxPrefix...), w.prefix...), en2...)
		cb = append(cb, w.job.CoinbaseTxSuffix...)
		var branch [][32]byte
		for _, h := range w.job.MerklePath {
			branch = append(branch, [32]byte(h))
		}
		root, version = pow.FoldMerkleBranch(pow.SHA256d(cb), branch), w.job.Version
	} else {
		root, version = [32]byte(w.std.MerkleRoot), w.std.Version
	}
	var h [80]byte
	binary.LittleEndian.PutUint32(h[0:], version)
	copy(h[4:], w.prev[:])
	copy(h[36:], root[:])
	binary.LittleEndian.PutUint32(h[68:], w.ntime)
	binary.LittleEndian.PutUint32(h[72:], w.nbits)
	for nonce = 0; nonce < 1<<24; nonce++ {
		binary.LittleEndian.PutUint32(h[76:], nonce)
		hash = pow.SHA256d(h[:])
		if pow.HashMeets(&hash, w.target) {
			return nonce, hash
		}
	}
	t.Fatal("no nonce found")
	return 0, hash
}

// v2Stack is the real serve as pool node nodeID with its Stratum V2 port,
// on btcd regtest and PostgreSQL, at a difficulty where every share is a
// block.
func v2Stack(ctx context.Context, t *testing.T, tag string, nodeID uint) (*devstack.Btcd, string, *node.Client, listeners) {
	t.Helper()
	btcd, dbURL, rpc := regtestStack(t)
	cfg := regtestServe(t, btcd, dbURL, tag)
	cfg.StartDifficulty, cfg.MinDifficulty, cfg.NodeID = 0.0001, 0.0001, nodeID
	cfg.SV2Addr, cfg.SV2Authority = "127.0.0.1:0", filepath.Join(t.TempDir(), "authority.key")
	l := startServe(ctx, t, cfg)
	if !strings.HasPrefix(l.StratumV2, "stratum2+tcp://") {
		t.Fatalf("stratum2 URL %q", l.StratumV2)
	}
	return btcd, dbURL, rpc, l
}

// TestStratumV2EndToEnd: the real serve with its V2 port on btcd regtest
// and PostgreSQL. A V2 miner checks the pool's certificate against the
// authority key in the URL (a wrong key is refused), opens an extended
// and a standard channel, mines a block on each that btcd accepts, gets
// each share acknowledged, and the shares are rows; a stale job and a
// bad share get the specification's error codes. A V1 miner mines beside
// it in the same pool.
func TestStratumV2EndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	btcd, dbURL, rpc, l := v2Stack(ctx, t, "hashforge-sv2", 3)

	// A URL with another authority key: the handshake is refused.
	{
		u, _ := stratum2.ParseURL(l.StratumV2)
		other, _ := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "other.key"))
		nc, err := net.Dial("tcp", u.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := stratum2.Client(nc, stratum2.AuthorityPubKeyOf(other)); err == nil {
			t.Fatal("a certificate signed by another authority was accepted")
		}
		nc.Close()
	}

	m := dialV2(ctx, t, l.StratumV2)
	user := btcd.MiningAddr + ".v2rig"
	m.send(&stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: user, MinExtranonceSize: 4})
	succ, ok := m.next().(*stratum2.OpenExtendedMiningChannelSuccess)
	if ok {
		succ.ExtranoncePrefix = bytes.Clone(succ.ExtranoncePrefix)
	}
	if !ok || succ.RequestID != 1 || len(succ.ExtranoncePrefix) != 4 || succ.ExtranoncePrefix[0] != 3 || succ.ExtranonceSize != 8 {
		t.Fatalf("open extended: %+v", succ)
	}
	w := &v2Work{channel: succ.ChannelID, target: pow.TargetFromHash((*[32]byte)(&succ.Target)), prefix: succ.ExtranoncePrefix,
		en2Size: int(succ.ExtranonceSize)}
	m.work(w)
	// With its first job the channel gets the next height's as a future
	// job, held for the block that will start it.
	heldFuture := map[uint32]bool{}
	for len(heldFuture) == 0 {
		msg := m.next()
		w.apply(msg)
		if j, ok := msg.(*stratum2.NewExtendedMiningJob); ok && j.ChannelID == w.channel && j.MinNTime == nil {
			heldFuture[j.JobID] = true
		}
	}
	tipBefore, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	en2 := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	nonce, hash := w.solve(t, en2)
	m.send(&stratum2.SubmitSharesExtended{ChannelID: w.channel, SequenceNumber: 7, JobID: w.activeJob, Nonce: nonce,
		NTime: w.ntime, Version: w.job.Version, Extranonce: en2})
	oldJob, oldNTime := w.activeJob, w.ntime
	var acked bool
	w.newPrev = false
	for !acked {
		msg := m.next()
		w.apply(msg)
		switch msg := msg.(type) {
		case *stratum2.SubmitSharesSuccess:
			if msg.ChannelID != w.channel || msg.LastSequenceNumber != 7 || msg.NewSubmitsAcceptedCount != 1 {
				t.Fatalf("success %+v", msg)
			}
			acked = true
		case *stratum2.SubmitSharesError:
			t.Fatalf("share refused: %+v", msg)
		}
	}
	best, err := rpc.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if best == tipBefore || best != displayHash(hash) {
		var hdr map[string]any
		_ = rpc.Call(ctx, "getblockheader", []any{best, true}, &hdr)

		t.Fatalf("node's best block %s %v; want the V2 share's block %s (version %08x prev %x ntime %d nbits %08x nonce %d)",
			best, hdr, displayHash(hash), w.job.Version, w.prev, w.ntime, w.nbits, nonce)
	}
	// The new block reaches the channel as a new previous block; the
	// old job is then stale, and a share at the wrong job id is refused.
	for !w.newPrev {
		w.apply(m.next())
	}
	// It starts the future job the channel held: whether the pool's empty
	// job on its own block or the node's template on it came first.
	if !heldFuture[w.prevJob] {
		t.Fatalf("the block started job %d; want the future job held before it (%v)", w.prevJob, heldFuture)
	}
	m.send(&stratum2.SubmitSharesExtended{ChannelID: w.channel, SequenceNumber: 8, JobID: oldJob, Nonce: nonce,
		NTime: oldNTime, Version: w.job.Version, Extranonce: []byte{9, 9, 9, 9, 9, 9, 9, 9}})
	m.send(&stratum2.SubmitSharesExtended{ChannelID: w.channel, SequenceNumber: 9, JobID: 999999, Nonce: nonce,
		NTime: w.ntime, Version: w.job.Version, Extranonce: en2})
	m.send(&stratum2.SubmitSharesExtended{ChannelID: 4242, SequenceNumber: 10, JobID: w.activeJob})
	want := map[uint32]string{8: stratum2.ErrCodeStaleShare, 9: stratum2.ErrCodeInvalidJobID, 10: stratum2.ErrCodeInvalidChannelID}
	for len(want) > 0 {
		if e, ok := m.next().(*stratum2.SubmitSharesError); ok {
			if want[e.SequenceNumber] != e.ErrorCode {
				t.Fatalf("error %+v; want %q", e, want[e.SequenceNumber])
			}
			delete(want, e.SequenceNumber)
		}
	}

	// A standard channel (header-only mining) on the same connection.
	m.send(&stratum2.OpenStandardMiningChannel{RequestID: 2, UserIdentity: btcd.MiningAddr + ".v2std"})
	var ssucc *stratum2.OpenStandardMiningChannelSuccess
	for ssucc == nil {
		if s, ok := m.next().(*stratum2.OpenStandardMiningChannelSuccess); ok {
			ssucc = s
		}
	}
	if ssucc.GroupChannelID == 0 || ssucc.GroupChannelID == ssucc.ChannelID || ssucc.GroupChannelID == w.channel {
		t.Fatalf("standard channel %d in group %d", ssucc.ChannelID, ssucc.GroupChannelID)
	}
	sw := &v2Work{channel: ssucc.ChannelID, target: pow.TargetFromHash((*[32]byte)(&ssucc.Target))}
	for sw.std == nil || !sw.hasPrevJob {
		sw.apply(m.next())
	}
	snonce, shash := sw.solve(t, nil)
	m.send(&stratum2.SubmitSharesStandard{ChannelID: sw.channel, SequenceNumber: 1, JobID: sw.activeJob, Nonce: snonce,
		NTime: sw.ntime, Version: sw.std.Version})
	for acked = false; !acked; {
		switch msg := m.next().(type) {
		case *stratum2.SubmitSharesSuccess:
			acked = msg.ChannelID == sw.channel && msg.LastSequenceNumber == 1
		case *stratum2.SubmitSharesError:
			if msg.ChannelID == sw.channel {
				t.Fatalf("standard share refused: %+v", msg)
			}
		}
	}
	if best, _ := rpc.GetBestBlockHash(ctx); best != displayHash(shash) {
		t.Fatalf("node's best block %s; want the standard channel's block %s", best, displayHash(shash))
	}

	// A V1 miner beside them, in the same pool.
	c1, err := stratum.Dial(ctx, l.Stratum.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := c1.Call(ctx, "mining.subscribe", []any{}); err != nil {
		t.Fatal(err)
	}
	if res, err := c1.Call(ctx, "mining.authorize", []any{btcd.MiningAddr + ".v1rig", ""}); err != nil || string(res) != "true" {
		t.Fatalf("V1 authorize: %s %v", res, err)
	}

	// The API and metrics tell the protocols apart.
	var stats struct {
		Protocols map[string]struct {
			Sessions int    `json:"sessions"`
			Accepted uint64 `json:"shares_accepted"`
		} `json:"protocols"`
	}
	getJSON(t, "http://"+l.HTTP.String()+"/api/v1/stats", &stats)
	if v2, v1 := stats.Protocols["stratum2"], stats.Protocols["stratum1"]; v2.Sessions != 2 || v2.Accepted != 2 || v1.Sessions != 1 {
		t.Errorf("protocols %+v; want 2 stratum2 channels with 2 shares, 1 stratum1 session", stats.Protocols)
	}
	var miner struct {
		Workers []struct {
			Name     string `json:"name"`
			Protocol string `json:"protocol"`
		} `json:"workers"`
	}
	getJSON(t, "http://"+l.HTTP.String()+"/api/v1/miners/"+btcd.MiningAddr, &miner)
	protos := map[string]string{}
	for _, w := range miner.Workers {
		protos[w.Name] = w.Protocol
	}
	if protos["v2rig"] != "stratum2" || protos["v2std"] != "stratum2" || protos["v1rig"] != "stratum1" {
		t.Errorf("workers' protocols %v", protos)
	}

	// Both V2 shares are rows, with their workers and this node's id.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM shares s JOIN workers w ON w.id = s.worker_id
			WHERE w.name IN ('v2rig', 'v2std') AND s.is_block AND s.node_id = 3`).Scan(&n)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d V2 block shares in the ledger, want 2", n)
		}
	}
	// The blocks' rows say which node found them.
	var blocks int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM blocks WHERE hash = ANY($1) AND node_id = 3 AND accepted`,
		[]string{displayHash(hash), displayHash(shash)}).Scan(&blocks); err != nil || blocks != 2 {
		t.Fatalf("%d of the 2 V2 blocks recorded as node 3's (%v)", blocks, err)
	}
}
