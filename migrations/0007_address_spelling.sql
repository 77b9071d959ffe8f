-- 0007_address_spelling: one account per payout address, and payment
-- batches the wallet refuses for good are held for the operator.
--
-- Bech32 and bech32m addresses are case-insensitive: "BCRT1Q…" and
-- "bcrt1q…" are one address. Pools before this migration stored the
-- spelling the miner sent, so one address could have two accounts, and a
-- payment batch holding both is one Bitcoin Core's sendmany refuses
-- ("duplicated address"). From now on the pool stores the canonical
-- spelling (lower case; base58 is case-sensitive and stays as it is,
-- see btcaddr.Normalize); this migration respells what is already stored
-- and merges the accounts, without losing a satoshi:
--   workers        respelled; a worker that exists in both spellings
--                  becomes one (its shares repointed to the survivor)
--   accounts       the old spelling's balances move to the canonical
--                  account by a pair of 'address_merge' journal rows
--                  (the journal stays append-only: history keeps the old
--                  spelling, whose journal then sums to zero), and the
--                  old account row goes
--   block_credits, payment_items
--                  respelled; two rows of one block or batch that become
--                  one address are summed into one
--   blocks.finder_address respelled
-- Only strings that are valid bech32/bech32m with a Bitcoin HRP (bc, tb,
-- bcrt, sb) once lower-cased are touched, so a base58 address (even a
-- simnet one starting "Sb1") never is. Running it again changes nothing.

-- The bech32 (BIP 173) / bech32m (BIP 350) checksum: the lower-cased
-- address when s is one of them with a Bitcoin HRP, else NULL.
CREATE OR REPLACE FUNCTION hashforge_bech32_lower(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    a       text := lower(s);
    charset text := 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    gen     bigint[] := ARRAY[x'3b6a57b2'::bigint, x'26508e6d'::bigint, x'1ea119fa'::bigint,
                              x'3d4233dd'::bigint, x'2a1462b3'::bigint];
    sep     int;
    hrp     text;
    vals    int[] := '{}';
    chk     bigint := 1;
    top     bigint;
    v       int;
    i       int;
BEGIN
    IF length(a) > 90 THEN
        RETURN NULL;
    END IF;
    sep := length(a) - strpos(reverse(a), '1') + 1;
    IF strpos(a, '1') = 0 OR length(a) - sep < 6 THEN
        RETURN NULL;
    END IF;
    hrp := substr(a, 1, sep - 1);
    IF hrp NOT IN ('bc', 'tb', 'bcrt', 'sb') THEN
        RETURN NULL;
    END IF;
    FOR i IN 1..length(hrp) LOOP
        vals := vals || (ascii(substr(hrp, i, 1)) >> 5);
    END LOOP;
    vals := vals || 0;
    FOR i IN 1..length(hrp) LOOP
        vals := vals || (ascii(substr(hrp, i, 1)) & 31);
    END LOOP;
    FOR i IN sep + 1..length(a) LOOP
        v := strpos(charset, substr(a, i, 1)) - 1;
        IF v < 0 THEN
            RETURN NULL;
        END IF;
        vals := vals || v;
    END LOOP;
    FOREACH v IN ARRAY vals LOOP
        top := chk >> 25;
        chk := ((chk & x'1ffffff'::bigint) << 5) # v;
        FOR i IN 0..4 LOOP
            IF (top >> i) & 1 = 1 THEN
                chk := chk # gen[i + 1];
            END IF;
        END LOOP;
    END LOOP;
    IF chk = 1 OR chk = x'2bc830a3'::bigint THEN
        RETURN a;
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE journal DROP CONSTRAINT IF EXISTS journal_kind_check;
ALTER TABLE journal ADD CONSTRAINT journal_kind_check CHECK (kind IN
    ('block_credit', 'block_mature', 'block_orphan', 'pps_credit', 'payment', 'refund', 'address_merge'));

DO $$
DECLARE
    r     record;
    canon text;
    keep  bigint;
BEGIN
    -- Workers: the unique (address, name) key allows one of each.
    FOR r IN SELECT id, address, name, first_seen, last_seen FROM workers
             WHERE address <> lower(address) ORDER BY id LOOP
        canon := hashforge_bech32_lower(r.address);
        CONTINUE WHEN canon IS NULL;
        SELECT id INTO keep FROM workers WHERE address = canon AND name = r.name;
        IF keep IS NULL THEN
            UPDATE workers SET address = canon WHERE id = r.id;
        ELSE
            UPDATE shares SET worker_id = keep WHERE worker_id = r.id;
            UPDATE workers SET first_seen = LEAST(first_seen, r.first_seen),
                               last_seen = GREATEST(last_seen, r.last_seen)
            WHERE id = keep;
            DELETE FROM workers WHERE id = r.id;
        END IF;
    END LOOP;

    -- Accounts: every bucket moves, paid included, so that a refund of
    -- an old batch's item (respelled below) lands where its debit is.
    FOR r IN SELECT address, immature, mature, paid FROM accounts
             WHERE address <> lower(address) ORDER BY address FOR UPDATE LOOP
        canon := hashforge_bech32_lower(r.address);
        CONTINUE WHEN canon IS NULL;
        IF r.immature <> 0 OR r.mature <> 0 OR r.paid <> 0 THEN
            INSERT INTO journal (address, kind, immature, mature, paid, note) VALUES
                (r.address, 'address_merge', -r.immature, -r.mature, -r.paid, 'merged into ' || canon),
                (canon, 'address_merge', r.immature, r.mature, r.paid, 'merged from ' || r.address);
        END IF;
        INSERT INTO accounts (address, immature, mature, paid) VALUES (canon, r.immature, r.mature, r.paid)
        ON CONFLICT (address) DO UPDATE SET
            immature = accounts.immature + EXCLUDED.immature,
            mature = accounts.mature + EXCLUDED.mature,
            paid = accounts.paid + EXCLUDED.paid,
            updated_at = now();
        DELETE FROM accounts WHERE address = r.address;
    END LOOP;

    FOR r IN SELECT block_id, address, kind, amount, weight FROM block_credits
             WHERE address <> lower(address) ORDER BY block_id, address, kind LOOP
        canon := hashforge_bech32_lower(r.address);
        CONTINUE WHEN canon IS NULL;
        UPDATE block_credits SET amount = amount + r.amount, weight = weight + r.weight
        WHERE block_id = r.block_id AND address = canon AND kind = r.kind;
        IF FOUND THEN
            DELETE FROM block_credits WHERE block_id = r.block_id AND address = r.address AND kind = r.kind;
        ELSE
            UPDATE block_credits SET address = canon
            WHERE block_id = r.block_id AND address = r.address AND kind = r.kind;
        END IF;
    END LOOP;

    FOR r IN SELECT payment_id, address, amount FROM payment_items
             WHERE address <> lower(address) ORDER BY payment_id, address LOOP
        canon := hashforge_bech32_lower(r.address);
        CONTINUE WHEN canon IS NULL;
        UPDATE payment_items SET amount = amount + r.amount
        WHERE payment_id = r.payment_id AND address = canon;
        IF FOUND THEN
            DELETE FROM payment_items WHERE payment_id = r.payment_id AND address = r.address;
            UPDATE payments SET items = items - 1 WHERE id = r.payment_id;
        ELSE
            UPDATE payment_items SET address = canon WHERE payment_id = r.payment_id AND address = r.address;
        END IF;
    END LOOP;

    UPDATE blocks SET finder_address = hashforge_bech32_lower(finder_address)
    WHERE finder_address <> lower(finder_address) AND hashforge_bech32_lower(finder_address) IS NOT NULL;
END
$$;

DROP FUNCTION hashforge_bech32_lower(text);

-- held: the wallet refused the batch for a reason sending it again would
-- not change (an invalid or duplicated address, an invalid amount). Its
-- items stay paid, and its addresses are left out of new batches, so the
-- same batch is not rebuilt and refused forever; an operator fixes the
-- cause and gives the items back to the balances with `hashforge payout
-- refund --batch UUID` (docs/decisions.md), after which the next batch
-- pays them.
ALTER TABLE payments DROP CONSTRAINT payments_state_check;
ALTER TABLE payments
    ADD CONSTRAINT payments_state_check
        CHECK (state IN ('planned', 'sent', 'confirmed', 'failed', 'dropped', 'held'));
CREATE INDEX IF NOT EXISTS payments_held_idx ON payments (id) WHERE state = 'held';
