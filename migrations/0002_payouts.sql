-- 0002_payouts: accounts, the money journal, per-block credits, payment
-- batches and their items; the block life cycle; the network difficulty
-- of each share (for PPS).
--
-- Money is BIGINT satoshis everywhere. Every change to an account is a
-- journal row, written in the same transaction as the account update, so
-- accounts is a cache of SUM(journal) per address that can be checked
-- (ledger.CheckJournal) and rebuilt at any time.

-- The network difficulty of the job a share was for. PPS values a share at
-- acceptance as difficulty / network_difficulty of the block subsidy, and
-- the network difficulty may change before the payout process reads it.
-- A constant default keeps this ALTER a catalogue-only change (no rewrite
-- of the biggest table); 0 means "unknown" and PPS credits such a share
-- nothing rather than guessing.
ALTER TABLE shares ADD COLUMN network_difficulty double precision NOT NULL DEFAULT 0;

-- Block life cycle:
--   pending   found and accepted by the node, waiting for coinbase maturity;
--             credited_at is set once its credits are in accounts.immature
--   confirmed matured in the main chain: credits moved to accounts.mature
--   orphaned  no longer in the node's main chain: credits reverted
--   rejected  the node refused it at submission; never credited
ALTER TABLE blocks
    ADD COLUMN confirmations bigint      NOT NULL DEFAULT 0,
    ADD COLUMN credited_at   timestamptz,
    ADD COLUMN settled_at    timestamptz,
    -- The scheme the block was credited under, for the audit trail.
    ADD COLUMN scheme        text,
    ADD CONSTRAINT blocks_status_check
        CHECK (status IN ('pending', 'confirmed', 'orphaned', 'rejected'));

CREATE INDEX blocks_unsettled_idx ON blocks (height) WHERE status = 'pending';

-- One row per payout address that was ever credited. A cache of the
-- journal: immature = SUM(journal.immature) and so on, kept in step by the
-- ledger in the same transaction as each journal row.
--   immature  credits of pending blocks
--   mature    spendable balance, waiting for a payment batch
--   paid      moved into payment batches (planned, sent or confirmed); a
--             failed batch moves its items back to mature
CREATE TABLE accounts (
    address    text        PRIMARY KEY,
    immature   bigint      NOT NULL DEFAULT 0 CHECK (immature >= 0),
    mature     bigint      NOT NULL DEFAULT 0 CHECK (mature >= 0),
    paid       bigint      NOT NULL DEFAULT 0 CHECK (paid >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX accounts_mature_idx ON accounts (mature) WHERE mature > 0;

-- Payment batches: one wallet sendmany each. The batch id is the
-- idempotency marker: it is the sendmany comment, so after a crash the
-- wallet's own transaction list tells whether a batch was sent.
--   planned   items written and balances debited; not known to be sent
--   sent      the wallet returned (or reconciliation found) the txid
--   confirmed the transaction has the configured confirmations
--   failed    the wallet refused it; the items went back to mature
CREATE TABLE payments (
    id           bigserial   PRIMARY KEY,
    batch_id     uuid        NOT NULL UNIQUE,
    state        text        NOT NULL CHECK (state IN ('planned', 'sent', 'confirmed', 'failed')),
    txid         text,
    total        bigint      NOT NULL CHECK (total > 0),
    -- Network fee the wallet paid, in satoshis, once known (the pool pays
    -- it, miners receive their items in full).
    fee          bigint      NOT NULL DEFAULT 0 CHECK (fee >= 0),
    items        integer     NOT NULL CHECK (items > 0),
    reason       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    confirmed_at timestamptz,
    CHECK (state NOT IN ('sent', 'confirmed') OR txid IS NOT NULL)
);

-- At most one batch may be planned-but-unsent at a time: the one the
-- payout process must reconcile before it plans another. This is what
-- makes "reconcile, then plan" safe with several pool nodes.
CREATE UNIQUE INDEX payments_one_planned_idx ON payments ((true)) WHERE state = 'planned';
CREATE INDEX payments_created_idx ON payments (created_at DESC, id DESC);
CREATE INDEX payments_open_idx ON payments (id) WHERE state IN ('planned', 'sent');

CREATE TABLE payment_items (
    payment_id bigint NOT NULL REFERENCES payments (id),
    address    text   NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payment_id, address)
);

CREATE INDEX payment_items_address_idx ON payment_items (address, payment_id DESC);

-- What a block paid to whom, by scheme. kind is 'share' for miners'
-- credits (PPLNS/PROP) and 'fee' for the pool fee, so a fee address that
-- also mines gets two rows. weight is the difficulty the credit is based
-- on (0 for the fee), kept to let anyone re-derive the split.
CREATE TABLE block_credits (
    block_id bigint           NOT NULL REFERENCES blocks (id),
    address  text             NOT NULL,
    kind     text             NOT NULL CHECK (kind IN ('share', 'fee')),
    amount   bigint           NOT NULL CHECK (amount >= 0),
    weight   double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (block_id, address, kind)
);

-- The append-only money journal. Each row moves satoshis into, out of or
-- between the three buckets of one account:
--   block_credit  +immature             a pending block's credit
--   block_mature  -immature +mature     the block matured
--   block_orphan  -immature             the block left the main chain
--   pps_credit    +mature               PPS: a share batch's expected value
--   payment       -mature +paid         item of a planned batch
--   refund        +mature -paid         item of a failed batch
-- SUM of each column per address equals the accounts row.
CREATE TABLE journal (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    address     text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN
                    ('block_credit', 'block_mature', 'block_orphan', 'pps_credit', 'payment', 'refund')),
    immature    bigint      NOT NULL DEFAULT 0,
    mature      bigint      NOT NULL DEFAULT 0,
    paid        bigint      NOT NULL DEFAULT 0,
    block_id    bigint      REFERENCES blocks (id),
    payment_id  bigint      REFERENCES payments (id),
    -- PPS: the share batch (spool_batches.batch_id) this credit is for.
    share_batch uuid,
    note        text        NOT NULL DEFAULT ''
);

CREATE INDEX journal_address_idx ON journal (address, id);
CREATE INDEX journal_block_idx ON journal (block_id) WHERE block_id IS NOT NULL;
-- A share batch is credited by PPS once per address, whatever replays it.
CREATE UNIQUE INDEX journal_pps_once_idx ON journal (share_batch, address) WHERE kind = 'pps_credit';

-- Append-only means append-only: corrections are new rows, never edits.
CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();
