-- The text columns of the hot indexes compare bytes (collation "C"), as SQLite's do. Under the
-- database's own collation (C.UTF-8, en_US.UTF-8, tr_TR.UTF-8 …) PostgreSQL compares every key
-- through strcoll: a profile of 10,000-recipient checks had a third of PostgreSQL's time in
-- comparing index keys. These columns hold phone numbers, e-mail addresses, codes and IYS
-- identifiers, which have no linguistic order, and byte order is also the order Rust sorts
-- keys in. The change is binary-compatible: no table is rewritten, only these indexes rebuilt.
ALTER TABLE consent
    ALTER COLUMN recipient      TYPE TEXT COLLATE "C",
    ALTER COLUMN recipient_type TYPE TEXT COLLATE "C",
    ALTER COLUMN channel        TYPE TEXT COLLATE "C";
ALTER TABLE consent_event
    ALTER COLUMN recipient                TYPE TEXT COLLATE "C",
    ALTER COLUMN iys_transaction_id       TYPE TEXT COLLATE "C",
    ALTER COLUMN delivered_transaction_id TYPE TEXT COLLATE "C",
    ALTER COLUMN iys_creation_date        TYPE TEXT COLLATE "C";
ALTER TABLE category_consent
    ALTER COLUMN subject  TYPE TEXT COLLATE "C",
    ALTER COLUMN category TYPE TEXT COLLATE "C";
ALTER TABLE outbox
    ALTER COLUMN recipient      TYPE TEXT COLLATE "C",
    ALTER COLUMN recipient_type TYPE TEXT COLLATE "C",
    ALTER COLUMN channel        TYPE TEXT COLLATE "C",
    ALTER COLUMN state          TYPE TEXT COLLATE "C";
ALTER TABLE profile
    ALTER COLUMN external_id TYPE TEXT COLLATE "C";
ALTER TABLE profile_address
    ALTER COLUMN external_id TYPE TEXT COLLATE "C",
    ALTER COLUMN recipient   TYPE TEXT COLLATE "C";
ALTER TABLE idempotency
    ALTER COLUMN key TYPE TEXT COLLATE "C";
