package worker

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

type vectorFile struct {
	Diff1   string `json:"diff1_target_hex"`
	Vectors []struct {
		Name          string               `json:"name"`
		SetDifficulty float64              `json:"set_difficulty"`
		Notify        stratum.NotifyParams `json:"notify"`
		Extranonce1   string               `json:"extranonce1"`
		Subscribe     json.RawMessage      `json:"subscribe_result"`
		Submit        []string             `json:"submit"`
		Expect        map[string]any       `json:"expect"`
	} `json:"vectors"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("../testdata/stratum.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaderFromRecordedShare(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range vf.Vectors {
		if v.Submit == nil {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			job, err := ParseJob(&v.Notify)
			if err != nil {
				t.Fatal(err)
			}
			en1 := v.Extranonce1
			if en1 == "" {
				sub, err := stratum.ParseSubscribeResult(v.Subscribe)
				if err != nil {
					t.Fatal(err)
				}
				en1 = sub.Extranonce1
			}
			en2 := mustHex(t, v.Submit[2])
			ntime, err := parseHexUint32("ntime", v.Submit[3])
			if err != nil {
				t.Fatal(err)
			}
			nonce, err := parseHexUint32("nonce", v.Submit[4])
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := v.Expect["coinbase_hex"].(string); ok {
				if got := hex.EncodeToString(job.Coinbase(mustHex(t, en1), en2)); got != want {
					t.Errorf("coinbase\n got %s\nwant %s", got, want)
				}
			}
			root := job.MerkleRoot(mustHex(t, en1), en2)
			if got, want := hex.EncodeToString(root[:]), v.Expect["merkle_root_header_order"]; got != want {
				t.Errorf("merkle root %s, want %s", got, want)
			}
			h := job.Header(mustHex(t, en1), en2, job.Version, ntime, nonce)
			if got, want := hex.EncodeToString(h[:]), v.Expect["header_hex"]; got != want {
				t.Fatalf("header\n got %s\nwant %s", got, want)
			}
			hash, _ := CheckShare(&h, &[32]byte{})
			if got, want := pow.HashString(&hash), v.Expect["block_hash"]; got != want {
				t.Errorf("hash %s, want %s", got, want)
			}
			if v.SetDifficulty > 0 {
				target, err := DifficultyTarget(v.SetDifficulty)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := CheckShare(&h, &target); !ok {
					t.Errorf("share check refuses the recorded share at difficulty %v", v.SetDifficulty)
				}
				// The same share one nonce later is (overwhelmingly) not a share.
				h2 := job.Header(mustHex(t, en1), en2, job.Version, ntime, nonce+1)
				if _, ok := CheckShare(&h2, &target); ok {
					t.Errorf("share check accepts a neighbouring nonce")
				}
			}
		})
	}
}

func TestSlushPrevHashOrder(t *testing.T) {
	vf := loadVectors(t)
	for _, v := range vf.Vectors {
		if v.Name != "slush-example" {
			continue
		}
		job, err := ParseJob(&v.Notify)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := hex.EncodeToString(job.PrevHash[:]), v.Expect["prevhash_header_order"]; got != want {
			t.Errorf("prevhash %s, want %s", got, want)
		}
		return
	}
	t.Fatal("slush-example vector missing")
}

// diff1 / d computed independently with a 512-bit big.Float.
func refTarget(d float64) *big.Int {
	one := new(big.Int).Lsh(big.NewInt(0xffff), 208)
	q := new(big.Float).SetPrec(1024).Quo(new(big.Float).SetPrec(1024).SetInt(one), new(big.Float).SetPrec(1024).SetFloat64(d))
	i, _ := q.Int(nil)
	return i
}

func leToInt(b [32]byte) *big.Int {
	var be [32]byte
	for i := range b {
		be[i] = b[31-i]
	}
	return new(big.Int).SetBytes(be[:])
}

func TestDifficultyTarget(t *testing.T) {
	vf := loadVectors(t)
	for _, d := range []float64{1, 2, 0.5, 3, 1e-9, 0.00010626837930860896, 1.0 / 3, 65536, 1e12, 123456.789, math.SmallestNonzeroFloat64 * 1e300} {
		got, err := DifficultyTarget(d)
		if err != nil {
			t.Fatal(err)
		}
		want := refTarget(d)
		if want.BitLen() > 256 {
			want = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
		}
		if leToInt(got).Cmp(want) != 0 {
			t.Errorf("diff %v: target %x, want %x", d, leToInt(got), want)
		}
	}
	one, _ := DifficultyTarget(1)
	if got := hex.EncodeToString(leToInt(one).FillBytes(make([]byte, 32))); got != vf.Diff1 {
		t.Errorf("diff 1 target %s, want %s", got, vf.Diff1)
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := DifficultyTarget(bad); err == nil {
			t.Errorf("difficulty %v accepted", bad)
		}
	}
	if d := pow.TargetToDifficulty(pow.TargetFromHash(&one)); math.Abs(d-1) > 1e-12 {
		t.Errorf("targetDifficulty(diff1) = %v", d)
	}
}

func TestVersionBits(t *testing.T) {
	const mask = 0x1fffe000
	seen := map[uint32]bool{}
	for n := uint64(0); n < 1<<16; n++ {
		v := versionBits(n, mask)
		if v&^mask != 0 {
			t.Fatalf("bits %08x outside mask", v)
		}
		if seen[v] {
			t.Fatalf("value %08x repeated", v)
		}
		seen[v] = true
	}
}

// collector records what a device produces.
type collector struct {
	mu     sync.Mutex
	found  []candidate
	hashes uint64
}

func (c *collector) Found(s *Slice, n uint32) {
	c.mu.Lock()
	c.found = append(c.found, candidate{s, n})
	c.mu.Unlock()
}
func (c *collector) HWErrors(uint64) {}

func (c *collector) Hashed(n uint64) {
	c.mu.Lock()
	c.hashes += n
	c.mu.Unlock()
}

func TestNetTarget(t *testing.T) {
	for bits, want := range map[uint32]string{
		0x207fffff: "7fffff0000000000000000000000000000000000000000000000000000000000",
		0x1d00ffff: "00000000ffff0000000000000000000000000000000000000000000000000000",
		0x02123456: "0000000000000000000000000000000000000000000000000000000000001234",
		0x04923456: strings.Repeat("0", 64), // negative
		0x22123456: strings.Repeat("0", 64), // overflows
	} {
		got := netTarget(bits)
		if be := hex.EncodeToString(leToInt(got).FillBytes(make([]byte, 32))); be != want {
			t.Errorf("netTarget(%08x) = %s, want %s", bits, be, want)
		}
	}
}
