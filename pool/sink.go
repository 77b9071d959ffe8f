package pool

import (
	"context"

	"github.com/hashforge/hashforge/record"
)

// ShareSink keeps every accepted share. AddShare is called on the share
// path: it hands the share over and returns without waiting on a database
// (it may block briefly to apply backpressure). done is called exactly
// once, from any goroutine, when the share is durable (nil: the miner may
// now hear "accepted") or when nothing could keep it (the miner hears a
// temporary error instead). ledger.Batcher makes shares durable in its
// write-ahead spool with a group commit.
type ShareSink interface {
	AddShare(s record.Share, done func(error))
}

// BlockSink records found blocks. Called after submitblock returned.
type BlockSink interface {
	RecordBlock(ctx context.Context, b record.Block) error
}

// BlockJournal keeps found blocks on the pool's own disk before anything
// else happens to them: a block the node accepted is money, and the
// database may be away or the process killed a moment later.
// ledger.BlockJournal implements it.
type BlockJournal interface {
	// JournalBlock is called twice per found block: before submitblock
	// (decided false, no verdict yet: it must survive the process dying,
	// not necessarily the machine) and with the node's verdict (decided
	// true: durable, fsynced, when it returns nil).
	JournalBlock(b record.Block, decided bool) error
}
