package ledger

import "github.com/hashforge/hashforge/pool"

// The ledger is what the pool hands accepted shares and found blocks to;
// it implements the pool's sinks without importing the pool.
var (
	_ pool.ShareSink = (*Batcher)(nil)
	_ pool.BlockSink = (*Ledger)(nil)
	_ pool.BlockSink = TermsSink{}
)
