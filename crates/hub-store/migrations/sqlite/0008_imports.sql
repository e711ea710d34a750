-- Bulk imports: one row per import with its progress, the uploaded file in chunks (so an import
-- survives a restart and any instance can resume it), and the rejected rows.
CREATE TABLE import_job (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_code     INTEGER NOT NULL,
    file_name      TEXT,
    -- SHA-256 of the file: a command-line import of the same file resumes the unfinished one.
    file_hash      TEXT,
    format         TEXT    NOT NULL,
    -- The column mapping's overrides, as JSON.
    mapping        TEXT    NOT NULL,
    actor          TEXT,
    -- api (uploaded, run by any instance's worker) or cli (a file read by `iyshub import`)
    via            TEXT    NOT NULL,
    dry_run        INTEGER NOT NULL,
    -- uploading, queued, running, done, failed
    state          TEXT    NOT NULL,
    file_bytes     INTEGER NOT NULL DEFAULT 0,
    -- The last line whose batch is committed: a resumed import starts after it.
    line           INTEGER NOT NULL DEFAULT 0,
    rows_read      INTEGER NOT NULL DEFAULT 0,
    applied        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    older          INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE INDEX import_job_brand ON import_job (brand_code, id);
CREATE INDEX import_job_open ON import_job (state, id);

CREATE TABLE import_chunk (
    import_id INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE import_reject (
    import_id INTEGER NOT NULL,
    line      INTEGER NOT NULL,
    code      TEXT    NOT NULL,
    field     TEXT,
    value     TEXT,
    message   TEXT    NOT NULL,
    PRIMARY KEY (import_id, line)
);
