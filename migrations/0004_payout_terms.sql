-- 0004_payout_terms: the payout terms each block was found under,
-- one transaction per payment batch, dropped payment transactions, and
-- an append-only journal that TRUNCATE cannot empty either.

-- The scheme and pool fee a pool node ran under when it found a block,
-- written by the node just before the block itself (ledger.TermsBlockSink),
-- so no block it records is ever without them. They decide who is owed
-- the reward: a SOLO block paid its finder in the coinbase and a PPS
-- block paid its shares at acceptance, so crediting either under PPLNS or
-- PROP (a `hashforge payout run` with another --payout-scheme) would pay
-- twice; the payout process refuses to credit a block under another
-- scheme. Keyed by hash, not blocks.id, because it is written first; a
-- row whose block was never recorded (the record failed) is harmless.
-- Blocks recorded before this migration have no row: they are credited
-- under the configured scheme, as before.
CREATE TABLE block_terms (
    hash        text        PRIMARY KEY,
    scheme      text        NOT NULL CHECK (scheme IN ('pplns', 'pps', 'prop', 'solo')),
    fee_bps     integer     NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The fee a block was credited with, next to blocks.scheme (0002), for
-- the audit trail.
ALTER TABLE blocks ADD COLUMN fee_bps integer CHECK (fee_bps BETWEEN 0 AND 10000);

-- A transaction pays one batch. Reconciliation matches a batch whose
-- sendmany answer was lost by its outputs; two batches of the same
-- amounts to the same addresses must never both claim one transaction.
-- (If this fails on an existing database, two batches already share a
-- txid: one of them was never paid; see docs/payouts.md.)
CREATE UNIQUE INDEX payments_txid_key ON payments (txid);

--   dropped  sent, but the wallet has reported its transaction unknown or
--            conflicted for longer than the drop timeout; the items stay
--            paid and nothing is resent until an operator decides
--            (`hashforge payout refund`, docs/payouts.md)
ALTER TABLE payments DROP CONSTRAINT payments_state_check;
ALTER TABLE payments
    ADD CONSTRAINT payments_state_check
        CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'dropped')),
    ADD CONSTRAINT payments_dropped_txid_check CHECK (state <> 'dropped' OR txid IS NOT NULL),
    -- Since when the wallet has reported the transaction of a sent batch
    -- unknown or conflicted; NULL while it shows it.
    ADD COLUMN missing_since timestamptz;

-- Append-only means TRUNCATE too (the 0002 trigger covers UPDATE and
-- DELETE only). It also fires when a TRUNCATE ... CASCADE of blocks or
-- payments would reach the journal.
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
