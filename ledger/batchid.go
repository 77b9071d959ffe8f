package ledger

import (
	"time"

	"github.com/hashforge/hashforge/internal/uuidv7"
)

// batchID identifies a share batch in spool_batches: a UUIDv7, so the
// primary key index grows at its right edge.
type batchID = uuidv7.UUID

func newBatchID(now time.Time) batchID { return uuidv7.New(now) }
