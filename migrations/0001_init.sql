-- 0001_init: workers, shares, blocks and the batch ledger that makes share
-- replay exactly-once. Payout tables (balances, payments) come in a later
-- migration; blocks.status is the hook they will use.

-- One row per "<payout address>.<worker name>" the pool has ever seen.
-- A surrogate bigint id keeps each share row small: the address alone is
-- 34-62 bytes and would be repeated in every one of billions of shares.
CREATE TABLE workers (
    id         bigserial   PRIMARY KEY,
    address    text        NOT NULL,
    -- '' rather than NULL when the miner sent no worker name, so that the
    -- unique constraint below treats "addr" and "addr." as one worker.
    name       text        NOT NULL DEFAULT '',
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    -- Also serves lookups by address alone (leading column).
    CONSTRAINT workers_address_name_key UNIQUE (address, name)
);

-- Every accepted share. This is the write-hot, ever-growing table, so it is
-- shaped for COPY throughput:
--   * no surrogate key: a bigserial would cost a sequence call and a unique
--     btree insert per row, and nothing references an individual share;
--     readers always select by time range, optionally per worker;
--   * no foreign key to workers: the RI trigger would do an index probe per
--     row inside COPY. The ledger resolves worker ids before writing and
--     workers are never deleted, so the reference cannot dangle;
--   * exactly two indexes, the ones the readers need (below).
--
-- At scale this becomes a range-partitioned table:
--     CREATE TABLE shares (...) PARTITION BY RANGE (time);
-- with one partition per day, created a few days ahead by a maintenance job
-- (pg_partman or the payout timer). Indexes are then per partition, and
-- retention is DETACH PARTITION + DROP TABLE instead of a massive DELETE
-- (no bloat, no vacuum storm), once a partition is older than the longest
-- payout window (PPLNS) and has been rolled up into per-worker statistics.
-- Having no primary key keeps that conversion simple: a partitioned table's
-- unique keys would have to include the partition key.
CREATE TABLE shares (
    time              timestamptz      NOT NULL,
    worker_id         bigint           NOT NULL,
    job_id            text             NOT NULL,
    -- Difficulty of the share target the miner was working at: the weight
    -- of the share for hashrate and payouts (each share stands for
    -- difficulty * 2^32 hashes on average).
    difficulty        double precision NOT NULL,
    -- Difficulty of the hash actually found; informational ("best share").
    actual_difficulty double precision NOT NULL,
    height            bigint           NOT NULL,
    is_block          boolean          NOT NULL DEFAULT false,
    block_hash        text,            -- display-order hex, only when is_block
    remote_addr       text,            -- miner's ip:port, when known
    extranonce1       text             -- hex, identifies the Stratum session
);

-- Pool-wide windows (hashrate, PPLNS "last N shares" walking back in time).
-- A BRIN index would be smaller and cheaper to maintain for this
-- append-mostly, time-correlated table, but it cannot serve ORDER BY time
-- DESC LIMIT n, which PPLNS needs.
CREATE INDEX shares_time_idx ON shares (time);

-- Per-worker statistics (dashboard, API).
CREATE INDEX shares_worker_time_idx ON shares (worker_id, time);

-- Blocks the pool found and submitted, whatever the node answered.
CREATE TABLE blocks (
    -- Surrogate key so payout rows can reference a block with a bigint.
    id             bigserial   PRIMARY KEY,
    height         bigint      NOT NULL,
    -- Display-order lowercase hex; the natural key RecordBlock upserts on.
    hash           text        NOT NULL,
    -- Coinbase value in satoshis. Integer money only, never floating point.
    reward         bigint      NOT NULL CHECK (reward >= 0),
    finder_address text        NOT NULL,
    finder_worker  text        NOT NULL DEFAULT '',
    accepted       boolean     NOT NULL,
    -- "accepted", or the node's reject reason / RPC error text.
    verdict        text        NOT NULL DEFAULT '',
    found_at       timestamptz NOT NULL,
    -- Payout state. The ledger writes 'pending' for accepted blocks and
    -- 'rejected' for refused ones; the payout migration adds the rest of the
    -- life cycle (maturing, orphaned, credited, ...) and its CHECK.
    status         text        NOT NULL DEFAULT 'pending',
    CONSTRAINT blocks_hash_key UNIQUE (hash)
);

CREATE INDEX blocks_found_at_idx ON blocks (found_at DESC, id DESC);

-- One row per share batch committed to shares, inserted in the same
-- transaction as the batch's COPY. Batch ids are assigned before the first
-- write attempt and travel with the batch into the on-disk spool, so a
-- replayed batch whose id is already here was committed before (e.g. the
-- process died after COMMIT but before deleting its spool file) and is
-- skipped: each share is written exactly once.
--
-- share_count makes the total number of shares ever accepted cheap to read
-- (the table is MaxBatch times smaller than shares). Pruning this table
-- must therefore roll the pruned counts into a total first, and must keep
-- ids younger than the oldest spool file any pool node might still replay.
CREATE TABLE spool_batches (
    batch_id    uuid        PRIMARY KEY,
    share_count integer     NOT NULL CHECK (share_count >= 0),
    applied_at  timestamptz NOT NULL DEFAULT now()
);
