-- The web console's people: users with argon2 password hashes, their brand roles, and sessions.

CREATE TABLE console_user (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    -- 1: every brand, every role; users and IYS connections too.
    global_admin    INTEGER  NOT NULL,
    -- Failed logins since the last success; at the limit the account locks for a while.
    failed_logins   INTEGER  NOT NULL DEFAULT 0,
    locked_until_ms INTEGER,
    disabled        INTEGER  NOT NULL DEFAULT 0,
    created_at_ms   INTEGER  NOT NULL,
    last_login_ms   INTEGER
);

-- What a user who is not a global admin may do per brand: read, write or admin.
CREATE TABLE console_grant (
    user_id    INTEGER NOT NULL REFERENCES console_user (id) ON DELETE CASCADE,
    brand_code INTEGER NOT NULL,
    role       TEXT   NOT NULL,
    PRIMARY KEY (user_id, brand_code)
);

-- A signed-in browser. Only the SHA-256 of the cookie's token is kept; the CSRF token travels
-- in every form of the session.
CREATE TABLE console_session (
    token_hash    TEXT   PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES console_user (id) ON DELETE CASCADE,
    csrf          TEXT   NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX console_session_user ON console_session (user_id);
