-- The audit log of security events (logins, lockouts, MFA and key changes,
-- recoveries, refresh-token reuse), read by operators with tessera audit.
-- Rows are only added; the id orders events of the same millisecond.
CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL, -- lower-cased, for lookup
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_email ON audit_events (email_key, at);
