-- SMS as a second factor is now its own switch (a verified phone can stay
-- a user key with SMS MFA off); the anti-phishing code, sealed; and the
-- counters that rate-limit one-time-token sends per user and destination.
ALTER TABLE users ADD COLUMN sms_mfa_at INTEGER;
ALTER TABLE users ADD COLUMN anti_phishing_sealed BLOB;
UPDATE users SET sms_mfa_at = phone_verified_at;

CREATE TABLE send_limits (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    last_at      INTEGER NOT NULL
);
