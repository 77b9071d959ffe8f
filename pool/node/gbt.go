package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// witnessCommitmentHeader starts the coinbase output that commits to the
// block's witnesses (BIP 141): OP_RETURN, a 36-byte push, then the
// commitment header aa21a9ed before the 32-byte commitment hash.
var witnessCommitmentHeader = []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}

// gbtResult is getblocktemplate's answer, with the fields of both node
// families (btcd omits rules and, in non-witness templates,
// default_witness_commitment; old nodes omit txid).
type gbtResult struct {
	Version           int32    `json:"version"`
	Rules             []string `json:"rules"`
	PreviousBlockHash string   `json:"previousblockhash"`
	Transactions      []gbtTx  `json:"transactions"`
	CoinbaseAux       *struct {
		Flags string `json:"flags"`
	} `json:"coinbaseaux"`
	CoinbaseValue            *int64 `json:"coinbasevalue"`
	LongPollID               string `json:"longpollid"`
	MinTime                  int64  `json:"mintime"`
	MaxTime                  int64  `json:"maxtime"`
	CurTime                  int64  `json:"curtime"`
	Bits                     Bits   `json:"bits"`
	Height                   int64  `json:"height"`
	DefaultWitnessCommitment string `json:"default_witness_commitment"`
	SignetChallenge          string `json:"signet_challenge"`
}

type gbtTx struct {
	Data string `json:"data"`
	TxID string `json:"txid"`
	Hash string `json:"hash"`
	Fee  int64  `json:"fee"`
}

// parseTemplate normalises a getblocktemplate result into a Template and
// rejects templates a job could not be built from: working on a template
// with a malformed field would waste the pool's hashrate on invalid blocks.
func parseTemplate(raw []byte) (*Template, error) {
	var r gbtResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode template: %w", err)
	}
	if r.CoinbaseValue == nil {
		return nil, errors.New("template has no coinbasevalue (a coinbasetxn-only node is not supported)")
	}
	if *r.CoinbaseValue < 0 {
		return nil, fmt.Errorf("template coinbasevalue %d is negative", *r.CoinbaseValue)
	}
	prev, err := parseHash("template previousblockhash", r.PreviousBlockHash)
	if err != nil {
		return nil, err
	}
	if r.Height <= 0 {
		return nil, fmt.Errorf("template height %d", r.Height)
	}
	if r.Bits == 0 {
		return nil, errors.New("template has no bits")
	}
	wc, err := normaliseWitnessCommitment(r.DefaultWitnessCommitment)
	if err != nil {
		return nil, err
	}
	t := &Template{
		Version:           r.Version,
		PreviousBlockHash: prev,
		CoinbaseValue:     *r.CoinbaseValue,
		Bits:              uint32(r.Bits),
		Height:            r.Height,
		CurTime:           r.CurTime,
		MinTime:           r.MinTime,
		MaxTime:           r.MaxTime,
		WitnessCommitment: wc,
		LongPollID:        r.LongPollID,
		Rules:             r.Rules,
		SignetChallenge:   strings.ToLower(r.SignetChallenge),
		Transactions:      make([]TemplateTx, 0, len(r.Transactions)),
	}
	if r.CoinbaseAux != nil && r.CoinbaseAux.Flags != "" {
		if t.CoinbaseFlags, err = hex.DecodeString(r.CoinbaseAux.Flags); err != nil {
			return nil, fmt.Errorf("template coinbaseaux flags %q: %w", r.CoinbaseAux.Flags, err)
		}
	}
	for i, tx := range r.Transactions {
		ttx, err := normaliseTx(tx)
		if err != nil {
			return nil, fmt.Errorf("template transaction %d: %w", i, err)
		}
		t.Transactions = append(t.Transactions, ttx)
	}
	return t, nil
}

// normaliseTx fills in the txid and wtxid a node left out by decoding the
// transaction itself. Bitcoin Core before 0.13 sent only "hash", which was
// then the txid; that ambiguity is why both come from the data when txid
// is missing.
func normaliseTx(tx gbtTx) (TemplateTx, error) {
	if tx.Data == "" {
		return TemplateTx{}, errors.New("no data")
	}
	raw, err := hex.DecodeString(tx.Data)
	if err != nil {
		return TemplateTx{}, fmt.Errorf("data is not hex: %w", err)
	}
	out := TemplateTx{Data: strings.ToLower(tx.Data), Fee: tx.Fee}
	if tx.TxID != "" {
		if out.TxID, err = parseHash("txid", tx.TxID); err != nil {
			return TemplateTx{}, err
		}
		if isHash(tx.Hash) {
			out.Hash, err = parseHash("hash", tx.Hash)
			return out, err
		}
	}
	var msg wire.MsgTx
	if err := msg.Deserialize(bytes.NewReader(raw)); err != nil {
		return TemplateTx{}, fmt.Errorf("decode data: %w", err)
	}
	if tx.TxID == "" {
		out.TxID = msg.TxHash()
	}
	out.Hash = msg.WitnessHash()
	return out, nil
}

// normaliseWitnessCommitment returns the full commitment output script from
// either form nodes send: Bitcoin Core's whole script, or btcd's bare
// 32-byte commitment hash.
func normaliseWitnessCommitment(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("default_witness_commitment %q is not hex: %w", s, err)
	}
	switch {
	case len(b) == 32:
		return append(bytes.Clone(witnessCommitmentHeader), b...), nil
	case len(b) == len(witnessCommitmentHeader)+32 && bytes.HasPrefix(b, witnessCommitmentHeader):
		return b, nil
	default:
		return nil, fmt.Errorf("default_witness_commitment %q is neither a 32-byte hash nor a 6a24aa21a9ed commitment script", s)
	}
}

// Bits is a compact target as nodes print it in JSON: a hex string that
// btcd writes without leading zeros, so it may be shorter than 8 digits.
// It is parsed once, when the reply is decoded.
type Bits uint32

// UnmarshalJSON reads the hex string form.
func (b *Bits) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("bits: %w", err)
	}
	if s == "" || len(s) > 8 {
		return fmt.Errorf("bits %q is not a compact target", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return fmt.Errorf("bits %q: %w", s, err)
	}
	if v == 0 {
		return errors.New("bits are zero")
	}
	*b = Bits(v)
	return nil
}

// parseHash decodes a display-order hash of exactly 64 hex digits.
func parseHash(what, s string) (chainhash.Hash, error) {
	if !isHash(s) {
		return chainhash.Hash{}, fmt.Errorf("%s %q is not a 32-byte hex hash", what, s)
	}
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("%s %q: %w", what, s, err)
	}
	return *h, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
