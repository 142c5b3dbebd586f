-- SMS as a second factor is now its own switch (a verified phone can stay
-- a user key with SMS MFA off); the anti-phishing code, sealed; and the
-- counters that rate-limit one-time-token sends per user and destination.
ALTER TABLE users ADD COLUMN sms_mfa_at BIGINT;
ALTER TABLE users ADD COLUMN anti_phishing_sealed BYTEA;
UPDATE users SET sms_mfa_at = phone_verified_at;

CREATE TABLE send_limits (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    last_at      BIGINT NOT NULL
);
