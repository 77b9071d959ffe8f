package fixturenode

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/internal/btcaddr"
	"github.com/hashforge/hashforge/pow"
)

// call answers one method; the result is JSON.
func (n *Node) call(ctx context.Context, method string, params []json.RawMessage) ([]byte, error) {
	switch method {
	case "getblocktemplate":
		return n.getBlockTemplate(ctx, params)
	case "submitblock":
		var blockHex string
		if err := param(params, 0, &blockHex); err != nil {
			return nil, err
		}
		verdict, err := n.submitBlock(blockHex)
		if err != nil || verdict == "" {
			return nil, err
		}
		return json.Marshal(verdict)
	case "getblockchaininfo":
		return n.blockchainInfo()
	case "getbestblockhash":
		h, _ := n.Tip()
		return json.Marshal(h.String())
	case "getblockcount":
		_, height := n.Tip()
		return json.Marshal(height)
	case "getblockhash":
		var height int64
		if err := param(params, 0, &height); err != nil {
			return nil, err
		}
		n.mu.Lock()
		b, ok := n.byHeight[height]
		n.mu.Unlock()
		if !ok {
			return nil, &rpcError{Code: codeInvalidParam, Message: "Block height out of range"}
		}
		return json.Marshal(b.hash.String())
	case "getblockheader", "getblock":
		return n.getBlock(method, params)
	case "validateaddress":
		var addr string
		if err := param(params, 0, &addr); err != nil {
			return nil, err
		}
		a, err := btcaddr.Decode(addr, &chaincfg.MainNetParams)
		if err != nil || !a.IsForNet(&chaincfg.MainNetParams) {
			return json.Marshal(map[string]any{"isvalid": false})
		}
		return json.Marshal(map[string]any{"isvalid": true, "address": a.EncodeAddress()})
	case "getnetworkinfo":
		return json.Marshal(map[string]any{
			"version": 280000, "subversion": "/hashforge-fixture:1.0/", "protocolversion": 70016,
			"connections": 10, "connections_in": 0, "connections_out": 10, "networkactive": true,
			"relayfee": 0.00001, "incrementalfee": 0.00001, "localservices": "0000000000000c09", "warnings": "",
		})
	case "getmininginfo":
		n.mu.Lock()
		height, bits := n.tip.height, n.opts.Bits
		n.mu.Unlock()
		return json.Marshal(map[string]any{
			"blocks": height, "bits": fmt.Sprintf("%08x", bits), "difficulty": difficulty(bits),
			"pooledtx": n.opts.Transactions, "chain": "main", "warnings": "",
		})
	case "uptime":
		return json.Marshal(1)
	}
	return nil, &rpcError{Code: codeMethodNotFound, Message: "Method not found"}
}

// param decodes params[i] into out.
func param(params []json.RawMessage, i int, out any) error {
	if i >= len(params) {
		return &rpcError{Code: codeInvalidParams, Message: fmt.Sprintf("missing parameter %d", i+1)}
	}
	if err := json.Unmarshal(params[i], out); err != nil {
		return &rpcError{Code: codeInvalidParams, Message: fmt.Sprintf("parameter %d: %v", i+1, err)}
	}
	return nil
}

// getBlockTemplate answers with the current template. A long poll (BIP
// 22: a longpollid) naming the current template waits for the next tip,
// or until the caller goes away or the node stops.
func (n *Node) getBlockTemplate(ctx context.Context, params []json.RawMessage) ([]byte, error) {
	var req struct {
		Rules      []string `json:"rules"`
		LongPollID string   `json:"longpollid"`
		Mode       string   `json:"mode"`
	}
	if len(params) > 0 {
		if err := param(params, 0, &req); err != nil {
			return nil, err
		}
	}
	if req.Mode != "" && req.Mode != "template" {
		return nil, &rpcError{Code: codeInvalidParam, Message: "Invalid mode"}
	}
	if !slices.Contains(req.Rules, "segwit") {
		return nil, &rpcError{Code: codeInvalidParam,
			Message: `getblocktemplate must be called with the segwit rule set (call with {"rules": ["segwit"]})`}
	}
	n.mu.Lock()
	t, changed := n.tmpl, n.changed
	n.mu.Unlock()
	if req.LongPollID != "" && req.LongPollID == t.longPollID {
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.done:
		}
		n.mu.Lock()
		t = n.tmpl
		n.mu.Unlock()
	}
	return t.result(time.Now().Unix()), nil
}

func (n *Node) blockchainInfo() ([]byte, error) {
	n.mu.Lock()
	tip := n.tip
	n.mu.Unlock()
	return json.Marshal(map[string]any{
		"chain": "main", "blocks": tip.height, "headers": tip.height, "bestblockhash": tip.hash.String(),
		"bits": fmt.Sprintf("%08x", n.opts.Bits), "difficulty": difficulty(n.opts.Bits),
		"time": tip.header.Timestamp.Unix(), "mediantime": tip.header.Timestamp.Unix() - 3600,
		"verificationprogress": 1, "initialblockdownload": false, "pruned": false, "warnings": "",
	})
}

// getBlock answers getblockheader and getblock from the headers the node
// keeps: getblock verbosity 0 (the raw block) is not available, as on a
// pruned node, since no block's transactions are kept.
func (n *Node) getBlock(method string, params []json.RawMessage) ([]byte, error) {
	var hashStr string
	if err := param(params, 0, &hashStr); err != nil {
		return nil, err
	}
	h, err := chainhash.NewHashFromStr(hashStr)
	if err != nil || len(hashStr) != 64 {
		return nil, &rpcError{Code: codeInvalidParam, Message: "blockhash must be of length 64"}
	}
	verbose := true
	if len(params) > 1 {
		var v any
		if err := json.Unmarshal(params[1], &v); err != nil {
			return nil, &rpcError{Code: codeInvalidParams, Message: err.Error()}
		}
		switch v := v.(type) {
		case bool:
			verbose = v
		case float64:
			verbose = v != 0
		}
	}
	n.mu.Lock()
	b, ok := n.byHash[*h]
	tip := n.tip
	var next *blockEntry
	if ok {
		next = n.byHeight[b.height+1]
	}
	n.mu.Unlock()
	if !ok {
		return nil, &rpcError{Code: codeInvalidAddrKey, Message: "Block not found"}
	}
	if !verbose {
		var buf bytes.Buffer
		if err := b.header.Serialize(&buf); err != nil {
			return nil, err
		}
		if method == "getblock" {
			// The fixture keeps headers and coinbases only: the raw
			// block it serves is the header and the coinbase, which is
			// all a pool reads of a block it did not just build.
			cb := b.coinbase
			if cb == nil {
				cb = madeUpCoinbase(b.height)
			}
			if err := wire.WriteVarInt(&buf, 0, 1); err != nil {
				return nil, err
			}
			if err := cb.Serialize(&buf); err != nil {
				return nil, err
			}
		}
		return json.Marshal(hex.EncodeToString(buf.Bytes()))
	}
	out := map[string]any{
		"hash": b.hash.String(), "confirmations": tip.height - b.height + 1, "height": b.height,
		"version": b.header.Version, "versionHex": fmt.Sprintf("%08x", uint32(b.header.Version)),
		"merkleroot": b.header.MerkleRoot.String(), "time": b.header.Timestamp.Unix(),
		"mediantime": b.header.Timestamp.Unix() - 3600, "nonce": b.header.Nonce,
		"bits": fmt.Sprintf("%08x", b.header.Bits), "difficulty": difficulty(b.header.Bits), "nTx": b.ntx,
	}
	if b.height > n.opts.Height-1 {
		out["previousblockhash"] = b.header.PrevBlock.String()
	}
	if next != nil {
		out["nextblockhash"] = next.hash.String()
	}
	if method == "getblock" {
		out["tx"] = []string{}
	}
	return json.Marshal(out)
}

// difficulty is bits as a difficulty, as nodes print it.
func difficulty(bits uint32) float64 {
	t, err := pow.CompactToTarget(bits)
	if err != nil {
		return 0
	}
	return pow.TargetToDifficulty(t)
}

// madeUpCoinbase stands for the coinbase of a block the timer made up: a
// BIP 34 height push and an output paying nobody in particular.
func madeUpCoinbase(height int64) *wire.MsgTx {
	tx := wire.NewMsgTx(1)
	script := []byte{4, byte(height), byte(height >> 8), byte(height >> 16), byte(height >> 24)}
	tx.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Index: 0xffffffff}, SignatureScript: append(script, "/fixture/"...), Sequence: 0xffffffff})
	tx.AddTxOut(&wire.TxOut{Value: 312_500_000, PkScript: []byte{0x6a}})
	return tx
}
