-- The chain's hashes as their 32 bytes (BYTEA) instead of 64 hex digits: the history is the
-- largest table and never shrinks, and the two hashes were more than a third of an event's
-- bytes. This rewrites consent_event once. A value that is not 64 hex digits keeps its bytes,
-- and the chain's verification reports it as the alteration it is.
CREATE FUNCTION hub_hash_bytes(t TEXT) RETURNS BYTEA LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t ~ '^[0-9a-fA-F]{64}$' THEN decode(t, 'hex') ELSE convert_to(t, 'UTF8') END
$$;
ALTER TABLE consent_event
    ALTER COLUMN prev_hash TYPE BYTEA USING hub_hash_bytes(prev_hash),
    ALTER COLUMN hash      TYPE BYTEA USING hub_hash_bytes(hash);
ALTER TABLE chain_head
    ALTER COLUMN last_hash TYPE BYTEA USING hub_hash_bytes(last_hash);
DROP FUNCTION hub_hash_bytes(TEXT);
