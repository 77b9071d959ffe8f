// Package record holds what the pool hands to the ledger: an accepted
// share and a found block. It imports only the standard library, so the
// ledger (and anything else that stores or shows them) takes them without
// the Stratum and node code of the pool.
package record

import "time"

// Share is one accepted share, as handed to the ledger.
type Share struct {
	Time       time.Time
	Address    string // payout address part of the username
	Worker     string // worker name part of the username ("" when the miner sent none)
	JobID      string
	Difficulty float64 // the share target's difficulty the miner was working at
	ActualDiff float64 // difficulty of the hash the miner found
	Height     int64   // height of the block the job builds
	// NetworkDifficulty is the job's network difficulty: PPS values a
	// share by it as it was at acceptance.
	NetworkDifficulty float64
	IsBlock           bool   // hash met the network target
	BlockHash         string // display-order hex, set when IsBlock
	RemoteAddr        string
	ExtraNonce1       string
}

// Block is a block the pool found and submitted, with the node's verdict.
type Block struct {
	Time     time.Time
	Height   int64
	Hash     string // display-order hex
	Reward   int64  // coinbase value in satoshis
	Address  string // finder's payout address
	Worker   string
	Accepted bool
	// Unknown is set when the node gave no clear answer: submitblock
	// got no reply after its retries (the node may still have taken the
	// block), or the node called it "inconclusive" (valid, but not on
	// its active chain: usually a lost race) or a "duplicate" of a block
	// it has. Neither accepted nor rejected: the payout process looks
	// the block up in the chain by hash until it knows (ledger status
	// 'unknown').
	Unknown bool
	// Verdict is "accepted", the node's answer, or for a submission that
	// got none "unknown: " and the last error.
	Verdict string
	// Header and Coinbase are the block's 80-byte header and its coinbase
	// transaction (without witness), hex: the block journal keeps them
	// so that who was paid, and how much, is known from the pool's own
	// disk whatever happened to the database.
	Header   string
	Coinbase string
}

// Status is the ledger status a found block starts in: "pending" once the
// node accepted it, "unknown" while the chain has to tell, else
// "rejected". The payout process takes it on from there.
func (b *Block) Status() string {
	switch {
	case b.Accepted:
		return "pending"
	case b.Unknown:
		return "unknown"
	}
	return "rejected"
}
