-- 0008_shares_partitioned: shares becomes a table range-partitioned by
-- time, one partition per UTC day, so that retention is dropping whole
-- days (no DELETE, no bloat, no vacuum storm) after rolling them up into
-- share_rollups, which the charts read for ranges whose shares are gone.
--
-- The existing rows are not copied. The old table becomes one partition,
-- shares_legacy, covering everything before the end of the day of its
-- newest row (or of today), and ATTACH PARTITION takes it as it is:
--   * a CHECK constraint that implies the partition bound lets ATTACH skip
--     its own validation scan; adding the CHECK scans the table once, in
--     sequence, without writing (about what a count(*) costs);
--   * the parent's indexes are created before the attach and have the
--     same definitions as the old table's, so ATTACH adopts the existing
--     indexes instead of building new ones.
-- Copying the rows into daily partitions instead would rewrite the whole
-- table and rebuild three indexes on it (minutes at 10 million rows, hours
-- at a billion, all inside this migration's transaction while every pool
-- node waits on its lock); here the cost is one read of the table
-- (docs/scaling.md has the timing). The price: the history before the
-- migration is one partition, dropped in one piece once all of it is older
-- than the retention (ledger.ApplyRetention rolls it up day by day first).
--
-- The DEFAULT partition takes a share whose day has no partition yet
-- (maintenance late, the clock far off): the batcher's COPY must never fail
-- because of the calendar. Maintenance (ledger.MaintainPartitions) creates
-- the days ahead and moves whatever landed in DEFAULT into its day.
--
-- Partition bounds are UTC midnights whatever the session's TimeZone:
-- the partition names (shares_pYYYYMMDD) and retention work in UTC days.

DO $$
DECLARE
    newest timestamptz;
    bound  timestamptz;
BEGIN
    ALTER TABLE shares RENAME TO shares_legacy;
    ALTER INDEX shares_time_idx RENAME TO shares_legacy_time_idx;
    ALTER INDEX shares_worker_time_idx RENAME TO shares_legacy_worker_time_idx;
    ALTER INDEX shares_block_hash_idx RENAME TO shares_legacy_block_hash_idx;

    -- Columns in the old table's order (0001, then 0002's
    -- network_difficulty), so that ATTACH finds them identical and the
    -- batcher's COPY column list is unchanged.
    CREATE TABLE shares (
        time               timestamptz      NOT NULL,
        worker_id          bigint           NOT NULL,
        job_id             text             NOT NULL,
        difficulty         double precision NOT NULL,
        actual_difficulty  double precision NOT NULL,
        height             bigint           NOT NULL,
        is_block           boolean          NOT NULL DEFAULT false,
        block_hash         text,
        remote_addr        text,
        extranonce1        text,
        network_difficulty double precision NOT NULL DEFAULT 0
    ) PARTITION BY RANGE (time);

    -- The readers' indexes (0001, 0003), declared on the parent so that
    -- every partition, present and future, has them.
    CREATE INDEX shares_time_idx ON shares (time);
    CREATE INDEX shares_worker_time_idx ON shares (worker_id, time);
    CREATE INDEX shares_block_hash_idx ON shares (block_hash) WHERE is_block;

    CREATE TABLE shares_default PARTITION OF shares DEFAULT;

    -- The time index makes this two index probes, not a scan.
    SELECT max(time) INTO newest FROM shares_legacy;
    IF newest IS NULL THEN
        -- A fresh install (or a pool that never stored a share): nothing
        -- to keep; maintenance creates today's partition and the next.
        DROP TABLE shares_legacy;
    ELSE
        bound := (date_trunc('day', GREATEST(newest, now()) AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';
        EXECUTE format('ALTER TABLE shares_legacy ADD CONSTRAINT shares_legacy_bound CHECK (time < %L)', bound);
        EXECUTE format('ALTER TABLE shares ATTACH PARTITION shares_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);
        -- The partition bound says the same from now on.
        ALTER TABLE shares_legacy DROP CONSTRAINT shares_legacy_bound;
    END IF;
END
$$;

-- Per worker and UTC hour: what retention keeps of the shares it drops.
-- An hour is the bucket of the longest chart (7 days, docs/api.md) and
-- divides every shorter one, and it makes a year of one worker 8,760 rows.
-- A row is added to, never replaced: retention rolls a day up in the
-- transaction that drops it, so a day's shares are counted once, and the
-- rare late share that landed in an already dropped day adds to its hour.
CREATE TABLE share_rollups (
    worker_id       bigint           NOT NULL,
    bucket_start    timestamptz      NOT NULL,
    shares          bigint           NOT NULL CHECK (shares >= 0),
    difficulty_sum  double precision NOT NULL,
    best_difficulty double precision NOT NULL,
    blocks          integer          NOT NULL DEFAULT 0 CHECK (blocks >= 0),
    PRIMARY KEY (worker_id, bucket_start)
);

-- Pool-wide series and "first share ever" (read_stats.go).
CREATE INDEX share_rollups_bucket_idx ON share_rollups (bucket_start);

-- How far retention has gone: shares before rolled_until are in
-- share_rollups only. One row, moved forward in the transaction of each
-- drop; readers split their ranges at it in the same statement (one
-- snapshot), so a chart never counts a day twice or misses it.
CREATE TABLE share_retention (
    only_row     boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    rolled_until timestamptz NOT NULL
);
