package fixturenode

import (
	"bytes"
	"encoding/hex"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/pow"
)

// submitBlock checks a block and, when it passes, makes it the tip at
// once. verdict is "" for an accepted block, else bitcoind's reject
// reason; a block that does not decode is an RPC error, as in bitcoind.
//
// The checks are those a node makes before it needs its UTXO set, in
// bitcoind's order (CheckBlockHeader, CheckBlock, then the contextual
// ones), so a pool that passes here builds blocks the way a real node
// takes them; spending and scripts are not checked, since the fixture's
// transactions spend nothing real.
func (n *Node) submitBlock(blockHex string) (verdict string, err error) {
	raw, err := hex.DecodeString(blockHex)
	if err != nil {
		return "", &rpcError{Code: codeDeserialization, Message: "Block decode failed"}
	}
	var blk wire.MsgBlock
	if err := blk.Deserialize(bytes.NewReader(raw)); err != nil {
		return "", &rpcError{Code: codeDeserialization, Message: "Block decode failed"}
	}
	if len(blk.Transactions) == 0 || !isCoinbase(blk.Transactions[0]) {
		return "", &rpcError{Code: codeDeserialization, Message: "Block does not start with a coinbase"}
	}

	// One submission at a time: the block is judged against the tip it
	// would replace.
	n.advanceMu.Lock()
	defer n.advanceMu.Unlock()
	verdict = n.check(&blk)
	hash := blk.BlockHash()
	if verdict != "" {
		n.log.Warn("fixture node: block refused", "hash", hash, "reason", verdict)
		return verdict, nil
	}
	n.mu.Lock()
	height := n.tip.height + 1
	n.accepted++
	n.mu.Unlock()
	b := &blockEntry{hash: hash, height: height, header: blk.Header, submitted: true, ntx: len(blk.Transactions),
		coinbase: blk.Transactions[0]}
	if err := n.advance(b); err != nil {
		return "", err
	}
	select {
	case n.reset <- struct{}{}:
	default:
	}
	n.log.Info("fixture node: block accepted", "hash", hash, "height", height)
	return "", nil
}

// check is bitcoind's verdict on blk: "" when it would be taken.
func (n *Node) check(blk *wire.MsgBlock) string {
	hash := blk.BlockHash()
	n.mu.Lock()
	_, known := n.byHash[hash]
	tip, tmpl := n.tip, n.tmpl
	n.mu.Unlock()
	if known {
		return "duplicate"
	}

	// CheckBlockHeader: the proof of work against the header's own bits.
	target, err := pow.CompactToTarget(blk.Header.Bits)
	if err != nil || !pow.HashMeets((*[32]byte)(&hash), target) {
		return "high-hash"
	}

	// CheckBlock: the merkle root, then the coinbase's place.
	txids := make([][32]byte, len(blk.Transactions))
	wtxids := make([][32]byte, len(blk.Transactions))
	for i, tx := range blk.Transactions {
		txids[i], wtxids[i] = tx.TxHash(), tx.WitnessHash()
	}
	if chainhash.Hash(pow.FoldMerkleBranch(txids[0], pow.MerkleBranch(txids[1:]))) != blk.Header.MerkleRoot {
		return "bad-txnmrklroot"
	}
	for _, tx := range blk.Transactions[1:] {
		if isCoinbase(tx) {
			return "bad-cb-multiple"
		}
	}

	// Contextual checks: the fixture keeps no side chains, so a block
	// on anything but the tip is not taken.
	if blk.Header.PrevBlock != tip.hash {
		n.mu.Lock()
		_, prevKnown := n.byHash[blk.Header.PrevBlock]
		n.mu.Unlock()
		if !prevKnown {
			return "prev-blk-not-found"
		}
		return "inconclusive"
	}
	if blk.Header.Bits != n.opts.Bits {
		return "bad-diffbits"
	}
	cb := blk.Transactions[0]
	height, err := txscript.NewScriptBuilder().AddInt64(tmpl.height).Script()
	if err != nil || !bytes.HasPrefix(cb.TxIn[0].SignatureScript, height) {
		return "bad-cb-height"
	}
	if verdict := checkWitnessCommitment(blk.Transactions, wtxids); verdict != "" {
		return verdict
	}
	// The block's fees are those of the template's transactions it
	// carries; any other transaction spends coins the fixture never had.
	allowed := subsidy(tmpl.height)
	for _, txid := range txids[1:] {
		fee, ok := tmpl.fees[txid]
		if !ok {
			return "bad-txns-inputs-missingorspent"
		}
		allowed += fee
	}
	var paid int64
	for _, out := range cb.TxOut {
		paid += out.Value
	}
	if paid > allowed {
		return "bad-cb-amount"
	}
	return ""
}

// checkWitnessCommitment is BIP 141's rule: a block with witness data
// commits to its wtxids in the coinbase's last commitment output, using
// the coinbase's one witness item (32 bytes) as the reserved value; a
// block without a commitment carries no witness.
func checkWitnessCommitment(txs []*wire.MsgTx, wtxids [][32]byte) string {
	cb := txs[0]
	commitAt := -1
	for i, out := range cb.TxOut {
		if len(out.PkScript) >= 38 && bytes.HasPrefix(out.PkScript, witnessCommitmentHeader) {
			commitAt = i
		}
	}
	if commitAt < 0 {
		for _, tx := range txs {
			if tx.HasWitness() {
				return "unexpected-witness"
			}
		}
		return ""
	}
	w := cb.TxIn[0].Witness
	if len(w) != 1 || len(w[0]) != 32 {
		return "bad-witness-nonce-size"
	}
	root := pow.FoldMerkleBranch([32]byte{}, pow.MerkleBranch(wtxids[1:]))
	want := witnessCommitment(root, [32]byte(w[0]))
	if !bytes.Equal(cb.TxOut[commitAt].PkScript[6:38], want[:]) {
		return "bad-witness-merkle-match"
	}
	return ""
}

// isCoinbase: one input spending the null outpoint.
func isCoinbase(tx *wire.MsgTx) bool {
	return len(tx.TxIn) == 1 && tx.TxIn[0].PreviousOutPoint.Index == 0xffffffff &&
		tx.TxIn[0].PreviousOutPoint.Hash == chainhash.Hash{}
}
