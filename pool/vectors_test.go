package pool

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/btcsuite/btcd/txscript/v2"

	"github.com/hashforge/hashforge/pow"
)

type stratumVectors struct {
	Diff1TargetHex string `json:"diff1_target_hex"`
	Vectors        []struct {
		Name          string            `json:"name"`
		SetDifficulty float64           `json:"set_difficulty"`
		Notify        []json.RawMessage `json:"notify"`
		Submit        []string          `json:"submit"`
		Extranonce1   string            `json:"extranonce1"`
		Subscribe     []json.RawMessage `json:"subscribe_result"`
		Expect        map[string]any    `json:"expect"`
	} `json:"vectors"`
}

func loadStratumVectors(t testing.TB) stratumVectors {
	t.Helper()
	raw, err := os.ReadFile("../testdata/stratum.json")
	if err != nil {
		t.Fatal(err)
	}
	var v stratumVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// notifyFields decodes the 9-element mining.notify params array.
type notifyFields struct {
	jobID, prevHash, coinb1, coinb2 string
	branch                          []string
	version, nbits, ntime           string
	clean                           bool
}

func decodeNotify(t testing.TB, raw []json.RawMessage) notifyFields {
	t.Helper()
	var n notifyFields
	targets := []any{&n.jobID, &n.prevHash, &n.coinb1, &n.coinb2, &n.branch, &n.version, &n.nbits, &n.ntime, &n.clean}
	if len(raw) != len(targets) {
		t.Fatalf("notify has %d params", len(raw))
	}
	for i, p := range targets {
		if err := json.Unmarshal(raw[i], p); err != nil {
			t.Fatalf("notify param %d: %v", i, err)
		}
	}
	return n
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func mustU32(t testing.TB, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatalf("hex u32 %q: %v", s, err)
	}
	return uint32(v)
}

// jobFromNotify rebuilds the pool-side job a captured mining.notify came
// from, so the vectors run through the production CheckShare path.
func jobFromNotify(t testing.TB, n notifyFields, seq uint64, en2Size int) *Job {
	t.Helper()
	prev := [32]byte(mustHex(t, n.prevHash))
	pow.SwapWords(&prev)
	branch := make([][32]byte, len(n.branch))
	for i, b := range n.branch {
		branch[i] = [32]byte(mustHex(t, b))
	}
	bits := mustU32(t, n.nbits)
	nt, err := pow.CompactToTarget(bits)
	if err != nil {
		t.Fatal(err)
	}
	cur := mustU32(t, n.ntime)
	return &Job{
		ID: n.jobID, Seq: seq, Height: 1,
		version: mustU32(t, n.version), prevHash: prev, bits: bits,
		curTime: cur, minNTime: cur, maxNTime: cur + maxNTimeAhead - 1,
		coinb1: mustHex(t, n.coinb1), coinb2: mustHex(t, n.coinb2),
		en2Size: en2Size, branch: branch, netTarget: nt, netDiff: pow.TargetToDifficulty(nt),
	}
}

func TestRealMinerShareVector(t *testing.T) {
	v := loadStratumVectors(t)
	vec := v.Vectors[0]
	if vec.Name != "real-miner-share-regtest" {
		t.Fatalf("vector 0 is %q", vec.Name)
	}
	n := decodeNotify(t, vec.Notify)
	var en1 string
	if err := json.Unmarshal(vec.Subscribe[1], &en1); err != nil {
		t.Fatal(err)
	}
	var en2Size int
	if err := json.Unmarshal(vec.Subscribe[2], &en2Size); err != nil {
		t.Fatal(err)
	}
	sub := vec.Submit
	exp := vec.Expect

	cb := n.coinb1 + en1 + sub[2] + n.coinb2
	if cb != exp["coinbase_hex"] {
		t.Fatalf("coinbase\n got %s\nwant %s", cb, exp["coinbase_hex"])
	}
	txid := pow.SHA256d(mustHex(t, cb))
	if got := pow.HashString(&txid); got != exp["coinbase_txid"] {
		t.Fatalf("coinbase txid %s, want %s", got, exp["coinbase_txid"])
	}
	if root := pow.FoldMerkleBranch(txid, nil); hex.EncodeToString(root[:]) != exp["merkle_root_header_order"] {
		got := hex.EncodeToString(root[:])
		t.Fatalf("merkle root %s, want %s", got, exp["merkle_root_header_order"])
	}

	j := jobFromNotify(t, n, 1, en2Size)
	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog
	target, err := pow.DifficultyToTarget(vec.SetDifficulty)
	if err != nil {
		t.Fatal(err)
	}
	diffs.Set(vec.SetDifficulty, target)
	diffs.JobSent(j.Seq)
	res, err := book.CheckShare(&Submission{
		JobID:       sub[1],
		Extranonce1: mustHex(t, en1),
		Extranonce2: mustHex(t, sub[2]),
		NTime:       mustU32(t, sub[3]),
		Nonce:       mustU32(t, sub[4]),
	}, &diffs)
	if err != nil {
		t.Fatalf("CheckShare: %v", err)
	}
	if got := hex.EncodeToString(res.Header[:]); got != exp["header_hex"] {
		t.Fatalf("header\n got %s\nwant %s", got, exp["header_hex"])
	}
	if got := res.BlockHash(); got != exp["block_hash"] {
		t.Fatalf("block hash %s, want %s", got, exp["block_hash"])
	}
	if met := pow.HashMeets(&res.Hash, target); met != exp["share_target_met"] {
		t.Fatalf("share target met = %v", met)
	}
	if !res.IsBlock {
		t.Fatal("share meets the regtest target but is not flagged as a block")
	}

	next := exp["next_notify_prevhash"].(string)
	if got, err := pow.NotifyPrevHash(res.BlockHash()); err != nil || got != next {
		t.Fatalf("NotifyPrevHash = %s, %v; want %s", got, err, next)
	}
	if got, err := pow.PrevHashFromNotify(next); err != nil || got != exp["block_hash"] {
		t.Fatalf("PrevHashFromNotify = %s, %v; want %s", got, err, exp["block_hash"])
	}
}

func TestComputedBranchOf3Vector(t *testing.T) {
	v := loadStratumVectors(t)
	vec := v.Vectors[1]
	if vec.Name != "computed-branch-of-3" {
		t.Fatalf("vector 1 is %q", vec.Name)
	}
	n := decodeNotify(t, vec.Notify)
	exp := vec.Expect
	sub := vec.Submit
	cb := mustHex(t, n.coinb1+vec.Extranonce1+sub[2]+n.coinb2)
	txid := pow.SHA256d(cb)
	if got := pow.HashString(&txid); got != exp["coinbase_txid"] {
		t.Fatalf("coinbase txid %s, want %s", got, exp["coinbase_txid"])
	}
	j := jobFromNotify(t, n, 1, len(mustHex(t, sub[2])))
	root := pow.FoldMerkleBranch(txid, j.branch)
	if got := hex.EncodeToString(root[:]); got != exp["merkle_root_header_order"] {
		t.Fatalf("merkle root %s, want %s", got, exp["merkle_root_header_order"])
	}

	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog // no difficulty told: only the network cap applies
	res, err := book.CheckShare(&Submission{
		JobID:       sub[1],
		Extranonce1: mustHex(t, vec.Extranonce1),
		Extranonce2: mustHex(t, sub[2]),
		NTime:       mustU32(t, sub[3]),
		Nonce:       mustU32(t, sub[4]),
	}, &diffs)
	if err != nil {
		t.Fatalf("CheckShare: %v", err)
	}
	if got := hex.EncodeToString(res.Header[:]); got != exp["header_hex"] {
		t.Fatalf("header\n got %s\nwant %s", got, exp["header_hex"])
	}
	if got := res.BlockHash(); got != exp["block_hash"] {
		t.Fatalf("block hash %s, want %s", got, exp["block_hash"])
	}
}

func TestBIP34HeightMatchesTxscript(t *testing.T) {
	for _, h := range []int64{0, 1, 16, 17, 127, 128, 255, 256, 32767, 32768, 65535, 500000, 8388607, 8388608, 1 << 31} {
		want, err := txscript.NewScriptBuilder().AddInt64(h).Script()
		if err != nil {
			t.Fatal(err)
		}
		if got := BIP34Height(h); hex.EncodeToString(got) != hex.EncodeToString(want) {
			t.Errorf("height %d: %x, want %x", h, got, want)
		}
	}
}
