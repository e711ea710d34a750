-- The automation events (a consent's status changed, or its first record) are marked on the
-- history's own rows instead of copied into a table of their own: the copy was a fourth row and
-- a second index entry for every change (an import's million rows wrote a million of them). An
-- event's id is now its history event's id, unique across brands and increasing per brand in
-- commit order (taken under the brand's chain lock) as the copy's was.
--
-- `changed_from`: the status before this event when it changed the consent's status ('' for a
-- consent's first record); NULL when the status stayed. `changed_iys_state`: the consent's IYS
-- state after the change (channel consents only).
ALTER TABLE consent_event ADD COLUMN changed_from TEXT;
ALTER TABLE consent_event ADD COLUMN changed_iys_state TEXT;
UPDATE consent_event
    SET changed_from = COALESCE(c.old_status, ''), changed_iys_state = c.iys_state
    FROM change_event c WHERE c.event_id = consent_event.id;

-- Cursors and logs named copies by their own ids; they now name the history event. A cursor
-- moves to the last event it had passed, so no sink skips or repeats one.
UPDATE webhook SET cursor = COALESCE((SELECT MAX(c.event_id) FROM change_event c
    WHERE c.brand_code = webhook.brand_code AND c.id <= webhook.cursor), 0);
UPDATE event_cursor SET last_id = COALESCE((SELECT MAX(c.event_id) FROM change_event c
    WHERE c.brand_code = event_cursor.brand_code AND c.id <= event_cursor.last_id), 0);
UPDATE webhook_delivery SET change_event_id = c.event_id
    FROM change_event c WHERE c.id = webhook_delivery.change_event_id;
UPDATE webhook_redelivery SET change_event_id = c.event_id
    FROM change_event c WHERE c.id = webhook_redelivery.change_event_id;

DROP TABLE change_event;
CREATE INDEX consent_event_change ON consent_event (brand_code, id) WHERE changed_from IS NOT NULL;
-- What the readers (webhooks, NATS, `GET …/events`) see, under the old name and columns.
CREATE VIEW change_event AS
    SELECT id, brand_code, id AS event_id, recipient, recipient_type, channel, category,
           NULLIF(changed_from, '') AS old_status, status AS new_status, origin,
           changed_iys_state AS iys_state, received_at_ms AS at_ms
    FROM consent_event WHERE changed_from IS NOT NULL;
