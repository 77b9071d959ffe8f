// Package ledger is the pool's PostgreSQL accounting: it stores accepted
// shares, the workers they belong to and the blocks the pool found, and it
// answers the read queries of the dashboard and API. Schema changes live in
// package migrations and are applied by Migrate.
//
// The pool core hands shares to a Batcher (a pool.ShareSink) and blocks to
// a Ledger (a pool.BlockSink), as package record's values; it knows nothing
// of SQL, and the ledger imports nothing of the pool.
//
// # Share path: nothing acknowledged is lost
//
// AddShare hands a share to the group commit and returns; the share's done
// callback runs once the share is durable, and only then does the miner
// hear "accepted". The group commit appends everything that arrived while
// the previous append was being fsynced as one record of the write-ahead
// spool (SpoolDir) and fsyncs it: one fsync for all the shares arriving in
// the same few milliseconds, whatever their number. A kill -9, a crash or
// a power loss after done(nil) loses no share.
//
// The writer applies the spool to PostgreSQL in order, taking whatever is
// waiting (up to MaxBatch shares) into one transaction: unknown workers
// into workers, the shares with COPY, a row into spool_batches (ShareCount
// and PPS credits use it), and the spool position after the last record
// into spool_cursors. Rows and position commit together, so after any
// crash the log is replayed from exactly after the last committed rows:
// every share is stored once. Segments wholly before the cursor are
// deleted.
//
// # Outages and failures
//
// PostgreSQL away: shares keep being acknowledged from the spool, which
// grows; the writer retries with backoff (250 ms to 30 s, jittered) and
// catches up when the database is back. The spool failing (disk full,
// unwritable): each group is committed to PostgreSQL directly and
// acknowledged after COMMIT. Both failing: the share is refused
// (ErrNotKept): the pool answers the miner with a temporary error so its
// failover takes it elsewhere, says so in the log, metrics and API, and
// recovers by itself. Without a SpoolDir a share is acknowledged after its
// COMMIT and refused while the database is away.
//
// A crash in the middle of an append leaves a torn final record; the
// reader recognises it by length and checksum and treats it as the end of
// that segment (its shares were never acknowledged). Damage followed by
// more data is not a crash artefact: the segment is renamed
// *.spool.<time>.corrupt after applying the records before the damage, and
// kept for an operator. Records the database refuses for good (a data
// error, not an outage) are retried one per transaction, and the refused
// one is written to rejected-<id>.spool and skipped, so it cannot block
// the shares behind it. Version-1 spool files (JSON batches with ids in
// spool_batches) from an older hashforge are replayed by id at start.
//
// # Shutdown
//
// Stop the Stratum side first, then cancel Run's context: Run commits what
// waits for the group commit, applies what it can of the spool within 15 s
// and returns; the rest is applied at the next start. A share added after
// Run returned is appended and fsynced by AddShare itself.
//
// # Blocks
//
// BlockJournal keeps every found block on local disk, before submitblock
// and (fsynced) with the verdict; Recover puts it in the blocks table at
// the next start.
//
// # Worker rows
//
// The Batcher caches worker ids in memory. workers.last_seen trails the
// newest share by at most lastSeenResolution (30 s): moving it on every
// batch would add an UPDATE per active worker to every batch. Live
// per-connection state belongs to the pool, not to this table.
package ledger
