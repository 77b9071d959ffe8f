package pool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/record"
	"github.com/hashforge/hashforge/stratum"
)

// discardShares is a ShareSink that only counts: the ledger is not what
// BenchmarkSharePath measures.
type discardShares struct{ n atomic.Int64 }

func (d *discardShares) AddShare(_ record.Share, done func(error)) {
	d.n.Add(1)
	done(nil)
}

// BenchmarkSharePath is the pool's CPU per accepted share over loopback
// TCP: SHARE_MINERS (default 200) miners in a child process each keep
// SHARE_WINDOW (default 4) mining.submit lines outstanding, one line per
// write as miners send them, for SHARE_SECONDS (default 3). cpu-µs/share is
// this process's CPU time (user + system: reads, decoding, the check,
// replies, writes, GC) per accepted share; the miners' CPU is not counted.
// Every share is accepted (difficulty d=1e-12, a network at difficulty 1),
// the ledger is a counter. Run with -benchtime 1x.
func BenchmarkSharePath(b *testing.B) {
	miners, window, seconds := envInt("SHARE_MINERS", 200), envInt("SHARE_WINDOW", 4), envInt("SHARE_SECONDS", 3)
	cfg := Config{Network: &chaincfg.RegressionNetParams, PoolAddress: regtestAddr, CoinbaseTag: "/hashforge/",
		NodeID: 7, Logger: quietLogger(), MinDifficulty: 1e-30}
	sink := &discardShares{}
	srv, err := NewServer(cfg, &fakeSubmitter{}, sink, &fakeBlocks{})
	if err != nil {
		b.Fatal(err)
	}
	tmpl := testTemplate(b, 850000, 3, true)
	tmpl.Bits = 0x1d00ffff // difficulty 1: a share is a block once in 2^32
	srv.publish(tmpl, true)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	st := &stratum.Server{Handler: srv, Logger: quietLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = st.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	helper := exec.Command(os.Args[0], "-test.run=^TestSharePathMiners$")
	helper.Env = append(os.Environ(), fmt.Sprintf("POOL_SHARE_MINERS=%s,%d,%d", ln.Addr(), miners, window))
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
	s0, c0, t0 := srv.Stats().Accepted, processCPU(), time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	s1, c1, t1 := srv.Stats().Accepted, processCPU(), time.Now()
	for b.Loop() { // the window above is the measurement; Loop resets metrics
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

// TestSharePathMiners is BenchmarkSharePath's miners, in a child process:
// each subscribes, authorizes at d=1e-12, waits for its job and keeps a
// window of distinct shares in flight until stdin closes.
func TestSharePathMiners(t *testing.T) {
	spec := os.Getenv("POOL_SHARE_MINERS")
	if spec == "" {
		t.Skip("helper process for BenchmarkSharePath")
	}
	f := strings.Split(spec, ",")
	n, _ := strconv.Atoi(f[1])
	window, _ := strconv.Atoi(f[2])
	ready := make(chan struct{}, n)
	for i := range n {
		c, err := net.Dial("tcp", f[0])
		if err != nil {
			t.Fatal(err)
		}
		go mineShares(c, i, window, ready)
	}
	for range n {
		<-ready
	}
	fmt.Println("mining")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

func mineShares(c net.Conn, i, window int, ready chan<- struct{}) {
	fmt.Fprintf(c, `{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}`+"\n"+
		`{"id":2,"method":"mining.authorize","params":["%s.w%d","d=1e-12"]}`+"\n", regtestAddr, i)
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
	user := fmt.Sprintf("%s.w%d", regtestAddr, i)
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
		if bytes.Contains(line, []byte(`"method"`)) {
			continue // a notification
		}
		if submit() != nil {
			return
		}
	}
}
