package fixturenode

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/pow"
)

// witnessCommitmentHeader starts a BIP 141 commitment output: OP_RETURN, a
// 36-byte push, the aa21a9ed tag; the 32-byte commitment follows.
var witnessCommitmentHeader = []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}

// template is one block template, built once per tip: its JSON is what
// every getblocktemplate call until the next tip is answered with.
type template struct {
	prev          chainhash.Hash
	height        int64
	bits          uint32
	coinbaseValue int64
	merkleRoot    chainhash.Hash // of the template's transactions behind a stand-in coinbase, for synthetic headers
	longPollID    string
	// fees by txid: submitblock prices a block's coinbase from them and
	// refuses transactions the template never offered (a real node would
	// find their inputs missing).
	fees map[chainhash.Hash]int64
	// head is the result object without its closing brace: curtime,
	// which must be the clock at the call, is appended per call.
	head []byte
}

// gbtTx is a transaction as getblocktemplate lists it.
type gbtTx struct {
	Data    string `json:"data"`
	TxID    string `json:"txid"`
	Hash    string `json:"hash"`
	Depends []int  `json:"depends"`
	Fee     int64  `json:"fee"`
	SigOps  int    `json:"sigops"`
	Weight  int    `json:"weight"`
}

// gbtResult is getblocktemplate's answer as Bitcoin Core 27+ gives it,
// less curtime (see template.head).
type gbtResult struct {
	Capabilities             []string       `json:"capabilities"`
	Version                  int32          `json:"version"`
	Rules                    []string       `json:"rules"`
	VBAvailable              map[string]int `json:"vbavailable"`
	VBRequired               int            `json:"vbrequired"`
	PreviousBlockHash        string         `json:"previousblockhash"`
	Transactions             []gbtTx        `json:"transactions"`
	CoinbaseAux              map[string]any `json:"coinbaseaux"`
	CoinbaseValue            int64          `json:"coinbasevalue"`
	LongPollID               string         `json:"longpollid"`
	Target                   string         `json:"target"`
	MinTime                  int64          `json:"mintime"`
	Mutable                  []string       `json:"mutable"`
	NonceRange               string         `json:"noncerange"`
	SigOpLimit               int            `json:"sigoplimit"`
	SizeLimit                int            `json:"sizelimit"`
	WeightLimit              int            `json:"weightlimit"`
	Bits                     string         `json:"bits"`
	Height                   int64          `json:"height"`
	DefaultWitnessCommitment string         `json:"default_witness_commitment"`
}

// buildTemplate makes the template on top of prev (at height-1, with
// header time prevTime): n synthetic segwit transactions, distinct for
// every height, so each block's work and merkle branch are new.
func buildTemplate(prev chainhash.Hash, height, prevTime int64, bits uint32, n int, seq uint64) (*template, error) {
	target, err := pow.CompactToTarget(bits)
	if err != nil {
		return nil, fmt.Errorf("fixture bits: %w", err)
	}
	t := &template{
		prev:       prev,
		height:     height,
		bits:       bits,
		fees:       make(map[chainhash.Hash]int64, n),
		longPollID: prev.String() + strconv.FormatUint(seq, 10),
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:8], uint64(height))
	copy(seed[8:], prev[:24])
	rng := rand.New(rand.NewChaCha8(seed))

	txs := make([]gbtTx, n)
	txids := make([][32]byte, n)
	wtxids := make([][32]byte, n)
	var fees int64
	var buf bytes.Buffer
	for i := range txs {
		tx := syntheticTx(rng)
		buf.Reset()
		if err := tx.Serialize(&buf); err != nil {
			return nil, fmt.Errorf("serialize synthetic tx: %w", err)
		}
		txid, wtxid := tx.TxHash(), tx.WitnessHash()
		stripped, total := tx.SerializeSizeStripped(), tx.SerializeSize()
		weight := stripped*3 + total
		// 2 to 60 sat/vB, as a real mempool's spread.
		fee := int64((weight+3)/4) * (2 + rng.Int64N(59))
		txs[i] = gbtTx{Data: hex.EncodeToString(buf.Bytes()), TxID: txid.String(), Hash: wtxid.String(),
			Depends: []int{}, Fee: fee, SigOps: 1, Weight: weight}
		txids[i], wtxids[i] = txid, wtxid
		t.fees[txid] = fee
		fees += fee
	}
	t.coinbaseValue = subsidy(height) + fees
	// The coinbase's wtxid counts as zero (BIP 141).
	commitment := witnessCommitment(pow.FoldMerkleBranch([32]byte{}, pow.MerkleBranch(wtxids)), [32]byte{})
	t.merkleRoot = pow.FoldMerkleBranch(pow.SHA256d(seed[:]), pow.MerkleBranch(txids))

	r := gbtResult{
		Capabilities:             []string{"proposal"},
		Version:                  blockVersion,
		Rules:                    []string{"csv", "!segwit", "taproot"},
		VBAvailable:              map[string]int{},
		PreviousBlockHash:        prev.String(),
		Transactions:             txs,
		CoinbaseAux:              map[string]any{},
		CoinbaseValue:            t.coinbaseValue,
		LongPollID:               t.longPollID,
		Target:                   target.String(),
		MinTime:                  prevTime - 3600 + 1, // median time past of a chain with 10-minute blocks, +1
		Mutable:                  []string{"time", "transactions", "prevblock"},
		NonceRange:               "00000000ffffffff",
		SigOpLimit:               80000,
		SizeLimit:                4000000,
		WeightLimit:              4000000,
		Bits:                     fmt.Sprintf("%08x", bits),
		Height:                   height,
		DefaultWitnessCommitment: hex.EncodeToString(append(bytes.Clone(witnessCommitmentHeader), commitment[:]...)),
	}
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode template: %w", err)
	}
	t.head = js[:len(js)-1]
	return t, nil
}

// result is the template's JSON with curtime set to now.
func (t *template) result(now int64) []byte {
	b := make([]byte, 0, len(t.head)+32)
	b = append(b, t.head...)
	b = append(b, `,"curtime":`...)
	b = strconv.AppendInt(b, now, 10)
	return append(b, '}')
}

// syntheticTx is a well-formed one-input, two-output P2WPKH spend of a
// made-up outpoint, the shape of most of a real block: a witness (so the
// wtxid differs from the txid) of a 71-byte signature and a 33-byte key.
func syntheticTx(rng *rand.Rand) *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	var prev chainhash.Hash
	fill(rng, prev[:])
	sig, key := make([]byte, 71), make([]byte, 33)
	fill(rng, sig)
	fill(rng, key)
	sig[0], sig[70], key[0] = 0x30, 0x01, 0x02 // DER sequence, SIGHASH_ALL, even key
	in := wire.NewTxIn(wire.NewOutPoint(&prev, rng.Uint32N(4)), nil, wire.TxWitness{sig, key})
	in.Sequence = 0xfffffffd
	tx.AddTxIn(in)
	for range 2 {
		script := make([]byte, 22)
		script[0], script[1] = 0x00, 0x14
		fill(rng, script[2:])
		tx.AddTxOut(wire.NewTxOut(1000+rng.Int64N(10_000_000), script))
	}
	return tx
}

func fill(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
}

// witnessCommitment is BIP 141's commitment: sha256d(witness root ‖
// witness reserved value).
func witnessCommitment(root, reserved [32]byte) [32]byte {
	var b [64]byte
	copy(b[:32], root[:])
	copy(b[32:], reserved[:])
	return pow.SHA256d(b[:])
}

// subsidy is mainnet's block subsidy at height.
func subsidy(height int64) int64 {
	halvings := height / 210_000
	if halvings >= 64 {
		return 0
	}
	return 50_0000_0000 >> halvings
}
