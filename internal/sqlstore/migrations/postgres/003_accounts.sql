-- End-user accounts, their sessions and refresh tokens, pending MFA
-- logins, recovery codes, and the keys that sign ID tokens.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL,
    email_key           TEXT NOT NULL UNIQUE, -- lower-cased, for uniqueness and lookup
    email_verified_at   BIGINT,
    phone               TEXT NOT NULL,
    phone_country       TEXT NOT NULL,
    phone_verified_at   BIGINT,
    password_hash       TEXT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    status              TEXT NOT NULL,
    totp_verified_at    BIGINT,
    last_login_at       BIGINT,
    last_login_device   TEXT NOT NULL,
    failed_logins       BIGINT NOT NULL,
    locked_until        BIGINT NOT NULL,
    created_at          BIGINT NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    amr           TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    ip            TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash             BYTEA PRIMARY KEY,
    session_id       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    used_at          BIGINT,
    successor_sealed BYTEA
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE login_challenges (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    user_agent   TEXT NOT NULL,
    ip           TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE signing_keys (
    id             TEXT PRIMARY KEY,
    algorithm      TEXT NOT NULL,
    public_key     BYTEA NOT NULL,
    private_sealed BYTEA NOT NULL,
    created_at     BIGINT NOT NULL
);
