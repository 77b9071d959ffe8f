package loadtest

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

func TestParseSourceIPs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"127.0.0.1", []string{"127.0.0.1"}},
		{"127.0.0.1-127.0.0.4", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{"10.0.0.255-10.0.1.1", []string{"10.0.0.255", "10.0.1.0", "10.0.1.1"}},
		{" 127.0.0.1 , 127.0.0.9-127.0.0.10,::1", []string{"127.0.0.1", "127.0.0.9", "127.0.0.10", "::1"}},
		{"::1-::3", []string{"::1", "::2", "::3"}},
		{"127.0.0.5-127.0.0.5", []string{"127.0.0.5"}},
	} {
		got, err := ParseSourceIPs(tc.in)
		if err != nil {
			t.Errorf("ParseSourceIPs(%q): %v", tc.in, err)
			continue
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if !slices.Equal(s, tc.want) {
			t.Errorf("ParseSourceIPs(%q) = %v, want %v", tc.in, s, tc.want)
		}
	}
	for _, bad := range []string{"127.0.0.4-127.0.0.1", "127.0.0.1-::1", "localhost", "127.0.0.1-", "10.0.0.0-10.2.0.0", "1.2.3.4/24"} {
		if got, err := ParseSourceIPs(bad); err == nil {
			t.Errorf("ParseSourceIPs(%q) = %d addresses, want an error", bad, len(got))
		}
	}
}

func TestParseRateAndMode(t *testing.T) {
	for in, want := range map[string]float64{"unlimited": 0, "UNLIMITED": 0, "": 0, "2.5": 2.5, "100": 100, "0.1": 0.1} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "fast", "NaN", "Inf"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q): want an error", bad)
		}
	}
	for _, m := range []string{"accept", "reject", "idle", "Idle"} {
		if _, err := ParseMode(m); err != nil {
			t.Errorf("ParseMode(%q): %v", m, err)
		}
	}
	if _, err := ParseMode("flood"); err == nil {
		t.Error("ParseMode(flood): want an error")
	}
}

func TestMinerUser(t *testing.T) {
	if got := minerUser("bcrt1qaddr", 7); got != "bcrt1qaddr.lt7" {
		t.Errorf("minerUser without a worker = %q", got)
	}
	if got := minerUser("bcrt1qaddr.rig", 7); got != "bcrt1qaddr.rig" {
		t.Errorf("minerUser with a worker = %q", got)
	}
}

// TestHistogramQuantiles checks the nearest-rank percentiles against exact
// ones on known samples: within the histogram's 0.4 % bucket error.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram: want 0")
	}
	var exact []time.Duration
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * 37 * time.Microsecond
		exact = append(exact, d)
		h.add(d)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*1000))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.004 {
			t.Errorf("p%v = %v, exact %v (error %.2f%%)", q*100, got, want, rel*100)
		}
	}
	if got := h.quantile(1); got != exact[999] {
		t.Errorf("p100 = %v, want the exact maximum %v", got, exact[999])
	}

	// Small values are exact; merging adds counts.
	var a, b histogram
	for _, v := range []time.Duration{1, 2, 3, 4} {
		a.add(v)
	}
	for _, v := range []time.Duration{5, 6, 7, 8} {
		b.add(v)
	}
	a.merge(&b)
	if a.n != 8 || a.quantile(0.5) != 4 || a.quantile(0.75) != 6 || a.quantile(0.99) != 8 {
		t.Errorf("merged: n %d p50 %v p75 %v p99 %v; want 8, 4, 6, 8", a.n, a.quantile(0.5), a.quantile(0.75), a.quantile(0.99))
	}

	// Every bucket's midpoint is within 0.4 % of every value it holds, up
	// to hours.
	for v := int64(1); v < int64(10*time.Hour); v = v*17/16 + 1 {
		for _, x := range []int64{v, v + 1, v*2 - 1} {
			mid := histValue(histIndex(x))
			if rel := math.Abs(float64(mid-x)) / float64(x); rel > 1.0/256 {
				t.Fatalf("value %d: bucket midpoint %d (error %.3f%%)", x, mid, rel*100)
			}
		}
	}
}

type vector struct {
	Name            string          `json:"name"`
	SubscribeResult json.RawMessage `json:"subscribe_result"`
	SetDifficulty   float64         `json:"set_difficulty"`
	Notify          json.RawMessage `json:"notify"`
	Submit          []string        `json:"submit"`
	Expect          struct {
		HeaderHex string `json:"header_hex"`
		BlockHash string `json:"block_hash"`
	} `json:"expect"`
}

func realShare(t *testing.T) vector { return realShareB(t) }

func realShareB(t testing.TB) vector {
	t.Helper()
	raw, err := os.ReadFile("../testdata/stratum.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Vectors {
		if v.Name == "real-miner-share-regtest" {
			return v
		}
	}
	t.Fatal("testdata/stratum.json: no real-miner-share-regtest vector")
	return vector{}
}

// TestShareMatchesRealMiner builds the header and the submit line of a
// share a real miner found (testdata/stratum.json) from its job, and gets
// the miner's header, block hash and submit parameters.
func TestShareMatchesRealMiner(t *testing.T) {
	v := realShare(t)
	sub, err := stratum.ParseSubscribeResult(v.SubscribeResult)
	if err != nil {
		t.Fatal(err)
	}
	en1, _ := hex.DecodeString(sub.Extranonce1)
	notify, err := stratum.ParseNotify(v.Notify)
	if err != nil {
		t.Fatal(err)
	}
	target, _ := pow.DifficultyToTarget(v.SetDifficulty)
	j, err := parseJob(&notify, en1, sub.Extranonce2Size, target)
	if err != nil {
		t.Fatal(err)
	}
	en2, _ := hex.DecodeString(v.Submit[2])
	nonce, _ := hex.DecodeString(v.Submit[4])
	var g grinder
	g.en2 = uint64(binary.BigEndian.Uint32(en2))
	g.setJob(j)
	g.nextEn2()
	binary.LittleEndian.PutUint32(g.header[76:80], binary.BigEndian.Uint32(nonce))
	if got := hex.EncodeToString(g.header[:]); got != v.Expect.HeaderHex {
		t.Fatalf("header\n got %s\nwant %s", got, v.Expect.HeaderHex)
	}
	h := pow.SHA256d(g.header[:])
	if got := pow.HashString(&h); got != v.Expect.BlockHash {
		t.Fatalf("block hash %s, want %s", got, v.Expect.BlockHash)
	}

	userJSON, _ := json.Marshal(v.Submit[0])
	line := appendSubmit(nil, 42, userJSON, j, share{en2: g.cur, nonce: binary.BigEndian.Uint32(nonce)})
	if !strings.HasSuffix(string(line), "\n") || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("submit line %q: want one line", line)
	}
	req, err := stratum.DecodeRequest(line[:len(line)-1])
	if err != nil {
		t.Fatalf("submit line %s: %v", line, err)
	}
	var params []string
	if err := json.Unmarshal(req.Params, &params); err != nil || req.Method != "mining.submit" || string(req.ID) != "42" {
		t.Fatalf("submit line %s: method %q id %s params %v", line, req.Method, req.ID, err)
	}
	if !slices.Equal(params, v.Submit) {
		t.Fatalf("submit params %q, the miner sent %q", params, v.Submit)
	}
}

// TestGrindShares grinds shares that must meet (accept mode) or miss
// (reject mode) the share target, and checks each one from scratch with
// pow: its own coinbase, merkle root and header from the submit's fields.
func TestGrindShares(t *testing.T) {
	v := realShare(t)
	notify, err := stratum.ParseNotify(v.Notify)
	if err != nil {
		t.Fatal(err)
	}
	// A branch, so the fold is exercised too.
	notify.MerkleBranch = []string{strings.Repeat("ab", 32), strings.Repeat("cd", 32)}
	en1 := []byte{0, 0, 0, 0x28}
	for _, tc := range []struct {
		name       string
		difficulty float64
		want       bool
	}{
		{"accept", 1e-6, true},
		{"reject regtest", 1e-6, false}, // the network target (207fffff) is the easier: misses must miss it
		{"reject", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, _ := pow.DifficultyToTarget(tc.difficulty)
			j, err := parseJob(&notify, en1, 4, target)
			if err != nil {
				t.Fatal(err)
			}
			network, _ := pow.CompactToTarget(0x207fffff)
			var g grinder
			g.setJob(j)
			seen := map[share]bool{}
			for range 20 {
				var s share
				var ok bool
				for !ok {
					s, ok = g.find(tc.want, grindChunk)
				}
				if seen[s] {
					t.Fatalf("share %+v ground twice", s)
				}
				seen[s] = true
				h := checkHeader(t, notify, en1, s)
				if got := pow.HashMeets(&h, target); got != tc.want {
					t.Fatalf("share %+v: hash %s meets difficulty %g: %v, want %v", s, pow.HashString(&h), tc.difficulty, got, tc.want)
				}
				if !tc.want && pow.HashMeets(&h, network) {
					t.Fatalf("share %+v: a miss that solves a block; the pool would accept it", s)
				}
			}
		})
	}
}

// checkHeader hashes the header a pool builds for share s of notify.
func checkHeader(t *testing.T, n stratum.NotifyParams, en1 []byte, s share) [32]byte {
	t.Helper()
	dec := func(h string) []byte {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var en2 [4]byte
	binary.BigEndian.PutUint32(en2[:], uint32(s.en2))
	cb := slices.Concat(dec(n.Coinb1), en1, en2[:], dec(n.Coinb2))
	var branch [][32]byte
	for _, b := range n.MerkleBranch {
		branch = append(branch, [32]byte(dec(b)))
	}
	root := pow.FoldMerkleBranch(pow.SHA256d(cb), branch)
	prev := [32]byte(dec(n.PrevHash))
	pow.SwapWords(&prev)
	be := func(h string) uint32 { return binary.BigEndian.Uint32(dec(h)) }
	var hdr [80]byte
	pow.PutHeader(&hdr, be(n.Version), &prev, &root, be(n.NTime), be(n.NBits), s.nonce)
	return pow.SHA256d(hdr[:])
}

func TestParseAccept(t *testing.T) {
	for line, want := range map[string]uint64{
		`{"id":3,"result":true,"error":null}`:        3,
		`{"id":18446744,"result":true,"error":null}`: 18446744,
	} {
		if id, ok := parseAccept([]byte(line)); !ok || id != want {
			t.Errorf("parseAccept(%s) = %d, %v", line, id, ok)
		}
	}
	for _, line := range []string{
		`{"id":3,"result":false,"error":null}`,
		`{"id":3,"result":null,"error":[23,"low difficulty share",null]}`,
		`{"id":"3","result":true,"error":null}`,
		`{"id":,"result":true,"error":null}`,
		`{"id":3, "result":true,"error":null}`,
	} {
		if _, ok := parseAccept([]byte(line)); ok {
			t.Errorf("parseAccept(%s): taken for an accept", line)
		}
	}
}

// TestSubmitReplies feeds a miner the replies a pool sends and checks what
// it counts: only result true with a null error is an accept.
func TestSubmitReplies(t *testing.T) {
	r := &run{cfg: Config{Window: 8, Mode: ModeAccept, User: "u", Miners: 1}, start: time.Now()}
	m := newMiner(r, 0)
	for _, line := range []string{
		`{"id":3,"result":true,"error":null}`,
		`{"result":true,"id":4,"error":null}`,
		`{"id":5,"result":null,"error":[23,"low difficulty share",null]}`,
		`{"id":6,"result":null,"error":[21,"stale",null]}`,
		`{"id":7,"result":false,"error":null}`,
		`{"id":8,"result":true,"error":[20,"odd",null]}`,
		`{"id":9,"result":null,"error":{"code":23,"message":"low difficulty share"}}`,
		`{"id":10,"result":null,"error":[23,"low difficulty share",null]}`,
		`{"id":11,"result":null,"error":[20,"say \"hi\"",null]}`,
		`{"id":null,"method":"mining.set_difficulty","params":[0.5]}`,
		`not json`,
	} {
		m.handle([]byte(line))
	}
	want := map[string]int64{"23 low difficulty share": 3, "21 stale": 1, "result false": 1, "20 odd": 1, `20 say "hi"`: 1}
	reasons := map[string]int64{}
	for _, r := range m.reasons {
		reasons[r.key] += r.n
	}
	if m.accepted != 2 || m.rejected != 7 || !mapsEqual(reasons, want) || m.badMessages != 1 {
		t.Errorf("accepted %d rejected %d %v bad %d; want 2, 7 %v, 1", m.accepted, m.rejected, reasons, m.badMessages, want)
	}
	lowDiff, accept := []byte(`{"id":10,"result":null,"error":[23,"low difficulty share",null]}`), []byte(`{"id":11,"result":true,"error":null}`)
	if n := testing.AllocsPerRun(100, func() { m.handle(lowDiff) }); n != 0 {
		t.Errorf("a low-difficulty reply costs %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { m.handle(accept) }); n != 0 {
		t.Errorf("an accept costs %v allocations, want 0", n)
	}
	for i := range 2 * maxReasons {
		m.handle(fmt.Appendf(nil, `{"id":12,"result":null,"error":[20,"job %d",null]}`, i))
	}
	if len(m.reasons) != maxReasons || m.otherReasons != int64(maxReasons+len(want)) {
		t.Errorf("%d distinct reasons, %d others; want %d and %d", len(m.reasons), m.otherReasons, maxReasons, maxReasons+len(want))
	}
	if want, _ := pow.DifficultyToTarget(0.5); m.target != want {
		t.Errorf("set_difficulty 0.5: target %s", m.target)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as the kernel prints it.
	stat := "4242 (hash (forge) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0"
	got, err := parseProcStat(stat)
	if err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseProcStat = %v, %v; want 3.25s", got, err)
	}
	if _, err := parseProcStat("4242 (x) S 1"); err == nil {
		t.Error("short stat line: want an error")
	}
	if self, err := processCPU(os.Getpid()); err != nil || self < 0 {
		t.Errorf("processCPU(self) = %v, %v", self, err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{URL: "stratum+tcp://127.0.0.1:3333", Miners: 1, Duration: time.Second}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeAccept || c.Window != 8 || c.User != DefaultUser || c.DrainTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{{Miners: 1, Duration: time.Second}, {URL: "x:1", Duration: time.Second}, {URL: "x:1", Miners: 1}} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
	if _, _, err := stripScheme("http://127.0.0.1:1"); err == nil {
		t.Error("http:// URL: want an error")
	}
}

// TestNotifyDecodedOnce gives two sessions of a run the same notify line,
// as a pool broadcasts it, and one with params a notify line may carry
// after them: each session gets the job, decoded once for both.
func TestNotifyDecodedOnce(t *testing.T) {
	v := realShare(t)
	r := &run{cfg: Config{Window: 8, Mode: ModeAccept, User: "u", Miners: 2}, start: time.Now()}
	a, b := newMiner(r, 0), newMiner(r, 1)
	a.en1, b.en1, a.en2Size, b.en2Size = []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}, 4, 4
	line := []byte(notifyPrefix + string(v.Notify) + "}")
	a.handle(line)
	b.handle(line)
	ja, jb := a.job.Load(), b.job.Load()
	if ja == nil || jb == nil || ja.template != jb.template || string(ja.en1) != "\x01\x02\x03\x04" || string(jb.en1) != "\x05\x06\x07\x08" {
		t.Fatalf("jobs %+v %+v: want one template, each session's extranonce", ja, jb)
	}
	if ja.id != "o-1" || ja.bits != 0x207fffff || ja.ntimeHx != "6b06489e" {
		t.Errorf("job %s bits %08x ntime %s", ja.id, ja.bits, ja.ntimeHx)
	}
	// Extra members, in another order: encoding/json's path.
	other := strings.Replace(string(v.Notify), `"o-1"`, `"o-2"`, 1)
	a.handle([]byte(`{"params":` + other + `,"method":"mining.notify","id":null,"x":1}`))
	if j := a.job.Load(); j.id != "o-2" || a.badMessages != 0 {
		t.Errorf("reordered notify: job %s, %d bad messages", j.id, a.badMessages)
	}
	if len(a.arrivals) != 1 || a.arrivals[0].job != "o-2" {
		t.Errorf("arrivals %+v: want only o-2 (o-1 was the session's first job)", a.arrivals)
	}
}

func TestPaceGrid(t *testing.T) {
	start := time.Now()
	r := &run{start: start}
	at := start.Add(7 * time.Millisecond)
	if got := r.onGrid(at); !got.Equal(at) {
		t.Errorf("no grid: %v moved to %v", at.Sub(start), got.Sub(start))
	}
	r.cfg.PaceGrid = 5 * time.Millisecond
	for in, want := range map[time.Duration]time.Duration{0: 0, 1: 5 * time.Millisecond, 5 * time.Millisecond: 5 * time.Millisecond, 7 * time.Millisecond: 10 * time.Millisecond} {
		if got := r.onGrid(start.Add(in)).Sub(start); got != want {
			t.Errorf("grid 5ms: %v → %v, want %v", in, got, want)
		}
	}
}
