package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/wire/v2"
)

// BlockCoinbase is what a block's coinbase says about who mined it: the
// scriptSig (where a pool puts its tag and extranonce) and the outputs.
type BlockCoinbase struct {
	Hash      string // the block's, display order
	Time      int64  // header time, Unix seconds
	ScriptSig []byte
	Outputs   []*wire.TxOut
	Value     int64 // sum of the outputs
}

// GetBlockCoinbase reads a block (getblock at verbosity 0: raw, the one
// form every node family serves alike) and decodes its header and
// coinbase transaction only.
func (c *Client) GetBlockCoinbase(ctx context.Context, hash string) (*BlockCoinbase, error) {
	var raw string
	if err := c.GetBlock(ctx, hash, 0, &raw); err != nil {
		return nil, err
	}
	return decodeBlockCoinbase(hash, raw)
}

func decodeBlockCoinbase(hash, raw string) (*BlockCoinbase, error) {
	// The header, the transaction count and the coinbase come first; the
	// rest of a mainnet block (megabytes) need not be decoded.
	b, err := hex.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("getblock %s: raw block is not hex: %w", hash, err)
	}
	r := bytes.NewReader(b)
	var h wire.BlockHeader
	if err := h.Deserialize(r); err != nil {
		return nil, fmt.Errorf("getblock %s: header: %w", hash, err)
	}
	n, err := wire.ReadVarInt(r, 0)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("getblock %s: transaction count: %v", hash, err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(r); err != nil {
		return nil, fmt.Errorf("getblock %s: coinbase: %w", hash, err)
	}
	if len(tx.TxIn) == 0 {
		return nil, fmt.Errorf("getblock %s: coinbase has no input", hash)
	}
	cb := &BlockCoinbase{Hash: hash, Time: h.Timestamp.Unix(), ScriptSig: tx.TxIn[0].SignatureScript, Outputs: tx.TxOut}
	for _, o := range tx.TxOut {
		cb.Value += o.Value
	}
	return cb, nil
}
