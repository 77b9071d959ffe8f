package node

import "github.com/btcsuite/btcd/chainhash/v2"

// Template is a block template as returned by getblocktemplate (BIP 22/23),
// normalised across node families (Bitcoin Core and btcd) and parsed once,
// where the reply is decoded: consumers get typed values, never hex to
// parse again.
//
// Hashes are chainhash.Hash values: internal (header) byte order, printed
// by String in the display order RPC and explorers use.
type Template struct {
	Version           int32
	PreviousBlockHash chainhash.Hash
	Transactions      []TemplateTx
	CoinbaseValue     int64  // satoshis: subsidy + fees
	Bits              uint32 // compact target (btcd prints it without leading zeros)
	Height            int64
	CurTime           int64 // unix seconds; btcd runs ahead of the wall clock, use this, not time.Now
	MinTime           int64
	MaxTime           int64 // 0 when the node does not send it
	// WitnessCommitment is the full output script of the coinbase witness
	// commitment (6a24aa21a9ed + 32 bytes), already normalised: btcd sends
	// only the 32-byte commitment hash and only when a witness tx is present;
	// Bitcoin Core sends the whole script. Empty when there is none.
	WitnessCommitment []byte
	LongPollID        string
	Rules             []string
	CoinbaseFlags     []byte // coinbaseaux.flags, may be empty
	// SignetChallenge is the script (hex) every block must satisfy on a
	// signet (BIP 325), as Bitcoin Core sends it there; empty elsewhere.
	SignetChallenge string
}

// TemplateTx is one non-coinbase transaction of a template.
type TemplateTx struct {
	Data string         // raw transaction hex, as it goes into the block
	TxID chainhash.Hash // txids, not wtxids, build the merkle branch
	Hash chainhash.Hash // wtxid (equals TxID for non-witness txs)
	Fee  int64
}
