package node

// Template is a block template as returned by getblocktemplate (BIP 22/23),
// normalised across node families (Bitcoin Core and btcd).
//
// Hashes are kept as the node prints them (display order, big-endian hex);
// converting to header byte order is the consumer's job, done once per job.
type Template struct {
	Version           int32
	PreviousBlockHash string // display order hex
	Transactions      []TemplateTx
	CoinbaseValue     int64  // satoshis: subsidy + fees
	Target            string // display order hex, 64 chars
	Bits              string // compact target, 8 hex chars as sent by the node ("207fffff")
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
	CoinbaseFlags     string // coinbaseaux.flags hex, may be empty
	// SignetChallenge is the script (hex) every block must satisfy on a
	// signet (BIP 325), as Bitcoin Core sends it there; empty elsewhere.
	SignetChallenge string
}

// TemplateTx is one non-coinbase transaction of a template.
type TemplateTx struct {
	Data string // raw transaction hex, as it goes into the block
	TxID string // display order hex; txids, not wtxids, build the merkle branch
	Hash string // wtxid, display order hex (equals TxID for non-witness txs)
	Fee  int64
}
