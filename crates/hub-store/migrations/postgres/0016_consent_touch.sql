-- Every write of a brand's consents, in commit order: the log that keeps the in-memory
-- send-state mirror (src/mirror.rs) exact on PostgreSQL, as consent_touch does on SQLite.
--
-- PostgreSQL commits concurrent transactions in any order, so a plain sequence is not commit
-- order. Per brand it is: the trigger takes the brand's lock (its chain_head row, the lock every
-- writer of the hub already holds) before it draws the row's seq, and the lock is held to the
-- commit. A later writer of the brand draws its seq only after the earlier one committed, so
-- within a brand seq order is commit order, whoever writes (the hub, an import, psql).
-- The lock is taken NOWAIT: every writer of the hub takes it before it touches a consent, so it
-- never waits here. A writer that did not (a statement by hand) already holds consent rows the
-- hub may be waiting for; waiting for the brand's lock in turn would deadlock, so its statement
-- fails at once instead ("could not obtain lock on row in relation chain_head") and can be run
-- again, or run after `SELECT 1 FROM chain_head WHERE brand_code = … FOR UPDATE`.
-- The sequence must not cache values (CACHE 1, the default): a cached block would hand one
-- session a seq below another's already committed one.
--
-- One row per statement and brand, with the statement's keys as arrays: a batch of 5,000
-- changes adds one row, not 5,000. prev_seq is the brand's previous row: a mirror that finds
-- the row after the one it saw missing (pruned) builds itself again.
CREATE SEQUENCE consent_touch_seq;

CREATE TABLE consent_touch (
    seq             BIGINT PRIMARY KEY,
    prev_seq        BIGINT NOT NULL,
    brand_code      BIGINT NOT NULL,
    recipients      TEXT[] COLLATE "C" NOT NULL,
    recipient_types TEXT[] COLLATE "C" NOT NULL,
    channels        TEXT[] COLLATE "C" NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX consent_touch_brand ON consent_touch (brand_code, seq);

CREATE FUNCTION consent_touched() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b BIGINT;
BEGIN
    FOR b IN SELECT DISTINCT brand_code FROM touched ORDER BY brand_code LOOP
        PERFORM 1 FROM chain_head WHERE brand_code = b FOR UPDATE NOWAIT;
        INSERT INTO consent_touch (seq, prev_seq, brand_code, recipients, recipient_types, channels)
            SELECT nextval('consent_touch_seq'),
                   COALESCE((SELECT MAX(seq) FROM consent_touch WHERE brand_code = b), 0),
                   b, array_agg(recipient), array_agg(recipient_type), array_agg(channel)
            FROM touched WHERE brand_code = b;
    END LOOP;
    RETURN NULL;
END
$$;

-- Statement triggers with transition tables: one call per statement, however many rows. An
-- upsert fires the insert trigger for its inserted rows and the update trigger for the rest.
CREATE TRIGGER consent_touch_insert AFTER INSERT ON consent
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION consent_touched();
CREATE TRIGGER consent_touch_update AFTER UPDATE ON consent
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION consent_touched();
CREATE TRIGGER consent_touch_delete AFTER DELETE ON consent
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION consent_touched();
