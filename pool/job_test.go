package pool

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
)

const regtestAddr = "bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt"

// fakeTx returns a syntactically valid transaction; witness ones carry a
// witness so their wtxid differs from their txid.
func fakeTx(i int, witness bool) *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	prev := chainhash.DoubleHashH([]byte(fmt.Sprintf("prev %d", i)))
	in := wire.NewTxIn(wire.NewOutPoint(&prev, uint32(i)), nil, nil)
	if witness {
		in.Witness = wire.TxWitness{bytes.Repeat([]byte{byte(i)}, 71), bytes.Repeat([]byte{2}, 33)}
	} else {
		in.SignatureScript = []byte{0x51}
	}
	tx.AddTxIn(in)
	tx.AddTxOut(wire.NewTxOut(int64(1000+i), []byte{0x51}))
	return tx
}

// hashOf parses a display-order hash for a template field.
func hashOf(t testing.TB, display string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHashFromStr(display)
	if err != nil {
		t.Fatal(err)
	}
	return *h
}

// merkleRoot is an independent, textbook merkle root over internal-order
// hashes, to check MerkleBranch against.
func merkleRoot(level [][32]byte) [32]byte {
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		next := make([][32]byte, 0, len(level)/2)
		for i := 0; i < len(level); i += 2 {
			next = append(next, pow.SHA256d(append(level[i][:], level[i+1][:]...)))
		}
		level = next
	}
	return level[0]
}

// testTemplate builds a regtest template with n transactions. With segwit
// the transactions carry witnesses and the template a real witness
// commitment, as a node would compute it.
func testTemplate(t testing.TB, height int64, n int, segwit bool) *node.Template {
	t.Helper()
	tmpl := &node.Template{
		Version:           0x20000000,
		PreviousBlockHash: hashOf(t, strings.Repeat("0", 8)+hex.EncodeToString(bytes.Repeat([]byte{0xab}, 28))),
		CoinbaseValue:     50_0000_0000 + int64(n)*1000,
		Bits:              0x207fffff,
		Height:            height,
		CurTime:           time.Now().Unix(),
		CoinbaseFlags:     []byte("/P2SH/btcd/"),
	}
	wtxids := [][32]byte{{}} // the coinbase's wtxid is zero by definition
	for i := range n {
		tx := fakeTx(i, segwit)
		var buf bytes.Buffer
		if err := tx.Serialize(&buf); err != nil {
			t.Fatal(err)
		}
		txid, wtxid := tx.TxHash(), tx.WitnessHash()
		tmpl.Transactions = append(tmpl.Transactions, node.TemplateTx{
			Data: hex.EncodeToString(buf.Bytes()), TxID: txid, Hash: wtxid, Fee: 1000,
		})
		wtxids = append(wtxids, wtxid)
	}
	if segwit {
		root := merkleRoot(wtxids)
		commitment := pow.SHA256d(append(root[:], make([]byte, 32)...))
		tmpl.WitnessCommitment = append([]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}, commitment[:]...)
	}
	return tmpl
}

func testJob(t testing.TB, tmpl *node.Template, seq uint64, tag string) *Job {
	t.Helper()
	script, err := payoutScript(regtestAddr, &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJob(tmpl, JobParams{
		ID: fmt.Sprintf("j%x", seq), Seq: seq, Clean: true, Tag: tag,
		Extranonce2Size: DefaultExtranonce2Size, Outputs: PoolOutputs(tmpl, script),
	})
	if err != nil {
		t.Fatalf("NewJob: %v", err)
	}
	if err := j.encodeLines(); err != nil {
		t.Fatal(err)
	}
	return j
}

// solve searches nonces until the share meets diffs' target for the job.
func solve(t testing.TB, book *JobBook, sub Submission, diffs *DifficultyLog) ShareResult {
	t.Helper()
	for nonce := uint32(0); nonce < 1_000_000; nonce++ {
		sub.Nonce = nonce
		res, err := book.CheckShare(&sub, diffs)
		if err == nil {
			return res
		}
		if err != ErrLowDifficulty {
			t.Fatalf("CheckShare: %v", err)
		}
	}
	t.Fatal("no share found")
	return ShareResult{}
}

func TestJobAssemblesValidBlock(t *testing.T) {
	for _, height := range []int64{1, 17, 500000} {
		for _, segwit := range []bool{false, true} {
			for n := range 4 {
				name := fmt.Sprintf("h%d/segwit=%v/txs=%d", height, segwit, n)
				t.Run(name, func(t *testing.T) {
					tmpl := testTemplate(t, height, n, segwit)
					checkAssembledBlock(t, tmpl)
				})
			}
		}
	}
}

func checkAssembledBlock(t *testing.T, tmpl *node.Template) {
	j := testJob(t, tmpl, 1, "/hashforge/")
	book := NewJobBook(4)
	book.Add(j)
	var diffs DifficultyLog
	en1 := []byte{7, 0, 0, 1}
	en2 := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	res := solve(t, book, Submission{JobID: j.ID, Extranonce1: en1, Extranonce2: en2, NTime: uint32(tmpl.CurTime)}, &diffs)
	if !res.IsBlock {
		t.Fatal("share at the network target is not a block")
	}

	raw, err := hex.DecodeString(j.blockHex(&res.Header, en1, en2, j.coinb2))
	if err != nil {
		t.Fatal(err)
	}
	var msg wire.MsgBlock
	if err := msg.Deserialize(bytes.NewReader(raw)); err != nil {
		t.Fatalf("block does not deserialise: %v", err)
	}
	if got := len(msg.Transactions); got != 1+len(tmpl.Transactions) {
		t.Fatalf("%d transactions", got)
	}
	if h := msg.BlockHash(); h.String() != res.BlockHash() {
		t.Fatalf("block hash %s, share hash %s", h, res.BlockHash())
	}
	block := btcutil.NewBlock(&msg)
	if root := blockchain.CalcMerkleRoot(block.Transactions(), false); root != msg.Header.MerkleRoot {
		t.Fatalf("merkle root %s, header has %s", root, msg.Header.MerkleRoot)
	}
	// The branch the miner folds must give the textbook root too.
	txids := [][32]byte{pow.SHA256d(j.Coinbase(en1, en2))}
	for _, tx := range msg.Transactions[1:] {
		txids = append(txids, tx.TxHash())
	}
	if merkleRoot(txids) != [32]byte(msg.Header.MerkleRoot) {
		t.Fatal("independent merkle root differs")
	}

	cb := msg.Transactions[0]
	if cb.TxHash() != chainhash.Hash(txids[0]) {
		t.Fatal("block coinbase txid differs from the one miners hash")
	}
	if n := len(cb.TxIn[0].SignatureScript); n < 2 || n > 100 {
		t.Fatalf("scriptSig of %d bytes", n)
	}
	if got, err := blockchain.ExtractCoinbaseHeight(btcutil.NewTx(cb)); err != nil || int64(got) != tmpl.Height {
		t.Fatalf("BIP 34 height %d, %v; want %d", got, err, tmpl.Height)
	}
	if cb.TxOut[0].Value != tmpl.CoinbaseValue {
		t.Fatalf("payout %d, want %d", cb.TxOut[0].Value, tmpl.CoinbaseValue)
	}
	if len(tmpl.WitnessCommitment) > 0 {
		w := cb.TxIn[0].Witness
		if len(w) != 1 || !bytes.Equal(w[0], make([]byte, 32)) {
			t.Fatalf("coinbase witness %x, want the 32-byte zero reserved value", w)
		}
		if err := blockchain.ValidateWitnessCommitment(block); err != nil {
			t.Fatalf("witness commitment: %v", err)
		}
	} else if cb.HasWitness() {
		t.Fatal("coinbase has a witness without a commitment")
	}
	if err := blockchain.CheckBlockSanity(block, chaincfg.RegressionNetParams.PowLimit, blockchain.NewMedianTime()); err != nil {
		t.Fatalf("block sanity: %v", err)
	}
}

func TestCoinbaseTagTruncated(t *testing.T) {
	tmpl := testTemplate(t, 500000, 0, false)
	for _, tag := range []string{"", "/x/", strings.Repeat("é", 100)} {
		j := testJob(t, tmpl, 1, tag)
		if j.scriptSigLen > 100 {
			t.Fatalf("tag %q: scriptSig %d bytes", tag, j.scriptSigLen)
		}
		cb := j.Coinbase(make([]byte, 4), make([]byte, 8))
		var tx wire.MsgTx
		if err := tx.Deserialize(bytes.NewReader(cb)); err != nil {
			t.Fatal(err)
		}
		ss := tx.TxIn[0].SignatureScript
		if len(ss) != j.scriptSigLen {
			t.Fatalf("scriptSig %d bytes, job says %d", len(ss), j.scriptSigLen)
		}
		if tag != "" && !bytes.Contains(ss, []byte(truncateTag(tag, 100))[:2]) {
			t.Fatalf("tag %q missing from scriptSig %x", tag, ss)
		}
		if len(tag) > 50 && len(ss) < 95 {
			t.Fatalf("long tag not filling the scriptSig: %d bytes", len(ss))
		}
	}
}

func TestNewJobRejectsBadOutputs(t *testing.T) {
	tmpl := testTemplate(t, 100, 1, true)
	script, _ := payoutScript(regtestAddr, &chaincfg.RegressionNetParams)
	if _, err := NewJob(tmpl, JobParams{ID: "a", Extranonce2Size: 8, Outputs: []TxOut{{tmpl.CoinbaseValue, script}}}); err == nil {
		t.Fatal("job without the witness commitment accepted")
	}
	outs := PoolOutputs(tmpl, script)
	outs[0].Value++
	if _, err := NewJob(tmpl, JobParams{ID: "a", Extranonce2Size: 8, Outputs: outs}); err == nil {
		t.Fatal("job overspending the coinbase accepted")
	}
}

func TestMerkleBranchAgainstTree(t *testing.T) {
	for n := 0; n <= 17; n++ {
		var txids [][32]byte
		for i := range n {
			txids = append(txids, pow.SHA256d([]byte{byte(i)}))
		}
		cb := pow.SHA256d([]byte("coinbase"))
		want := merkleRoot(append([][32]byte{cb}, txids...))
		if got := pow.FoldMerkleBranch(cb, pow.MerkleBranch(txids)); got != want {
			t.Fatalf("%d txs: folded root differs from the tree's", n)
		}
	}
}

func TestNotifyParams(t *testing.T) {
	tmpl := testTemplate(t, 300, 3, true)
	j := testJob(t, tmpl, 5, "")
	n := j.Notify(true)
	if n.PrevHash != func() string { s, _ := pow.NotifyPrevHash(tmpl.PreviousBlockHash.String()); return s }() {
		t.Fatal("prevhash not in notify word order")
	}
	if n.Version != "20000000" || n.NBits != "207fffff" || n.NTime != fmt.Sprintf("%08x", tmpl.CurTime) || !n.CleanJobs {
		t.Fatalf("notify fields %+v", n)
	}
	if len(n.MerkleBranch) != 2 {
		t.Fatalf("3 txs need a 2-entry branch, got %d", len(n.MerkleBranch))
	}
	if !strings.Contains(string(j.lineClean), `"mining.notify"`) || !strings.HasSuffix(string(j.lineNoClean), "false]}\n") {
		t.Fatalf("encoded lines %s / %s", j.lineClean, j.lineNoClean)
	}
}

func TestParseNetworkAndUsername(t *testing.T) {
	for _, name := range []string{"mainnet", "testnet", "signet", "regtest", "simnet"} {
		if _, err := ParseNetwork(name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if p, _ := ParseNetwork("testnet"); p.Name != "testnet3" {
		t.Fatalf("testnet is %s", p.Name)
	}
	if _, err := ParseNetwork("dogecoin"); err == nil {
		t.Fatal("unknown network accepted")
	}
	u, err := ParseUsername(regtestAddr+".rig.1", &chaincfg.RegressionNetParams)
	if err != nil || u.Address != regtestAddr || u.Worker != "rig.1" {
		t.Fatalf("ParseUsername = %+v, %v", u, err)
	}
	if _, err := ParseUsername("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.w", &chaincfg.RegressionNetParams); err == nil {
		t.Fatal("mainnet address accepted on regtest")
	}
	if _, err := ParseUsername("x.w", &chaincfg.RegressionNetParams); err == nil {
		t.Fatal("garbage address accepted")
	}
}
