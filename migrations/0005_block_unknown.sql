-- 0005_block_unknown: blocks whose submission had no clear answer.
--
--   unknown  submitted, but the node gave no clear verdict: submitblock
--            got no reply after its retries (Bitcoin Core may still have
--            taken it: it answers a submitblock queued behind busy RPC
--            threads long after the pool gave up), or the node called it
--            "inconclusive" (valid, not on its active chain: usually a lost
--            race) or a "duplicate". Never credited as such: the payout
--            process looks it up in the chain by hash until it is found
--            there (then 'pending', accepted, and on through the usual
--            life cycle), or until the chain is far enough past its height
--            without it ('orphaned' when the node has the block on a side
--            chain, 'rejected' when the node does not know it).
ALTER TABLE blocks DROP CONSTRAINT blocks_status_check;
ALTER TABLE blocks
    ADD CONSTRAINT blocks_status_check
        CHECK (status IN ('pending', 'confirmed', 'orphaned', 'rejected', 'unknown'));

CREATE INDEX blocks_unknown_idx ON blocks (height) WHERE status = 'unknown';

-- Blocks an older pool recorded as rejected although the node never
-- refused them: submitblock unanswered ("submitblock failed: …": Core may
-- have run it later, and the block become its tip), "inconclusive",
-- "duplicate-inconclusive", or a first-try duplicate. They become unknown,
-- so the payout process looks them up in the chain like new ones: a block
-- that did make the main chain is credited at last.
UPDATE blocks SET status = 'unknown'
WHERE status = 'rejected' AND NOT accepted
  AND (verdict LIKE 'submitblock failed:%'
       OR verdict IN ('inconclusive', 'duplicate-inconclusive', 'duplicate')
       OR verdict LIKE '%already have block%');
