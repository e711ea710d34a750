-- A delivery's outbox row is found through its consent's key (outbox_key) and the event id,
-- so this index is no longer read: dropping it spares every change an index entry.
DROP INDEX IF EXISTS outbox_event;
