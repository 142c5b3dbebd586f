-- Times are Unix milliseconds (INTEGER) in both dialects, so the same
-- queries serve SQLite and PostgreSQL.

CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Each owner (API client) has its own id space: (owner, id) is the key, so
-- one client can neither read nor collide with another's verifications.
CREATE TABLE verifications (
    owner        TEXT NOT NULL,
    id           TEXT NOT NULL,
    method       TEXT NOT NULL,
    consumer     TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    code_hash    BLOB,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    payload      BLOB,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    consumed_at  INTEGER,
    PRIMARY KEY (owner, id)
);
CREATE INDEX verifications_expires_at ON verifications (expires_at);

CREATE TABLE totp_secrets (
    owner       TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    verified_at INTEGER,
    last_step   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, consumer)
);

-- The transactional outbox. sealed holds the encrypted message and is set
-- to NULL once the message is sent or given up.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    verification_id TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    sealed          BLOB,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_verification ON outbox (owner, verification_id);
