-- Times are Unix milliseconds (BIGINT here, INTEGER in SQLite), so the same
-- queries serve SQLite and PostgreSQL.

CREATE TABLE clients (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Each owner (API client) has its own id space: (owner, id) is the key, so
-- one client can neither read nor collide with another's verifications.
CREATE TABLE verifications (
    owner        TEXT NOT NULL,
    id           TEXT NOT NULL,
    method       TEXT NOT NULL,
    consumer     TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    code_hash    BYTEA,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    payload      BYTEA,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    consumed_at  BIGINT,
    PRIMARY KEY (owner, id)
);
CREATE INDEX verifications_expires_at ON verifications (expires_at);

CREATE TABLE totp_secrets (
    owner       TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    verified_at BIGINT,
    last_step   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
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
    sealed          BYTEA,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_verification ON outbox (owner, verification_id);
