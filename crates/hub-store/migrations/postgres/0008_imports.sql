-- Bulk imports: one row per import with its progress, the uploaded file in chunks (so an import
-- survives a restart and any instance can resume it), and the rejected rows.
CREATE TABLE import_job (
    id             BIGSERIAL PRIMARY KEY,
    brand_code     BIGINT NOT NULL,
    file_name      TEXT,
    -- SHA-256 of the file: a command-line import of the same file resumes the unfinished one.
    file_hash      TEXT,
    format         TEXT    NOT NULL,
    -- The column mapping's overrides, as JSON.
    mapping        TEXT    NOT NULL,
    actor          TEXT,
    -- api (uploaded, run by any instance's worker) or cli (a file read by `iyshub import`)
    via            TEXT    NOT NULL,
    dry_run        BIGINT NOT NULL,
    -- uploading, queued, running, done, failed
    state          TEXT    NOT NULL,
    file_bytes     BIGINT NOT NULL DEFAULT 0,
    -- The last line whose batch is committed: a resumed import starts after it.
    line           BIGINT NOT NULL DEFAULT 0,
    rows_read      BIGINT NOT NULL DEFAULT 0,
    applied        BIGINT NOT NULL DEFAULT 0,
    unchanged      BIGINT NOT NULL DEFAULT 0,
    older          BIGINT NOT NULL DEFAULT 0,
    rejected       BIGINT NOT NULL DEFAULT 0,
    error          TEXT,
    lease_owner    TEXT,
    lease_until_ms BIGINT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX import_job_brand ON import_job (brand_code, id);
CREATE INDEX import_job_open ON import_job (state, id);

CREATE TABLE import_chunk (
    import_id BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    data      BYTEA    NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE import_reject (
    import_id BIGINT NOT NULL,
    line      BIGINT NOT NULL,
    code      TEXT    NOT NULL,
    field     TEXT,
    value     TEXT,
    message   TEXT    NOT NULL,
    PRIMARY KEY (import_id, line)
);
