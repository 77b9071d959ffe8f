package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/stratum2"
)

// The V2 pool in these tests is scripted with the stratum2 package's
// server side (the real handshake and transport) and checks every share
// with its own code (crypto/sha256, big.Int), as the V1 test pool does.

type v2TestPool struct {
	t   *testing.T
	ln  net.Listener
	key *stratum2.StaticKey
	url string // with the key that signed the pool's certificate
}

func startV2Pool(t *testing.T) *v2TestPool {
	t.Helper()
	auth, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "authority.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := stratum2.NewSignedStaticKey(auth, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := stratum2.URL{Addr: ln.Addr().String(), Authority: stratum2.AuthorityPubKeyOf(auth)}
	return &v2TestPool{t: t, ln: ln, key: key, url: u.String()}
}

// accept takes the next connection through the handshake.
func (p *v2TestPool) accept() *stratum2.Conn {
	p.t.Helper()
	nc, err := p.ln.Accept()
	if err != nil {
		p.t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(testWait))
	c, err := stratum2.Server(nc, p.key)
	if err != nil {
		p.t.Fatalf("handshake: %v", err)
	}
	p.t.Cleanup(func() { c.Close() })
	return c
}

func v2Read[T stratum2.Message](t *testing.T, c *stratum2.Conn) T {
	t.Helper()
	msg, _, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("pool read: %v", err)
	}
	m, ok := msg.(T)
	if !ok {
		t.Fatalf("pool got %T, want %T", msg, m)
	}
	return m
}

func v2Send(t *testing.T, c *stratum2.Conn, m stratum2.Message) {
	t.Helper()
	if err := c.WriteMessage(m); err != nil {
		t.Fatalf("pool write %T: %v", m, err)
	}
}

func targetU256(n *big.Int) stratum2.U256 {
	var u stratum2.U256
	b := n.FillBytes(make([]byte, 32))
	for i := range b {
		u[i] = b[31-i] // little-endian on the wire
	}
	return u
}

// v2RefHeader builds the header of a share on an extended job the way
// the spec describes it, without the miner's code.
func v2RefHeader(j *stratum2.NewExtendedMiningJob, prefix []byte, prev [32]byte, nbits uint32, sub *stratum2.SubmitSharesExtended) []byte {
	cb := append(append(append(append([]byte{}, j.CoinbaseTxPrefix...), prefix...), sub.Extranonce...), j.CoinbaseTxSuffix...)
	root := sha256dRef(cb)
	for _, b := range j.MerklePath {
		root = sha256dRef(append(append([]byte{}, root...), b[:]...))
	}
	var h bytes.Buffer
	_ = binary.Write(&h, binary.LittleEndian, sub.Version)
	h.Write(prev[:])
	h.Write(root)
	_ = binary.Write(&h, binary.LittleEndian, sub.NTime)
	_ = binary.Write(&h, binary.LittleEndian, nbits)
	_ = binary.Write(&h, binary.LittleEndian, sub.Nonce)
	return h.Bytes()
}

func refHashMeets(header []byte, target *big.Int) bool {
	hash := sha256dRef(header)
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		hash[i], hash[j] = hash[j], hash[i]
	}
	return new(big.Int).SetBytes(hash).Cmp(target) <= 0
}

// serveOpen answers SetupConnection and OpenExtendedMiningChannel as a pool
// does, with the given prefix, rolled extranonce size and target.
func serveOpen(t *testing.T, c *stratum2.Conn, channel uint32, prefix []byte, size uint16, target *big.Int) {
	t.Helper()
	sc := v2Read[*stratum2.SetupConnection](t, c)
	if sc.Protocol != stratum2.ProtocolMining || sc.MinVersion != 2 || sc.MaxVersion != 2 || sc.Flags&stratum2.FlagRequiresWorkSelection != 0 {
		t.Fatalf("SetupConnection %+v", sc)
	}
	v2Send(t, c, &stratum2.SetupConnectionSuccess{UsedVersion: 2})
	open := v2Read[*stratum2.OpenExtendedMiningChannel](t, c)
	if open.UserIdentity != "bcrt1qtest.w1" {
		t.Fatalf("OpenExtendedMiningChannel %+v", open)
	}
	v2Send(t, c, &stratum2.OpenExtendedMiningChannelSuccess{RequestID: open.RequestID, ChannelID: channel,
		Target: targetU256(target), ExtranonceSize: size, ExtranoncePrefix: prefix})
}

// The header the miner builds from a V2 job and its previous block equals
// the one the spec gives.
func TestV2JobHeader(t *testing.T) {
	j := &stratum2.NewExtendedMiningJob{JobID: 42, Version: 0x20000000, VersionRollingAllowed: true,
		MerklePath:       []stratum2.U256{{1, 2, 3}, {4, 5, 6}},
		CoinbaseTxPrefix: mustDecode(testCoinb1), CoinbaseTxSuffix: mustDecode(testCoinb2)}
	prev := [32]byte{0xde, 0xad, 0xbe, 0xef, 31: 0x77}
	job := v2Job(j)
	if job.ID != "42" || job.Version != j.Version || job.Root != nil {
		t.Fatalf("job %+v", job)
	}
	job.PrevHash, job.NBits, job.NTime = prev, 0x207fffff, 0x66554433
	prefix, en2 := []byte{0xaa, 0xbb, 0xcc, 0xdd}, []byte{1, 2, 3, 4, 5, 6, 7, 8}
	got := job.Header(prefix, en2, 0x20002000, job.NTime, 0x01020304)
	want := v2RefHeader(j, prefix, prev, 0x207fffff, &stratum2.SubmitSharesExtended{Extranonce: en2,
		Version: 0x20002000, NTime: 0x66554433, Nonce: 0x01020304})
	if !bytes.Equal(got[:], want) {
		t.Fatalf("header\n got %x\nwant %x", got, want)
	}
}

// The miner against a V2 pool: it sets the connection up, opens an
// extended channel as its user, takes the target from SetTarget, mines
// the future job SetNewPrevHash activates and then an active job, and
// every share it sends is valid by the pool's own reckoning. Each verdict
// is counted: when the pool reads a share, the miner has counted the
// verdict on the one before (it sends one at a time).
func TestV2SessionMines(t *testing.T) {
	p := startV2Pool(t)
	m, stop := testMinerCfg(t, Config{URLs: []string{p.url}})
	c := p.accept()

	prefix := []byte{0xaa, 0xbb, 0xcc, 0xdd}
	const channel = 7
	target := refTarget(testDiff)
	serveOpen(t, c, channel, prefix, 1, refTarget(testDiff/16))
	// Harder than the channel's first target: every share must meet it.
	v2Send(t, c, &stratum2.SetTarget{ChannelID: channel, MaximumTarget: targetU256(target)})

	jobs := map[uint32]*stratum2.NewExtendedMiningJob{}
	ntimes := map[uint32]uint32{}
	job := func(id uint32, minNTime *uint32, coinb1 string) {
		j := &stratum2.NewExtendedMiningJob{ChannelID: channel, JobID: id, MinNTime: minNTime, Version: 0x20000000,
			VersionRollingAllowed: true, MerklePath: []stratum2.U256{{9, 8, 7}, {6, 5, 4}},
			CoinbaseTxPrefix: mustDecode(coinb1), CoinbaseTxSuffix: mustDecode(testCoinb2)}
		jobs[id] = j
		v2Send(t, c, j)
	}
	// Another channel's job must not reach the devices.
	v2Send(t, c, &stratum2.NewExtendedMiningJob{ChannelID: 99, JobID: 5, MinNTime: new(uint32), CoinbaseTxPrefix: []byte{1}})
	prev := [32]byte{0x11, 0x22, 31: 0x33}
	const nbits = 0x1d00ffff // no share is a block
	job(5, nil, testCoinb1)
	ntimes[5] = 0x66000000
	v2Send(t, c, &stratum2.SetNewPrevHash{ChannelID: channel, JobID: 5, PrevHash: stratum2.U256(prev), MinNTime: ntimes[5], NBits: nbits})

	var accepted, seenActive uint64
	var lastSeq uint32
	for n := 0; seenActive < 2; n++ {
		sub := v2Read[*stratum2.SubmitSharesExtended](t, c)
		j := jobs[sub.JobID]
		if sub.ChannelID != channel || j == nil || len(sub.Extranonce) != 1 || sub.NTime != ntimes[sub.JobID] ||
			(sub.Version^j.Version)&^v2VersionMask != 0 {
			t.Fatalf("share %+v", sub)
		}
		if n > 0 && sub.SequenceNumber == lastSeq {
			t.Fatalf("sequence number %d reused", sub.SequenceNumber)
		}
		lastSeq = sub.SequenceNumber
		if !refHashMeets(v2RefHeader(j, prefix, prev, nbits, sub), target) {
			t.Fatalf("share %+v does not meet the target", sub)
		}
		st := m.Stats()
		if st.Accepted != accepted || st.Rejected != min(uint64(n), 2)/2 || st.Stale != min(uint64(n), 1) {
			t.Fatalf("after %d verdicts: stats %+v, want %d accepted", n, st, accepted)
		}
		switch n {
		case 0:
			v2Send(t, c, &stratum2.SubmitSharesError{ChannelID: channel, SequenceNumber: sub.SequenceNumber, ErrorCode: stratum2.ErrCodeStaleShare})
		case 1:
			v2Send(t, c, &stratum2.SubmitSharesError{ChannelID: channel, SequenceNumber: sub.SequenceNumber, ErrorCode: "invalid-share"})
		default:
			v2Send(t, c, &stratum2.SubmitSharesSuccess{ChannelID: channel, LastSequenceNumber: sub.SequenceNumber, NewSubmitsAcceptedCount: 1})
			accepted++
		}
		if n == 2 {
			// An active job on the same block: shares move to it.
			ntimes[6] = 0x66000010
			nt := ntimes[6]
			job(6, &nt, strings.Replace(testCoinb1, "0c00000000", "0c00000001", 1))
		}
		if sub.JobID == 6 {
			seenActive++
		}
	}
	stop()
}

// With V2Standard the miner opens a standard channel and mines
// header-only jobs: the pool's merkle root, no extranonce, shares as
// SubmitSharesStandard, valid by the pool's own reckoning; its group
// channel's jobs are its own too.
func TestV2StandardChannelMines(t *testing.T) {
	p := startV2Pool(t)
	// No extranonce and no version rolling: the nonce is the whole search
	// space (the other tests shrink it to reach their rolling soon).
	m, stop := testMinerCfg(t, Config{URLs: []string{p.url}, V2Standard: true, nonceBits: 32})
	defer stop()
	c := p.accept()
	v2Read[*stratum2.SetupConnection](t, c)
	v2Send(t, c, &stratum2.SetupConnectionSuccess{UsedVersion: 2})
	open := v2Read[*stratum2.OpenStandardMiningChannel](t, c)
	if open.UserIdentity != "bcrt1qtest.w1" {
		t.Fatalf("OpenStandardMiningChannel %+v", open)
	}
	const channel, group = 3, 2
	target := refTarget(testDiff)
	v2Send(t, c, &stratum2.OpenStandardMiningChannelSuccess{RequestID: open.RequestID, ChannelID: channel,
		Target: targetU256(target), ExtranoncePrefix: []byte{1, 2, 3, 4, 0, 0, 0, 0}, GroupChannelID: group})

	roots := map[uint32][32]byte{7: {0xab, 0xcd, 31: 0x01}, 8: {0x12, 0x34, 31: 0x02}}
	ntimes := map[uint32]uint32{7: 0x66000000, 8: 0x66000020}
	prev := [32]byte{0x44, 0x55, 31: 0x66}
	const nbits = 0x1d00ffff
	v2Send(t, c, &stratum2.NewMiningJob{ChannelID: channel, JobID: 7, Version: 0x20000000, MerkleRoot: stratum2.U256(roots[7])})
	v2Send(t, c, &stratum2.SetNewPrevHash{ChannelID: channel, JobID: 7, PrevHash: stratum2.U256(prev), MinNTime: ntimes[7], NBits: nbits})
	seen := map[uint32]bool{}
	for !seen[8] {
		sub := v2Read[*stratum2.SubmitSharesStandard](t, c)
		root, ok := roots[sub.JobID]
		if sub.ChannelID != channel || !ok || sub.NTime != ntimes[sub.JobID] || sub.Version != 0x20000000 {
			t.Fatalf("share %+v", sub)
		}
		var h bytes.Buffer
		_ = binary.Write(&h, binary.LittleEndian, sub.Version)
		h.Write(prev[:])
		h.Write(root[:])
		_ = binary.Write(&h, binary.LittleEndian, []uint32{sub.NTime, nbits, sub.Nonce})
		if !refHashMeets(h.Bytes(), target) {
			t.Fatalf("share %+v does not meet the target", sub)
		}
		v2Send(t, c, &stratum2.SubmitSharesSuccess{ChannelID: channel, LastSequenceNumber: sub.SequenceNumber, NewSubmitsAcceptedCount: 1})
		if !seen[7] {
			// The group channel's active job on the same block.
			nt := ntimes[8]
			v2Send(t, c, &stratum2.NewMiningJob{ChannelID: group, JobID: 8, MinNTime: &nt, Version: 0x20000000,
				MerkleRoot: stratum2.U256(roots[8])})
		}
		seen[sub.JobID] = true
	}
	for deadline := time.Now().Add(testWait); m.Stats().Accepted < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", m.Stats())
		}
	}
}

// A URL whose key did not sign the pool's certificate is refused with an
// error that says so and names the URL.
func TestV2WrongAuthority(t *testing.T) {
	p := startV2Pool(t)
	other, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := stratum2.ParseURL(p.url)
	u.Authority = stratum2.AuthorityPubKeyOf(other)
	wrong := u.String()
	m, err := New(Config{URLs: []string{wrong}, User: "bcrt1qtest.w1", Devices: []Device{idleDevice{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		nc, err := p.ln.Accept()
		if err == nil {
			_ = nc.SetDeadline(time.Now().Add(testWait))
			if c, err := stratum2.Server(nc, p.key); err == nil {
				_, _, _ = c.ReadMessage() // until the miner hangs up
			}
			nc.Close()
		}
	}()
	res := newSession(m, m.pools[0], wrong).run(context.Background())
	if res.authorized || res.err == nil || !strings.Contains(res.err.Error(), "certificate is not signed by the authority key in the URL") ||
		!strings.Contains(res.err.Error(), wrong) {
		t.Fatalf("session with a wrong key: %+v", res)
	}
}

// A V2 Reconnect keeps the authority key: the pool can move the miner
// only to servers its key signed.
func TestV2Reconnect(t *testing.T) {
	key := "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
	u, err := stratum2.ParseURL("stratum2+tcp://pool.example:34254/" + key)
	if err != nil {
		t.Fatal(err)
	}
	v := &v2conn{url: u}
	for _, c := range []struct {
		host string
		port uint16
		want string
	}{
		{"", 0, "stratum2+tcp://pool.example:34254/" + key},
		{"other.example", 0, "stratum2+tcp://other.example:34254/" + key},
		{"", 4000, "stratum2+tcp://pool.example:4000/" + key},
		{"h/st", 1, ""},
		{"h\x00st", 1, ""},
	} {
		rr, err := v.reconnectTo(&stratum2.Reconnect{NewHost: c.host, NewPort: c.port})
		switch {
		case c.want == "" && err == nil:
			t.Errorf("Reconnect to %q accepted: %+v", c.host, rr)
		case c.want != "" && (err != nil || rr.addr != c.want):
			t.Errorf("Reconnect %q:%d: %+v %v, want %s", c.host, c.port, rr, err, c.want)
		}
	}
}

// A failover list may mix protocols: with its V2 pool down the miner mines
// on the V1 backup, its probe of the V2 pool opens a channel, and it moves
// back and mines there.
func TestV2FailoverMixesProtocols(t *testing.T) {
	v2p := startV2Pool(t)
	v1p := startPool(t, "", 0)
	// The backup's jobs have a one-byte extranonce2 and no version
	// rolling: with testMinerCfg's 10-bit nonce slices a job held 262,144
	// hashes, about four shares, and one time in fifty none (the pool
	// sends no second job). A full 32-bit nonce makes that impossible.
	_, _ = testMinerCfg(t, Config{URLs: []string{v2p.url, v1p.addr}, ProbeInterval: 50 * time.Millisecond, nonceBits: 32})
	nc, err := v2p.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	nc.Close() // down: hangs up before the handshake
	v1p.waitFor("a share on the V1 backup", func() bool { return v1p.validShares(nil) > 0 })

	probe := v2p.accept()
	serveOpen(t, probe, 1, []byte{1, 2, 3, 4}, 4, refTarget(testDiff))
	c := v2p.accept()
	prefix := []byte{5, 6, 7, 8}
	serveOpen(t, c, 2, prefix, 4, refTarget(testDiff))
	j := &stratum2.NewExtendedMiningJob{ChannelID: 2, JobID: 1, Version: 0x20000000,
		MerklePath: []stratum2.U256{{3}}, CoinbaseTxPrefix: mustDecode(testCoinb1), CoinbaseTxSuffix: mustDecode(testCoinb2)}
	v2Send(t, c, j)
	prev := [32]byte{7: 7}
	v2Send(t, c, &stratum2.SetNewPrevHash{ChannelID: 2, JobID: 1, PrevHash: stratum2.U256(prev), MinNTime: 0x66000000, NBits: 0x1d00ffff})
	sub := v2Read[*stratum2.SubmitSharesExtended](t, c)
	// The job does not allow version rolling: the version is the job's.
	if sub.ChannelID != 2 || sub.JobID != 1 || sub.Version != j.Version || sub.NTime != 0x66000000 ||
		!refHashMeets(v2RefHeader(j, prefix, prev, 0x1d00ffff, sub), refTarget(testDiff)) {
		t.Fatalf("share on the V2 pool after failing back: %+v", sub)
	}
	v1p.assertNoInvalid()
}

// A SetNewPrevHash whose job never came leaves nothing to mine: the job
// on the old block must not stay current.
func TestV2UnknownPrevHashIdles(t *testing.T) {
	m := fuzzMiner(t)
	s, v, done := liveV2Session(m)
	defer done()
	j := &stratum2.NewExtendedMiningJob{ChannelID: 7, JobID: 1, CoinbaseTxPrefix: []byte{1}, CoinbaseTxSuffix: []byte{2}}
	for _, msg := range []stratum2.Message{j, &stratum2.SetNewPrevHash{ChannelID: 7, JobID: 1, PrevHash: stratum2.U256{1}, NBits: 0x1d00ffff}} {
		if err := v.handle(msg); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if cur == nil || cur.job.ID != "1" || cur.job.PrevHash != [32]byte{1} {
		t.Fatalf("current job %+v after its SetNewPrevHash", cur)
	}
	if err := v.handle(&stratum2.SetNewPrevHash{ChannelID: 7, JobID: 2, PrevHash: stratum2.U256{2}}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	cur, n := s.current, len(s.jobs)
	s.mu.Unlock()
	if cur != nil || n != 0 {
		t.Fatalf("after a SetNewPrevHash for an unknown job: current %+v, %d jobs kept", cur, n)
	}
}
