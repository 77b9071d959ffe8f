// Package ledger is the pool's PostgreSQL accounting: it stores accepted
// shares, the workers they belong to and the blocks the pool found, and it
// answers the read queries of the dashboard and API. Schema changes live in
// package migrations and are applied by Migrate.
//
// The pool core hands shares to a Batcher (a pool.ShareSink) and blocks to
// a Ledger (a pool.BlockSink), as package record's values; it knows nothing
// of SQL, and the ledger imports nothing of the pool.
//
// # Share path
//
// AddShare puts a share on a bounded queue and returns; it blocks only when
// the queue is full, so a slow database slows the share path down instead
// of losing shares. Run collects shares into batches (MaxBatch shares or
// FlushInterval, whichever comes first) and commits each batch in one
// transaction: the batch's id into spool_batches, unknown workers into
// workers, the shares with COPY. Batch ids are assigned before the first
// attempt and never change, which is what makes every retry safe.
//
// # Outages
//
// When a write fails because PostgreSQL is away, the batch is appended to a
// spool file in SpoolDir and fsynced, and shares keep flowing; later batches
// go straight to the spool until a retry (exponential backoff with jitter,
// 250 ms to 30 s) gets through. Then the spool is replayed oldest first and
// its files deleted. A batch whose id is already in spool_batches was
// committed before (the process died between COMMIT and deleting the file,
// or a COMMIT's answer was lost) and is skipped: every share is stored
// exactly once. Run also replays whatever a previous process left in
// SpoolDir before it does anything else.
//
// A crash in the middle of an append leaves a torn final record; replay
// recognises it by length and checksum, logs it and ignores it (that batch
// had not been acknowledged as safe). Damage followed by more data is not a
// crash artefact: the segment is renamed *.spool.corrupt after replaying the
// records before the damage, and kept for an operator. A batch the database
// refuses for good (a data error, not an outage) is written to
// rejected-<batch id>.spool and logged, so it cannot block the batches
// behind it.
//
// Without a SpoolDir an outage holds the failing batch in memory and stops
// reading the queue, so producers block once it is full; shares still in
// memory when Run stops with the database away are lost, and Run says how
// many.
//
// # Shutdown
//
// Stop the Stratum side first, then cancel Run's context: Run drains the
// queue, including AddShare calls racing with the shutdown, writes or
// spools everything and returns. A share added after Run returned is
// spooled synchronously by AddShare itself.
//
// # Worker rows
//
// The Batcher caches worker ids in memory. workers.last_seen trails the
// newest share by at most lastSeenResolution (30 s): moving it on every
// batch would add an UPDATE per active worker to every batch. Live
// per-connection state belongs to the pool, not to this table.
package ledger
