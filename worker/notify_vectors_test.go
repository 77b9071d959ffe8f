package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashforge/hashforge/stratum"
)

// recordedNotify is one entry of testdata/notifies.json: a mining.notify
// recorded from a real pool, and facts about it that the tests below check
// with their own code (crypto/sha256, big.Int, a hand-written transaction
// reader), never with the miner's.
type recordedNotify struct {
	Name            string          `json:"name"`
	Pool            string          `json:"pool"`
	Source          string          `json:"source"`
	Params          json.RawMessage `json:"params"`
	Extranonce1     string          `json:"extranonce1"`
	Extranonce2Size int             `json:"extranonce2_size"`
	Expect          struct {
		Height            int64  `json:"height"`
		PrevBlockHash     string `json:"prev_block_hash"`
		CoinbaseVersion   uint32 `json:"coinbase_version"`
		CoinbaseOutputs   int    `json:"coinbase_outputs"`
		WitnessCommitment bool   `json:"witness_commitment"`
	} `json:"expect"`
}

func loadRecordedNotifies(t testing.TB) []recordedNotify {
	t.Helper()
	b, err := os.ReadFile("testdata/notifies.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Notifies []recordedNotify `json:"notifies"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Notifies) == 0 {
		t.Fatal("no recorded notifies")
	}
	return f.Notifies
}

// rawNotify is the notify params as plain strings, decoded with
// encoding/json only.
type rawNotify struct {
	jobID, prevHash, coinb1, coinb2 string
	branch                          []string
	version, nbits, ntime           string
	clean                           bool
}

func decodeRawNotify(t testing.TB, params json.RawMessage) rawNotify {
	t.Helper()
	var a []json.RawMessage
	if err := json.Unmarshal(params, &a); err != nil || len(a) != 9 {
		t.Fatalf("notify params: %v (%d elements)", err, len(a))
	}
	var n rawNotify
	for i, dst := range []any{&n.jobID, &n.prevHash, &n.coinb1, &n.coinb2, &n.branch, &n.version, &n.nbits, &n.ntime, &n.clean} {
		if err := json.Unmarshal(a[i], dst); err != nil {
			t.Fatalf("notify param %d: %v", i, err)
		}
	}
	return n
}

func beHex32(t testing.TB, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 8 {
		t.Fatalf("hex uint32 %q: %v", s, err)
	}
	return uint32(v)
}

// refHeader builds an 80-byte header from the notify strings the way the
// Stratum V1 specification describes it, independently of Job.
func refHeader(t testing.TB, n rawNotify, en1, en2 []byte, version, nonce uint32) []byte {
	t.Helper()
	cb := mustHex(t, n.coinb1+hex.EncodeToString(en1)+hex.EncodeToString(en2)+n.coinb2)
	root := sha256dRef(cb)
	for _, b := range n.branch {
		root = sha256dRef(append(append([]byte{}, root...), mustHex(t, b)...))
	}
	var h bytes.Buffer
	binary.Write(&h, binary.LittleEndian, version)
	prev := mustHex(t, n.prevHash)
	for i := 0; i < 32; i += 4 {
		h.Write([]byte{prev[i+3], prev[i+2], prev[i+1], prev[i]})
	}
	h.Write(root)
	binary.Write(&h, binary.LittleEndian, beHex32(t, n.ntime))
	binary.Write(&h, binary.LittleEndian, beHex32(t, n.nbits))
	binary.Write(&h, binary.LittleEndian, nonce)
	return h.Bytes()
}

// hashValue is a header hash as the number that is compared with targets.
func hashValue(h []byte) *big.Int {
	sum := sha256dRef(h)
	for i, j := 0, len(sum)-1; i < j; i, j = i+1, j-1 {
		sum[i], sum[j] = sum[j], sum[i]
	}
	return new(big.Int).SetBytes(sum)
}

// compactToBig expands nbits per Bitcoin Core's SetCompact.
func compactToBig(bits uint32) *big.Int {
	mant := new(big.Int).SetUint64(uint64(bits & 0x007fffff))
	exp := int(bits >> 24)
	if exp >= 3 {
		return mant.Lsh(mant, uint(8*(exp-3)))
	}
	return mant.Rsh(mant, uint(8*(3-exp)))
}

// coinbaseTx is what the test's own reader finds in a serialized coinbase.
type coinbaseTx struct {
	version   uint32
	scriptSig []byte
	outputs   [][]byte // scriptPubKeys
}

// readCoinbase parses a legacy-serialized coinbase transaction (the form
// Stratum hashes: no witness) and fails unless it consumes every byte.
func readCoinbase(t testing.TB, b []byte) coinbaseTx {
	t.Helper()
	r := bytes.NewReader(b)
	fail := func(what string) { t.Fatalf("coinbase: %s (at byte %d of %d)", what, len(b)-r.Len(), len(b)) }
	u32 := func() uint32 {
		var v uint32
		if binary.Read(r, binary.LittleEndian, &v) != nil {
			fail("short uint32")
		}
		return v
	}
	varint := func() uint64 {
		c, err := r.ReadByte()
		if err != nil {
			fail("short varint")
		}
		switch c {
		case 0xfd:
			var v uint16
			binary.Read(r, binary.LittleEndian, &v)
			return uint64(v)
		case 0xfe:
			return uint64(u32())
		case 0xff:
			var v uint64
			binary.Read(r, binary.LittleEndian, &v)
			return v
		}
		return uint64(c)
	}
	bytesN := func(n uint64) []byte {
		if n > uint64(r.Len()) {
			fail("length past the end")
		}
		out := make([]byte, n)
		r.Read(out)
		return out
	}
	var tx coinbaseTx
	tx.version = u32()
	if varint() != 1 {
		fail("want exactly one input")
	}
	if prev := bytesN(36); !bytes.Equal(prev, append(make([]byte, 32), 0xff, 0xff, 0xff, 0xff)) {
		fail("input is not the coinbase outpoint")
	}
	tx.scriptSig = bytesN(varint())
	u32() // sequence
	for n := varint(); n > 0; n-- {
		bytesN(8) // value
		tx.outputs = append(tx.outputs, bytesN(varint()))
	}
	u32() // lock time
	if r.Len() != 0 {
		fail("trailing bytes")
	}
	return tx
}

// bip34Height reads the block height pushed first in a coinbase scriptSig.
func bip34Height(t testing.TB, script []byte) int64 {
	t.Helper()
	if len(script) == 0 || script[0] < 1 || script[0] > 8 || len(script) < 1+int(script[0]) {
		t.Fatalf("scriptSig %x does not start with a height push", script)
	}
	var h int64
	for i := int(script[0]); i >= 1; i-- {
		h = h<<8 | int64(script[i])
	}
	return h
}

// TestRecordedNotifies parses real notifies (public-pool and Braiins, both
// segwit) and checks every derived value against an independent
// computation.
func TestRecordedNotifies(t *testing.T) {
	for _, v := range loadRecordedNotifies(t) {
		t.Run(v.Name, func(t *testing.T) {
			raw := decodeRawNotify(t, v.Params)
			p, err := stratum.ParseNotify(v.Params)
			if err != nil {
				t.Fatal(err)
			}
			job, err := ParseJob(&p)
			if err != nil {
				t.Fatal(err)
			}
			if job.ID != raw.jobID || job.Clean != raw.clean || len(job.Branch) != len(raw.branch) {
				t.Errorf("job %q clean %v branch %d; want %q %v %d", job.ID, job.Clean, len(job.Branch), raw.jobID, raw.clean, len(raw.branch))
			}
			if job.Version != beHex32(t, raw.version) || job.NBits != beHex32(t, raw.nbits) || job.NTime != beHex32(t, raw.ntime) {
				t.Errorf("version/nbits/ntime %08x %08x %08x", job.Version, job.NBits, job.NTime)
			}

			// Word order of prevhash: the previous block's display hash is
			// the header-order bytes reversed, and it must meet the
			// network target of its own difficulty period (none of these
			// blocks is at a retarget boundary). A plain byte reversal of
			// the notify string would miss it by far.
			var disp [32]byte
			for i := range job.PrevHash {
				disp[i] = job.PrevHash[31-i]
			}
			if got := hex.EncodeToString(disp[:]); got != v.Expect.PrevBlockHash {
				t.Errorf("previous block hash %s, want %s", got, v.Expect.PrevBlockHash)
			}
			if new(big.Int).SetBytes(disp[:]).Cmp(compactToBig(job.NBits)) > 0 {
				t.Errorf("previous block hash %x does not meet nbits %08x", disp, job.NBits)
			}
			if got, want := leToInt(job.NetTarget), compactToBig(job.NBits); got.Cmp(want) != 0 {
				t.Errorf("network target %x, want %x", got, want)
			}

			// The coinbase with extranonces of the vector's sizes is a
			// whole, well-formed transaction: the extranonce slot sits
			// inside the scriptSig and the sizes agree with its length.
			en1 := mustHex(t, v.Extranonce1)
			en2 := bytes.Repeat([]byte{0x5a}, v.Extranonce2Size)
			cbHex := raw.coinb1 + v.Extranonce1 + hex.EncodeToString(en2) + raw.coinb2
			if got := hex.EncodeToString(job.Coinbase(en1, en2)); got != cbHex {
				t.Fatalf("coinbase\n got %s\nwant %s", got, cbHex)
			}
			tx := readCoinbase(t, mustHex(t, cbHex))
			if tx.version != v.Expect.CoinbaseVersion || len(tx.outputs) != v.Expect.CoinbaseOutputs {
				t.Errorf("coinbase version %d with %d outputs, want %d and %d", tx.version, len(tx.outputs), v.Expect.CoinbaseVersion, v.Expect.CoinbaseOutputs)
			}
			if len(tx.scriptSig) < 2 || len(tx.scriptSig) > 100 {
				t.Errorf("scriptSig of %d bytes", len(tx.scriptSig))
			}
			if !bytes.Contains(tx.scriptSig, append(append([]byte{}, en1...), en2...)) {
				t.Error("extranonce not inside the scriptSig")
			}
			if h := bip34Height(t, tx.scriptSig); h != v.Expect.Height {
				t.Errorf("BIP 34 height %d, want %d", h, v.Expect.Height)
			}
			commitment := false
			for _, out := range tx.outputs {
				if len(out) == 38 && bytes.HasPrefix(out, []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}) {
					commitment = true
				}
			}
			if commitment != v.Expect.WitnessCommitment {
				t.Errorf("witness commitment output present: %v", commitment)
			}

			// Merkle root and header, for the job's version and a rolled one.
			want := refHeader(t, raw, en1, en2, job.Version, 0x12345678)
			if root := job.MerkleRoot(en1, en2); !bytes.Equal(root[:], want[36:68]) {
				t.Errorf("merkle root %x, want %x", root, want[36:68])
			}
			for _, version := range []uint32{job.Version, job.Version | 0x1fffe000} {
				want := refHeader(t, raw, en1, en2, version, 0x12345678)
				if got := job.Header(en1, en2, version, job.NTime, 0x12345678); !bytes.Equal(got[:], want) {
					t.Errorf("header\n got %x\nwant %x", got, want)
				}
			}
		})
	}
}

// TestMineRecordedNotifies runs the whole work path (scheduler, CPU device,
// reference re-check) on real notifies with an easy target, and re-verifies
// every share found with the test's own header and hash code.
func TestMineRecordedNotifies(t *testing.T) {
	type vector struct {
		params  json.RawMessage
		en1     []byte
		en2Size int
	}
	vectors := map[string]vector{}
	for _, v := range loadRecordedNotifies(t) {
		vectors[v.Name] = vector{v.Params, mustHex(t, v.Extranonce1), v.Extranonce2Size}
	}
	for _, v := range loadVectors(t).Vectors {
		b, _ := json.Marshal(v.Notify)
		vectors[v.Name] = vector{b, []byte{1, 2, 3, 4}, 4}
	}
	const diff = 1.0 / (1 << 24) // ~1 share in 256 hashes
	for name, v := range vectors {
		t.Run(name, func(t *testing.T) {
			raw := decodeRawNotify(t, v.params)
			p, err := stratum.ParseNotify(v.params)
			if err != nil {
				t.Fatal(err)
			}
			job, err := ParseJob(&p)
			if err != nil {
				t.Fatal(err)
			}
			target, _ := DifficultyTarget(diff)
			// 2^10 nonces per header: the shares span several extranonce2
			// values, so their placement in the coinbase is checked too.
			sched := newScheduler(10, nil)
			rec := &jobRecord{job: job, target: target}
			sched.set(&template{job: job, en1: v.en1, en2Size: v.en2Size, rec: rec}, target)
			dev, err := NewCPUDevice(1, "", Slicing{Min: 256, Max: 256})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			col := &collector{}
			done := make(chan struct{})
			go func() { dev.Run(ctx, sched, col); close(done) }()
			deadline := time.After(testWait)
			for {
				col.mu.Lock()
				n := len(col.found)
				en2s := map[string]bool{}
				for _, c := range col.found {
					en2s[string(c.slice.Extranonce2)] = true
				}
				col.mu.Unlock()
				if n >= 8 && len(en2s) >= 2 {
					break
				}
				select {
				case <-deadline:
					cancel()
					t.Fatalf("%d shares found", n)
				case <-time.After(5 * time.Millisecond):
				}
			}
			cancel()
			<-done
			limit := refTarget(diff)
			for _, c := range col.found {
				if len(c.slice.Extranonce2) != v.en2Size || c.slice.Version != job.Version {
					t.Fatalf("slice extranonce2 %x version %08x", c.slice.Extranonce2, c.slice.Version)
				}
				h := refHeader(t, raw, v.en1, c.slice.Extranonce2, c.slice.Version, c.nonce)
				if hashValue(h).Cmp(limit) > 0 {
					t.Errorf("nonce %08x (extranonce2 %x) does not meet the target", c.nonce, c.slice.Extranonce2)
				}
				// And the miner's own check agrees on the same header.
				var hdr [80]byte
				copy(hdr[:], h)
				if _, ok := CheckShare(&hdr, &target); !ok {
					t.Errorf("CheckShare refuses nonce %08x", c.nonce)
				}
			}
		})
	}
}
