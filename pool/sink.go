package pool

import (
	"context"

	"github.com/hashforge/hashforge/record"
)

// ShareSink receives every accepted share. AddShare is called on the share
// path and must not wait on a database: implementations queue the share and
// persist it later (ledger.Batcher batches with COPY and spools to disk when
// PostgreSQL is away). It may block briefly to apply backpressure, never drop.
type ShareSink interface {
	AddShare(record.Share)
}

// BlockSink records found blocks. Called after submitblock returned.
type BlockSink interface {
	RecordBlock(ctx context.Context, b record.Block) error
}
