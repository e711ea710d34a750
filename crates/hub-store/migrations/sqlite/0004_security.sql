-- API keys expire and record when they were last used.
ALTER TABLE api_key ADD COLUMN last_used_at_ms INTEGER;
ALTER TABLE api_key ADD COLUMN expires_at_ms INTEGER;

-- When a brand's changes feed was last read (or tried), shared by every instance.
ALTER TABLE sync_cursor ADD COLUMN last_attempt_ms INTEGER;

-- Movements from IYS the hub cannot take (a date far in the future, an unreadable recipient):
-- kept with the reason for a person, while the cursor moves on.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_code  INTEGER NOT NULL,
    source      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    movement    TEXT   NOT NULL,
    at_ms       INTEGER NOT NULL,
    resolved_ms INTEGER
);
CREATE INDEX quarantine_brand ON quarantine (brand_code, id);
