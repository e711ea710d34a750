-- API keys expire and record when they were last used.
ALTER TABLE api_key ADD COLUMN last_used_at_ms BIGINT;
ALTER TABLE api_key ADD COLUMN expires_at_ms BIGINT;

-- When a brand's changes feed was last read (or tried), shared by every instance.
ALTER TABLE sync_cursor ADD COLUMN last_attempt_ms BIGINT;

-- Movements from IYS the hub cannot take (a date far in the future, an unreadable recipient):
-- kept with the reason for a person, while the cursor moves on.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    brand_code  BIGINT NOT NULL,
    source      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    movement    TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    resolved_ms BIGINT
);
CREATE INDEX quarantine_brand ON quarantine (brand_code, id);
