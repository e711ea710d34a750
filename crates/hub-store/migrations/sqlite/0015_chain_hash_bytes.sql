-- The chain's hashes as their 32 bytes instead of 64 hex digits: the history is the largest
-- table and never shrinks, and the two hashes were more than half of an event's bytes. The
-- columns keep their declared type (a BLOB is stored as it is in a TEXT column; changing the
-- declaration would mean rebuilding the table). A value that is not hex stays as it was, and
-- the chain's verification reports it as the alteration it is.
UPDATE consent_event
    SET prev_hash = COALESCE(unhex(prev_hash), prev_hash), hash = COALESCE(unhex(hash), hash)
    WHERE typeof(hash) = 'text' OR typeof(prev_hash) = 'text';
UPDATE chain_head SET last_hash = COALESCE(unhex(last_hash), last_hash)
    WHERE typeof(last_hash) = 'text';
