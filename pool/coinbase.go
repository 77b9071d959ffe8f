package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hashforge/hashforge/pool/node"
)

const (
	// Extranonce1Size is fixed: one byte of node id plus a three-byte
	// session counter (see Config.NodeID).
	Extranonce1Size = 4

	// DefaultExtranonce2Size leaves a miner 2^64 coinbase variants per job,
	// more than any ASIC farm can exhaust between jobs.
	DefaultExtranonce2Size = 8

	// maxScriptSigSize is the consensus limit on a coinbase scriptSig.
	maxScriptSigSize = 100

	// coinbaseTxVersion 1 keeps the coinbase identical across node
	// families; the version of a coinbase has no consensus meaning.
	coinbaseTxVersion = 1
)

// TxOut is one coinbase output. Coinbase outputs are a parameter of a job
// rather than a constant of the pool so that a payout scheme can pay miners
// directly from the coinbase (SOLO builds a coinb2 per session).
type TxOut struct {
	Value  int64 // satoshis
	Script []byte
}

// PoolOutputs returns the coinbase outputs of a shared-reward job: the whole
// coinbase value to the pool's payout script, then the template's witness
// commitment when there is one.
func PoolOutputs(t *node.Template, payoutScript []byte) []TxOut {
	outs := []TxOut{{Value: t.CoinbaseValue, Script: payoutScript}}
	if len(t.WitnessCommitment) > 0 {
		outs = append(outs, TxOut{Value: 0, Script: t.WitnessCommitment})
	}
	return outs
}

// BIP34Height returns the scriptSig push of a block height as BIP 34 and
// consensus (CScript << height) want it: OP_0 for 0, OP_1…OP_16 for 1–16,
// otherwise the minimal little-endian script number with a sign byte. A
// plain data push for small heights is rejected by btcd.
func BIP34Height(height int64) []byte {
	switch {
	case height == 0:
		return []byte{0x00} // OP_0
	case height >= 1 && height <= 16:
		return []byte{byte(0x50 + height)} // OP_1 = 0x51
	}
	neg := height < 0
	v := uint64(height)
	if neg {
		v = uint64(-height)
	}
	var num []byte
	for v > 0 {
		num = append(num, byte(v))
		v >>= 8
	}
	// A set top bit would read back as negative: add a sign byte.
	if num[len(num)-1]&0x80 != 0 {
		if neg {
			num = append(num, 0x80)
		} else {
			num = append(num, 0x00)
		}
	} else if neg {
		num[len(num)-1] |= 0x80
	}
	return append([]byte{byte(len(num))}, num...)
}

// pushData returns a minimal push of b (len(b) ≤ 75, which is all a
// coinbase scriptSig can hold in one push anyway).
func pushData(b []byte) []byte {
	return append([]byte{byte(len(b))}, b...)
}

// coinbaseSplit is a coinbase transaction cut around the extranonce slot:
// coinb1 || extranonce1 || extranonce2 || coinb2 is the non-witness
// serialisation (the one whose hash is the txid).
type coinbaseSplit struct {
	coinb1, coinb2 []byte
	scriptSigLen   int
}

var errScriptSigTooLong = errors.New("pool: coinbase scriptSig exceeds 100 bytes")

// buildCoinbase lays out the coinbase: the scriptSig is the BIP 34 height,
// the node's coinbaseaux flags, the pool tag, then one push holding
// extranonce1 and extranonce2. Ending the scriptSig on the extranonce keeps
// coinb2 independent of the session, so a per-session coinb2 (other outputs)
// needs no change to coinb1. The tag is truncated, and flags that cannot fit
// are dropped, so the scriptSig stays within the 100-byte consensus limit.
func buildCoinbase(height int64, flags []byte, tag string, extranonce2Size int, outs []TxOut) (coinbaseSplit, error) {
	slot := Extranonce1Size + extranonce2Size
	if slot > 75 {
		return coinbaseSplit{}, fmt.Errorf("pool: extranonce slot of %d bytes cannot be one push", slot)
	}
	script := BIP34Height(height)
	room := func() int { return maxScriptSigSize - len(script) - 1 - slot }
	if len(flags) > 0 && len(flags) <= 75 && 1+len(flags) <= room() {
		script = append(script, pushData(flags)...)
	}
	if t := truncateTag(tag, room()-1); len(t) > 0 {
		script = append(script, pushData([]byte(t))...)
	}
	if room() < 0 {
		return coinbaseSplit{}, errScriptSigTooLong
	}
	scriptSigLen := len(script) + 1 + slot

	var c1 []byte
	c1 = binary.LittleEndian.AppendUint32(c1, coinbaseTxVersion)
	c1 = append(c1, 1)                   // one input
	c1 = append(c1, make([]byte, 32)...) // null prevout hash
	c1 = binary.LittleEndian.AppendUint32(c1, 0xffffffff)
	c1 = appendVarInt(c1, uint64(scriptSigLen))
	c1 = append(c1, script...)
	c1 = append(c1, byte(slot))

	return coinbaseSplit{coinb1: c1, coinb2: Coinb2(outs), scriptSigLen: scriptSigLen}, nil
}

// Coinb2 serialises the part of the coinbase after the extranonce slot:
// input sequence, outputs, lock time. It is what differs between sessions
// when each gets its own outputs.
func Coinb2(outs []TxOut) []byte {
	var c2 []byte
	c2 = binary.LittleEndian.AppendUint32(c2, 0xffffffff) // sequence
	c2 = appendVarInt(c2, uint64(len(outs)))
	for _, o := range outs {
		c2 = binary.LittleEndian.AppendUint64(c2, uint64(o.Value))
		c2 = appendVarInt(c2, uint64(len(o.Script)))
		c2 = append(c2, o.Script...)
	}
	return binary.LittleEndian.AppendUint32(c2, 0) // lock time
}

// truncateTag cuts tag to at most max bytes (and one push) without
// splitting a UTF-8 sequence, so block explorers show clean text.
func truncateTag(tag string, max int) string {
	max = min(max, 75)
	if max <= 0 {
		return ""
	}
	if len(tag) <= max {
		return tag
	}
	tag = tag[:max]
	for len(tag) > 0 && !utf8.ValidString(tag) {
		tag = tag[:len(tag)-1]
	}
	return tag
}

// witnessCoinbase turns the non-witness coinbase into its witness
// serialisation for the block: marker and flag after the version, and the
// 32-byte zero witness reserved value as the input's only witness item,
// which the witness commitment was computed with.
func witnessCoinbase(txNoWit []byte) []byte {
	out := make([]byte, 0, len(txNoWit)+2+1+1+32)
	out = append(out, txNoWit[:4]...)
	out = append(out, 0x00, 0x01)
	out = append(out, txNoWit[4:len(txNoWit)-4]...)
	out = append(out, 0x01, 0x20)
	out = append(out, make([]byte, 32)...)
	return append(out, txNoWit[len(txNoWit)-4:]...)
}

func appendVarInt(b []byte, v uint64) []byte {
	switch {
	case v < 0xfd:
		return append(b, byte(v))
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(v))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
}
