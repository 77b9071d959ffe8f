package sv2

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/hashforge/hashforge/internal/cpuclock"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

const benchAddr = "bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt" // regtest P2WPKH

type countShares struct{ n atomic.Int64 }

func (c *countShares) AddShare(_ record.Share, done func(error)) { c.n.Add(1); done(nil) }

type noBlocks struct{}

func (noBlocks) SubmitBlock(context.Context, string) (string, error) { return "", nil }
func (noBlocks) RecordBlock(context.Context, record.Block) error     { return nil }

// benchPool is a pool on a difficulty-1 network whose sessions sit at a
// tiny difficulty (vardiff aiming at a share a nanosecond): every share is
// accepted, almost none is a block, and the ledger is a counter.
func benchPool(b testing.TB) (*pool.Server, *countShares, context.CancelFunc) {
	b.Helper()
	sink := &countShares{}
	srv, err := pool.NewServer(pool.Config{Network: &chaincfg.RegressionNetParams, PoolAddress: benchAddr,
		CoinbaseTag: "/bench/", NodeID: 7, StartDifficulty: 1e-12, MinDifficulty: 1e-30, ShareInterval: time.Nanosecond,
		Logger: slog.New(slog.DiscardHandler)}, noBlocks{}, sink, noBlocks{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	templates := make(chan *node.Template, 1)
	templates <- &node.Template{Version: 0x20000000, PreviousBlockHash: chainhash.Hash{1, 2, 3}, CoinbaseValue: 50_0000_0000,
		Bits: 0x1d00ffff, Height: 850000, CurTime: time.Now().Unix()}
	go func() { _ = srv.Run(ctx, templates) }()
	for srv.Stats().JobHeight == 0 {
		time.Sleep(time.Millisecond)
	}
	return srv, sink, cancel
}

// BenchmarkSharePathV1 and BenchmarkSharePathV2 are the pool's CPU per
// accepted share over loopback TCP, the same pool and the same load:
// SHARE_MINERS (default 200) miners in a child process keep SHARE_WINDOW
// (default 4) shares in flight for SHARE_SECONDS (default 3). cpu-µs/share
// is this process's CPU (user + system) per share the pool accepted; the
// miners' CPU is not counted. Run with -benchtime 1x.
func BenchmarkSharePathV1(b *testing.B) { benchSharePath(b, false) }

// BenchmarkSharePathV2: see BenchmarkSharePathV1.
func BenchmarkSharePathV2(b *testing.B) { benchSharePath(b, true) }

func benchSharePath(b *testing.B, v2 bool) {
	miners, window, seconds := envInt("SHARE_MINERS", 200), envInt("SHARE_WINDOW", 4), envInt("SHARE_SECONDS", 3)
	srv, sink, stopPool := benchPool(b)
	defer stopPool()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	spec := fmt.Sprintf("v1,%s,%d,%d", ln.Addr(), miners, window)
	if v2 {
		auth, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(b.TempDir(), "authority.key"))
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{Pool: srv, Authority: auth, Logger: slog.New(slog.DiscardHandler), SendQueue: 4096}
		go func() { defer close(served); _ = s.Serve(ctx, ln) }()
		spec = fmt.Sprintf("v2,%s,%d,%d,%s", ln.Addr(), miners, window, stratum2.AuthorityPubKeyOf(auth))
	} else {
		st := &stratum.Server{Handler: srv, Logger: slog.New(slog.DiscardHandler)}
		go func() { defer close(served); _ = st.Serve(ctx, ln) }()
	}
	defer func() { cancel(); <-served }()

	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), minersEnv+"="+spec)
	stdin, _ := helper.StdinPipe()
	stdout, _ := helper.StdoutPipe()
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = helper.Wait() }()
	if l, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || l != "mining\n" {
		b.Fatalf("miners: %q, %v", l, err)
	}
	time.Sleep(500 * time.Millisecond) // warm up
	s0, c0, t0 := sink.n.Load(), cpuclock.Self(), time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	s1, c1, t1 := sink.n.Load(), cpuclock.Self(), time.Now()
	for b.Loop() { // the window above is the measurement
	}
	shares := float64(s1 - s0)
	if shares == 0 {
		b.Fatal("no shares accepted")
	}
	b.ReportMetric(float64((c1-c0).Microseconds())/shares, "cpu-µs/share")
	b.ReportMetric(shares/t1.Sub(t0).Seconds(), "shares/s")
	if rej := srv.Stats().Rejected; len(rej) > 0 {
		b.Logf("rejected: %v", rej)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// minersEnv makes the test binary the benchmarks' miners (TestMain): each
// opens its session or channel, waits for a job and keeps a window of
// distinct shares in flight until stdin closes.
const minersEnv = "SV2_SHARE_MINERS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(minersEnv); spec != "" {
		os.Exit(runMiners(spec))
	}
	os.Exit(m.Run())
}

func runMiners(spec string) int {
	f := strings.Split(spec, ",")
	n, _ := strconv.Atoi(f[2])
	window, _ := strconv.Atoi(f[3])
	ready := make(chan struct{}, n)
	for i := range n {
		c, err := net.Dial("tcp", f[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if f[0] == "v2" {
			auth, err := stratum2.ParseAuthorityPubKey(f[4])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			go mineV2(c, auth, i, window, ready)
		} else {
			go mineV1(c, i, window, ready)
		}
	}
	for range n {
		<-ready
	}
	fmt.Println("mining")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

func mineV1(c net.Conn, i, window int, ready chan<- struct{}) {
	fmt.Fprintf(c, `{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}`+"\n"+
		`{"id":2,"method":"mining.authorize","params":["%s.w%d","x"]}`+"\n", benchAddr, i)
	r := bufio.NewReaderSize(c, 64<<10)
	var job, ntime string
	for job == "" {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		var m struct {
			Method string
			Params []json.RawMessage
		}
		if json.Unmarshal(line, &m) == nil && m.Method == "mining.notify" && len(m.Params) > 7 {
			_ = json.Unmarshal(m.Params[0], &job)
			_ = json.Unmarshal(m.Params[7], &ntime)
		}
	}
	ready <- struct{}{}
	user := fmt.Sprintf("%s.w%d", benchAddr, i)
	var nonce uint32
	submit := func() error {
		nonce++
		_, err := fmt.Fprintf(c, `{"id":%d,"method":"mining.submit","params":["%s","%s","0000000000000000","%s","%08x"]}`+"\n",
			nonce+2, user, job, ntime, nonce)
		return err
	}
	for range window {
		if submit() != nil {
			return
		}
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if strings.Contains(string(line), `"method"`) {
			continue
		}
		if submit() != nil {
			return
		}
	}
}

func mineV2(nc net.Conn, auth stratum2.AuthorityPubKey, i, window int, ready chan<- struct{}) {
	c, err := stratum2.Client(nc, auth)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handshake:", err)
		return
	}
	_ = c.WriteMessage(&stratum2.SetupConnection{Protocol: stratum2.ProtocolMining, MinVersion: 2, MaxVersion: 2})
	_ = c.WriteMessage(&stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: fmt.Sprintf("%s.w%d", benchAddr, i)})
	var channel, job, ntime, version uint32
	var size int
	for active := false; !active; {
		m, _, err := c.ReadMessage()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *stratum2.OpenExtendedMiningChannelSuccess:
			channel, size = m.ChannelID, int(m.ExtranonceSize)
		case *stratum2.NewExtendedMiningJob:
			job, version = m.JobID, m.Version
		case *stratum2.SetNewPrevHash:
			job, ntime, active = m.JobID, m.MinNTime, true
		}
	}
	ready <- struct{}{}
	en2 := make([]byte, size)
	var seq uint32
	submit := func() error {
		seq++
		binary.LittleEndian.PutUint32(en2, uint32(i))
		return c.WriteMessage(&stratum2.SubmitSharesExtended{ChannelID: channel, SequenceNumber: seq, JobID: job,
			Nonce: seq, NTime: ntime, Version: version, Extranonce: en2})
	}
	for range window {
		if submit() != nil {
			return
		}
	}
	for {
		m, _, err := c.ReadMessage()
		if err != nil {
			return
		}
		n := 0
		switch m := m.(type) {
		case *stratum2.SubmitSharesSuccess:
			n = int(m.NewSubmitsAcceptedCount) // a batched acknowledgement
		case *stratum2.SubmitSharesError:
			n = 1
		}
		for range n {
			if submit() != nil {
				return
			}
		}
	}
}
