-- End-user accounts, their sessions and refresh tokens, pending MFA
-- logins, recovery codes, and the keys that sign ID tokens.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL,
    email_key           TEXT NOT NULL UNIQUE, -- lower-cased, for uniqueness and lookup
    email_verified_at   INTEGER,
    phone               TEXT NOT NULL,
    phone_country       TEXT NOT NULL,
    phone_verified_at   INTEGER,
    password_hash       TEXT NOT NULL,
    password_changed_at INTEGER NOT NULL,
    status              TEXT NOT NULL,
    totp_verified_at    INTEGER,
    last_login_at       INTEGER,
    last_login_device   TEXT NOT NULL,
    failed_logins       INTEGER NOT NULL,
    locked_until        INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    amr           TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    ip            TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash             BLOB PRIMARY KEY,
    session_id       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    used_at          INTEGER,
    successor_sealed BLOB
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE login_challenges (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    user_agent   TEXT NOT NULL,
    ip           TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL,
    hash       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY,
    algorithm      TEXT NOT NULL,
    public_key     BLOB NOT NULL,
    private_sealed BLOB NOT NULL,
    created_at     INTEGER NOT NULL
);
