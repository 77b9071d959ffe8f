-- 0003_payout_attempts: what exactly-once payments and PROP/PPLNS round
-- boundaries need beyond 0002 (which was already committed, so it is not
-- edited: the runner refuses changed migrations).

-- sendmany calls made for a batch, and when the last one began, written
-- before the call. A planned batch that was attempted is only sent again
-- once the wallet's own transaction list, read well after the attempt
-- (when a lost answer's transaction must be in it), shows no trace of it.
ALTER TABLE payments
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN last_attempt_at timestamptz;

-- A block's round ends with its own solving share (see payout.Window);
-- finding that share must not scan the shares table. Partial: only block
-- shares are in it, a handful of rows.
CREATE INDEX shares_block_hash_idx ON shares (block_hash) WHERE is_block;
