package pow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"testing"
)

// Vectors pinned from the repository's testdata/headers.json (real mainnet
// headers) and testdata/stratum.json (a share a real miner found on
// regtest, a computed 3-entry branch, slush's protocol example).

var headerVectors = []struct {
	name, header, sha256d, display string
	nonce                          uint32
}{
	{
		name:    "genesis",
		header:  "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
		sha256d: "6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000",
		display: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
		nonce:   2083236893,
	},
	{
		name:    "block125552",
		header:  "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695",
		sha256d: "1dbd981fe6985776b644b173a4d0385ddc1aa2a829688d1e0000000000000000",
		display: "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
		nonce:   2504433986,
	},
}

// stratumVectors: a job's notify fields, the share submitted for it, and
// what it must give.
var stratumVectors = []struct {
	name                               string
	notifyPrev, coinb1, coinb2         string
	branch                             []string
	version, nbits, en1, en2, ntime    string
	nonce                              string
	txid, root, header, hash, nextPrev string
}{
	{
		name:       "real-miner-share-regtest",
		notifyPrev: "092cfaedffd05c1ce96dcbcdd2c98b45bc63e28df671a6d12411cad70000001d",
		coinb1:     "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3201320b2f503253482f627463642f049f48066b0c00000000",
		coinb2:     "112f676f506f6f6c2f717047652d4f4e7a6800000000030000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf90011102401000000160014caa8fe5b0c592fca08b70f3b7d821ea4dbfbd62c00e1f5050000000016001427cac5503836765cd10751d27ab4a6e17d7a80d400000000",
		version:    "20000000", nbits: "207fffff", en1: "00000028", en2: "00000000", ntime: "6b06489e", nonce: "8b2c0300",
		txid:     "e29ecefaf0dc84cb7b9417c13c12d3e6220430b30d1bf48104d39d2e705d58d4",
		root:     "d4585d702e9dd30481f41b0db3300422e6d3123cc117947bcb84dcf0face9ee2",
		header:   "00000020edfa2c091c5cd0ffcdcb6de9458bc9d28de263bcd1a671f6d7ca11241d000000d4585d702e9dd30481f41b0db3300422e6d3123cc117947bcb84dcf0face9ee29e48066bffff7f2000032c8b",
		hash:     "00001d695093b51a7a0a2693225dc27bb9a46bbdeeb9f85bd94e14a3c912206d",
		nextPrev: "c912206dd94e14a3eeb9f85bb9a46bbd225dc27b7a0a26935093b51a00001d69",
	},
	{
		name:       "computed-branch-of-3",
		notifyPrev: "092cfaedffd05c1ce96dcbcdd2c98b45bc63e28df671a6d12411cad70000001d",
		coinb1:     "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3201320b2f503253482f627463642f049f48066b0c00000000",
		coinb2:     "112f676f506f6f6c2f717047652d4f4e7a6800000000030000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf90011102401000000160014caa8fe5b0c592fca08b70f3b7d821ea4dbfbd62c00e1f5050000000016001427cac5503836765cd10751d27ab4a6e17d7a80d400000000",
		branch: []string{
			"709b55bd3da0f5a838125bd0ee20c5bfdd7caba173912d4281cae816b79a201b",
			"27ca64c092a959c7edc525ed45e845b1de6a7590d173fd2fad9133c8a779a1e3",
			"1f3cb18e896256d7d6bb8c11a6ec71f005c75de05e39beae5d93bbd1e2c8b7a9",
		},
		version: "20000000", nbits: "207fffff", en1: "00000028", en2: "0a0b0c0d", ntime: "6b0648a0", nonce: "00000001",
		txid:   "6ac2e9fedca7aef727df67ba524e5ba6e4a927bec2d293f97b3cf635e65c207f",
		root:   "1671097be589502a48b7d973069389ba5383ec9fd5f06365435a36dd24cd5734",
		header: "00000020edfa2c091c5cd0ffcdcb6de9458bc9d28de263bcd1a671f6d7ca11241d0000001671097be589502a48b7d973069389ba5383ec9fd5f06365435a36dd24cd5734a048066bffff7f2001000000",
		hash:   "6e052a5ef47b39b2fcfca3e23ebcc0327e99e88615c6fd78dc020130574021df",
	},
}

// unhex and be32 decode the vectors' hex; be32 reads Stratum's big-endian
// uint32 fields.
func unhex(t testing.TB, s string) []byte {
	if b, err := hex.DecodeString(s); err == nil {
		return b
	}
	t.Fatalf("bad hex %q", s)
	return nil
}

func be32(t testing.TB, s string) uint32 { return binary.BigEndian.Uint32(unhex(t, s)) }

func TestHeaderVectors(t *testing.T) {
	for _, v := range headerVectors {
		t.Run(v.name, func(t *testing.T) {
			hdr := [80]byte(unhex(t, v.header))
			sum := SHA256d(hdr[:])
			if got := hex.EncodeToString(sum[:]); got != v.sha256d {
				t.Fatalf("sha256d %s, want %s", got, v.sha256d)
			}
			if got := HashString(&sum); got != v.display {
				t.Fatalf("display %s, want %s", got, v.display)
			}
			if back, err := ParseHash(v.display); err != nil || back != sum {
				t.Fatalf("ParseHash(%s) = %x, %v", v.display, back, err)
			}
			bits := binary.LittleEndian.Uint32(hdr[72:])
			target, err := CompactToTarget(bits)
			if err != nil {
				t.Fatal(err)
			}
			if !HashMeets(&sum, target) {
				t.Fatal("a mined header does not meet its own target")
			}
			if nonce := binary.LittleEndian.Uint32(hdr[76:]); nonce != v.nonce {
				t.Fatalf("nonce %d, want %d", nonce, v.nonce)
			}
			// Reassemble the header from its fields.
			var prev, root [32]byte
			copy(prev[:], hdr[4:36])
			copy(root[:], hdr[36:68])
			var again [80]byte
			PutHeader(&again, binary.LittleEndian.Uint32(hdr[0:]), &prev, &root,
				binary.LittleEndian.Uint32(hdr[68:]), bits, v.nonce)
			if again != hdr {
				t.Fatalf("PutHeader gave %x", again)
			}
		})
	}
}

func TestStratumVectors(t *testing.T) {
	for _, v := range stratumVectors {
		t.Run(v.name, func(t *testing.T) {
			cb := unhex(t, v.coinb1+v.en1+v.en2+v.coinb2)
			txid := SHA256d(cb)
			if got := HashString(&txid); got != v.txid {
				t.Fatalf("coinbase txid %s, want %s", got, v.txid)
			}
			branch := make([][32]byte, len(v.branch))
			for i, b := range v.branch {
				branch[i] = [32]byte(unhex(t, b))
			}
			root := FoldMerkleBranch(txid, branch)
			if got := hex.EncodeToString(root[:]); got != v.root {
				t.Fatalf("merkle root %s, want %s", got, v.root)
			}
			prev := [32]byte(unhex(t, v.notifyPrev))
			SwapWords(&prev)
			var h [80]byte
			PutHeader(&h, be32(t, v.version), &prev, &root, be32(t, v.ntime), be32(t, v.nbits), be32(t, v.nonce))
			if got := hex.EncodeToString(h[:]); got != v.header {
				t.Fatalf("header\n got %s\nwant %s", got, v.header)
			}
			sum := SHA256d(h[:])
			if got := HashString(&sum); got != v.hash {
				t.Fatalf("block hash %s, want %s", got, v.hash)
			}
			if v.nextPrev == "" {
				return
			}
			// The next job's prevhash is this block: it pins the word order.
			if got, err := NotifyPrevHash(v.hash); err != nil || got != v.nextPrev {
				t.Fatalf("NotifyPrevHash = %s, %v; want %s", got, err, v.nextPrev)
			}
			if got, err := PrevHashFromNotify(v.nextPrev); err != nil || got != v.hash {
				t.Fatalf("PrevHashFromNotify = %s, %v; want %s", got, err, v.hash)
			}
			target, _ := CompactToTarget(be32(t, v.nbits))
			if !HashMeets(&sum, target) {
				t.Fatal("the block share does not meet its network target")
			}
		})
	}
}

// slush's protocol example: notify prevhash, header order and display order.
func TestSlushPrevHash(t *testing.T) {
	const (
		notify  = "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000"
		header  = "f8b6164d19e2f65a2aae448f787fe66d61e57a48c0c6771b1e920b4400000000"
		display = "00000000440b921e1b77c6c0487ae5616de67f788f44ae2a5af6e2194d16b6f8"
	)
	if got, err := NotifyPrevHash(display); err != nil || got != notify {
		t.Fatalf("NotifyPrevHash = %s, %v; want %s", got, err, notify)
	}
	if got, err := PrevHashFromNotify(notify); err != nil || got != display {
		t.Fatalf("PrevHashFromNotify = %s, %v; want %s", got, err, display)
	}
	h := [32]byte(unhex(t, notify))
	SwapWords(&h)
	if got := hex.EncodeToString(h[:]); got != header {
		t.Fatalf("header order %s, want %s", got, header)
	}
	if p, err := ParseHash(display); err != nil || p != h {
		t.Fatalf("ParseHash = %x, %v", p, err)
	}
	for _, bad := range []string{"", "00", display + "00", "zz" + display[2:]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
		if _, err := PrevHashFromNotify(bad); err == nil {
			t.Errorf("PrevHashFromNotify(%q) accepted", bad)
		}
	}
}

// merkleRoot builds the whole tree the textbook way, coinbase included.
func merkleRoot(leaves [][32]byte) [32]byte {
	level := append([][32]byte(nil), leaves...)
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		next := make([][32]byte, len(level)/2)
		for i := range next {
			next[i] = SHA256d(append(level[2*i][:], level[2*i+1][:]...))
		}
		level = next
	}
	return level[0]
}

func TestMerkleBranchMatchesTree(t *testing.T) {
	for n := 0; n <= 17; n++ {
		leaves := make([][32]byte, n+1)
		for i := range leaves {
			leaves[i] = SHA256d([]byte{byte(i), byte(n)})
		}
		branch := MerkleBranch(leaves[1:])
		if got, want := FoldMerkleBranch(leaves[0], branch), merkleRoot(leaves); got != want {
			t.Fatalf("%d txs: root %x, want %x", n, got, want)
		}
	}
}

func TestDiff1(t *testing.T) {
	d1, err := DifficultyToTarget(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := d1.String(); got != "00000000ffff0000000000000000000000000000000000000000000000000000" {
		t.Fatalf("diff1 target %s", got)
	}
	if got := TargetToDifficulty(d1); got != 1 {
		t.Fatalf("difficulty of diff1 = %v", got)
	}
	if c, err := CompactToTarget(0x1d00ffff); err != nil || c != d1 {
		t.Fatalf("1d00ffff = %s, %v", c, err)
	}
	h := d1.Hash()
	if TargetFromHash(&h) != d1 || h[26] != 0xff || h[27] != 0xff || h[28] != 0 {
		t.Fatalf("diff1 in hash order %x", h)
	}
}

// DifficultyToTarget is floor(diff1/d) exactly, for every float64.
func TestDifficultyToTargetExact(t *testing.T) {
	for _, d := range []float64{1, 2, 3, 0.5, 1e-9, 0.00010626837930860896, 65536, 1.5e12, 1e300, 1e-300, math.SmallestNonzeroFloat64, math.MaxFloat64, 7} {
		got, err := DifficultyToTarget(d)
		if err != nil {
			t.Fatal(err)
		}
		r := new(big.Rat).SetFloat64(d)
		want := new(big.Int).Mul(diff1, r.Denom())
		want.Quo(want, r.Num())
		if want.Cmp(maxTarget) > 0 {
			want = maxTarget
		}
		if got.Big().Cmp(want) != 0 {
			t.Errorf("d=%v: %s, want %064x", d, got, want)
		}
		if d >= 1e-9 && d <= 1e12 {
			if back := TargetToDifficulty(got); math.Abs(back-d)/d > 1e-9 {
				t.Errorf("d=%v: back %v", d, back)
			}
		}
	}
	for _, d := range []float64{0, -1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := DifficultyToTarget(d); !errors.Is(err, ErrDifficulty) {
			t.Errorf("d=%v: err %v", d, err)
		}
	}
	if !math.IsInf(TargetToDifficulty(Target{}), 1) {
		t.Error("zero target is not infinitely hard")
	}
}

func TestCompactToTarget(t *testing.T) {
	for _, c := range []struct {
		bits uint32
		want string // 64 hex digits, or "" for an error
	}{
		{0x1d00ffff, "00000000ffff0000000000000000000000000000000000000000000000000000"},
		{0x207fffff, "7fffff0000000000000000000000000000000000000000000000000000000000"},
		{0x1b0404cb, "00000000000404cb000000000000000000000000000000000000000000000000"},
		{0x03123456, "0000000000000000000000000000000000000000000000000000000000123456"},
		{0x02123456, "0000000000000000000000000000000000000000000000000000000000001234"},
		{0x01003456, ""}, // shifts to zero
		{0x04923456, ""}, // negative
		{0x1d000000, ""}, // zero
		{0x21010000, ""}, // overflows
		{0xff123456, ""},
	} {
		got, err := CompactToTarget(c.bits)
		switch {
		case c.want == "" && !errors.Is(err, ErrBits):
			t.Errorf("%08x: %s, %v; want an error", c.bits, got, err)
		case c.want != "" && (err != nil || got.String() != c.want):
			t.Errorf("%08x: %s, %v; want %s", c.bits, got, err, c.want)
		}
	}
}

func TestTargetOrder(t *testing.T) {
	a := Target{0, 1, 0, 0}
	b := Target{0, 0, ^uint64(0), ^uint64(0)}
	if !b.Less(a) || a.Less(b) || a.Less(a) {
		t.Fatal("Less")
	}
	h := a.Hash()
	if !HashMeets(&h, a) || HashMeets(&h, b) {
		t.Fatal("HashMeets at the boundary")
	}
	if !bytes.Equal(TargetFromBig(a.Big()).Big().Bytes(), a.Big().Bytes()) {
		t.Fatal("big round trip")
	}
	if TargetFromBig(big.NewInt(-5)) != (Target{}) {
		t.Fatal("negative does not saturate at zero")
	}
	if TargetFromBig(new(big.Int).Lsh(big.NewInt(1), 300)) != (Target{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}) {
		t.Fatal("huge does not saturate at 2^256-1")
	}
	if d := HashDifficulty(&h); d != TargetToDifficulty(a) {
		t.Fatalf("HashDifficulty %v", d)
	}
}

func TestNoAllocs(t *testing.T) {
	var h [80]byte
	var branch = make([][32]byte, 12)
	target := Target{0, ^uint64(0), 0, 0}
	n := testing.AllocsPerRun(100, func() {
		sum := SHA256d(h[:])
		root := FoldMerkleBranch(sum, branch)
		PutHeader(&h, 1, &sum, &root, 2, 3, 4)
		_ = HashMeets(&root, target)
		_ = HashDifficulty(&root)
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkSHA256dHeader(b *testing.B) {
	var h [80]byte
	for b.Loop() {
		h[76]++
		_ = SHA256d(h[:])
	}
}
