-- 0009_pool_nodes: several `hashforge serve` processes on one database.
--
-- pool_nodes holds one row per node id in use: a lease. A process takes
-- its --node-id at start only if no live process holds it (heartbeat
-- younger than the lease), renews it every few seconds and removes it on
-- a clean exit; a crashed holder's lease simply expires. Two live
-- processes with one node id would hand out the same extranonce1 values
-- (the node id is their first byte) and so the same search space.
--
-- stats is the node's live state (sessions, workers, shares answered,
-- blocks), written with each heartbeat, so the dashboard and API of any
-- node can show the whole pool and each node.
CREATE TABLE pool_nodes (
    node_id    smallint    PRIMARY KEY CHECK (node_id BETWEEN 0 AND 255),
    holder     text        NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat  timestamptz NOT NULL,
    stats      jsonb       NOT NULL DEFAULT '{}'
);

-- Which node accepted a share or found a block. NULL on rows written
-- before this migration. No default: adding a nullable column without
-- one is a catalogue change, instant on a table of billions of rows.
ALTER TABLE shares ADD COLUMN IF NOT EXISTS node_id smallint;
ALTER TABLE blocks ADD COLUMN IF NOT EXISTS node_id smallint;
