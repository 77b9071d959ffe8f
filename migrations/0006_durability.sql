-- 0006_durability: what makes a crash lose nothing.
--
-- Each pool node writes every accepted share to its write-ahead spool
-- (fsynced, before the miner hears "accepted") and then applies the spool
-- to `shares` in order. spool_cursors says how far each spool has been
-- applied, in the same transaction as the rows: after any crash the node
-- replays its spool from exactly there, so every share is stored once.
-- A spool is named by the id kept in its directory (file spool-id).
CREATE TABLE spool_cursors (
    spool_id   text        PRIMARY KEY,
    segment    bigint      NOT NULL CHECK (segment >= 0),
    pos        bigint      NOT NULL CHECK (pos >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- How far the pool has checked the node's chain for blocks it found
-- (pool.ReconcileBlocks at start): a block the pool found whose record a
-- crash lost is found there and recorded.
CREATE TABLE chain_scan (
    name       text        PRIMARY KEY,
    height     bigint      NOT NULL,
    hash       text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
