package pool

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

func startStratum(t *testing.T, tp *testPool) string {
	t.Helper()
	return serveStratum(t, &stratum.Server{Handler: tp.srv, Logger: quietLogger()})
}

// serveStratum runs st on a loopback port until the test ends.
func serveStratum(t *testing.T, st *stratum.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = st.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *stratum.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := stratum.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tcall(t *testing.T, c *stratum.Client, method string, params any) (json.RawMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Call(ctx, method, params)
}

func nextNote(t *testing.T, c *stratum.Client) (string, []json.RawMessage) {
	t.Helper()
	select {
	case n, ok := <-c.Notifications():
		if !ok {
			t.Fatal("connection closed")
		}
		var params []json.RawMessage
		if err := json.Unmarshal(n.Params.(json.RawMessage), &params); err != nil {
			t.Fatalf("%s params: %v", n.Method, err)
		}
		return n.Method, params
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5 s")
	}
	return "", nil
}

func stratumCode(err error) int {
	var se *stratum.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return -1
}

// mineShare is an independent miner: from a notify and the session's
// extranonces it builds the header and searches a nonce meeting the
// difficulty, as cpuminer does.
func mineShare(t *testing.T, n notifyFields, en1, en2 []byte, difficulty float64) uint32 {
	t.Helper()
	target, err := pow.DifficultyToTarget(difficulty)
	if err != nil {
		t.Fatal(err)
	}
	txid := pow.SHA256d(mustHex(t, n.coinb1+hex.EncodeToString(en1)+hex.EncodeToString(en2)+n.coinb2))
	var branch [][32]byte
	for _, b := range n.branch {
		branch = append(branch, [32]byte(mustHex(t, b)))
	}
	root := pow.FoldMerkleBranch(txid, branch)
	prev := [32]byte(mustHex(t, n.prevHash))
	pow.SwapWords(&prev)
	var h [80]byte
	put := func(off int, v uint32) {
		h[off], h[off+1], h[off+2], h[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	put(0, mustU32(t, n.version))
	copy(h[4:], prev[:])
	copy(h[36:], root[:])
	put(68, mustU32(t, n.ntime))
	put(72, mustU32(t, n.nbits))
	for nonce := uint32(0); nonce < 1<<20; nonce++ {
		put(76, nonce)
		sum := pow.SHA256d(h[:])
		if pow.HashMeets(&sum, target) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

func TestTCPSessionMinesBlock(t *testing.T) {
	tp := newTestPool(t, func(c *Config) { c.MinDifficulty = 1e-6 })
	tp.srv.now = time.Now
	tp.srv.publish(testTemplate(t, 321, 3, true), true)
	addr := startStratum(t, tp)

	// Refusals, each on its own connection.
	{
		c := dial(t, addr)
		_, err := tcall(t, c, "mining.submit", []any{regtestAddr + ".w", "1", "00", "00000000", "00000000"})
		if stratumCode(err) != stratum.CodeNotSubscribed {
			t.Fatalf("submit before subscribe: %v", err)
		}
		_, err = tcall(t, c, "mining.authorize", []any{"not-an-address.w", "x"})
		if stratumCode(err) != stratum.CodeUnauthorized {
			t.Fatalf("bad address: %v", err)
		}
	}

	c := dial(t, addr)
	res, err := tcall(t, c, "mining.configure", []any{[]string{"version-rolling"}, map[string]any{"version-rolling.mask": "1fffe000"}})
	if err != nil || !strings.Contains(string(res), `"version-rolling.mask":"1fffe000"`) {
		t.Fatalf("configure: %s, %v", res, err)
	}
	res, err = tcall(t, c, "mining.subscribe", []any{"cpuminer/2.5.1"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	// d= in the password sets the session's difficulty; above regtest's
	// network difficulty, so the share found at it is also a block.
	if res, err := tcall(t, c, "mining.authorize", []any{regtestAddr + ".cpu", "x,d=0.000002"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize: %s, %v", res, err)
	}
	// Work arrives without the miner saying anything more.
	method, params := nextNote(t, c)
	if method != "mining.set_difficulty" {
		t.Fatalf("first notification %s", method)
	}
	var diff float64
	_ = json.Unmarshal(params[0], &diff)
	if diff != 0.000002 {
		t.Fatalf("difficulty %v, want the password's d=0.000002", diff)
	}
	method, params = nextNote(t, c)
	if method != "mining.notify" {
		t.Fatalf("second notification %s", method)
	}
	n := decodeNotify(t, params)

	en1 := mustHex(t, sub.Extranonce1)
	en2 := []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1}
	nonce := mineShare(t, n, en1, en2, diff)
	res, err = tcall(t, c, "mining.submit", []any{regtestAddr + ".cpu", n.jobID, hex.EncodeToString(en2), n.ntime, fmt.Sprintf("%08x", nonce)})
	if err != nil || string(res) != "true" {
		t.Fatalf("submit: %s, %v", res, err)
	}
	// The same share again is a duplicate, block or not.
	_, err = tcall(t, c, "mining.submit", []any{regtestAddr + ".cpu", n.jobID, hex.EncodeToString(en2), n.ntime, fmt.Sprintf("%08x", nonce)})
	if stratumCode(err) != stratum.CodeDuplicate {
		t.Fatalf("resubmit: %v", err)
	}

	tp.sub.mu.Lock()
	blocks := append([]string(nil), tp.sub.blocks...)
	tp.sub.mu.Unlock()
	if len(blocks) != 1 {
		t.Fatalf("%d blocks submitted", len(blocks))
	}
	raw, _ := hex.DecodeString(blocks[0])
	var msg wire.MsgBlock
	if err := msg.Deserialize(bytes.NewReader(raw)); err != nil {
		t.Fatalf("submitted block does not parse: %v", err)
	}
	if len(msg.Transactions) != 4 || msg.Header.Nonce != nonce {
		t.Fatalf("block has %d txs, nonce %d", len(msg.Transactions), msg.Header.Nonce)
	}
	shares := tp.shares.all()
	if len(shares) != 1 || !shares[0].IsBlock || shares[0].BlockHash != msg.BlockHash().String() || shares[0].Worker != "cpu" {
		t.Fatalf("shares %+v", shares)
	}
}

func TestTCPSlowSessionDoesNotStallOthers(t *testing.T) {
	tp := newTestPool(t, nil)
	tp.srv.now = time.Now
	base := testTemplate(t, 10, 0, false)
	tp.srv.publish(base, true)
	addr := startStratum(t, tp)

	// A miner that subscribes and authorizes, then never reads again.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(slow, `{"id":1,"method":"mining.subscribe","params":[]}`+"\n")
	fmt.Fprintf(slow, `{"id":2,"method":"mining.authorize","params":["%s.slow",""]}`+"\n", regtestAddr)

	good := dial(t, addr)
	if _, err := tcall(t, good, "mining.subscribe", []any{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tcall(t, good, "mining.authorize", []any{regtestAddr + ".good", ""}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return tp.srv.Stats().AuthorizedWorkers == 2 })

	seen := make(chan string, 1024)
	go func() {
		for n := range good.Notifications() {
			if n.Method == "mining.notify" {
				var p []json.RawMessage
				_ = json.Unmarshal(n.Params.(json.RawMessage), &p)
				var id string
				_ = json.Unmarshal(p[0], &id)
				seen <- id
			}
		}
		close(seen)
	}()
	waitJob := func(id string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case got, ok := <-seen:
				if !ok {
					t.Fatal("good miner disconnected")
				}
				if got == id {
					return
				}
			case <-timeout:
				t.Fatalf("good miner never got job %s", id)
			}
		}
	}
	// Far more job data than the slow miner's socket buffers take, until
	// its send queue fills and the stratum layer drops it. Clean jobs on
	// new blocks, so none is coalesced.
	dropped := false
	for i := 0; i < 40000 && !dropped; i++ {
		tmpl := *base
		tmpl.Height = base.Height + int64(i) + 1
		tmpl.PreviousBlockHash = hashOf(t, fmt.Sprintf("%064x", i+1))
		tp.srv.publish(&tmpl, true)
		if i%100 == 99 {
			waitJob(tp.srv.jobs.Current().ID)
			dropped = tp.srv.Stats().Sessions == 1
		}
	}
	if !dropped {
		t.Fatal("the slow miner was never dropped")
	}
	// The survivor still gets work.
	tmpl := *base
	tmpl.PreviousBlockHash = hashOf(t, strings.Repeat("f", 64))
	tp.srv.publish(&tmpl, true)
	waitJob(tp.srv.jobs.Current().ID)
}
