-- Assurance on sessions: how strongly (aal: 1 or 2 factors) and how
-- recently (auth_time) the user proved who they are. Existing sessions
-- keep what their amr says: "mfa" meant two factors.
ALTER TABLE sessions ADD COLUMN aal BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET aal = 2 WHERE amr LIKE '%mfa%';
UPDATE sessions SET auth_time = created_at;

-- Flows kept on the server: logins waiting for a second factor, step-ups,
-- pending registrations, password and key recoveries, key changes, MFA
-- disabling. A flow's id is the processingId clients carry; state moves
-- only forward, by compare-and-set. Pending MFA logins of the old table are not
-- carried over: they live minutes, and the user logs in again.
DROP TABLE login_challenges;
CREATE TABLE flows (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    state        TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    email_key    TEXT NOT NULL, -- lower-cased address of a registration or recovery
    session_id   TEXT NOT NULL,
    label        TEXT NOT NULL,
    secret       BYTEA,
    challenge    BYTEA,
    required_aal BIGINT NOT NULL,
    aal          BIGINT NOT NULL,
    methods      TEXT NOT NULL,
    csrf_secret  BYTEA NOT NULL,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    user_agent   TEXT NOT NULL,
    ip           TEXT NOT NULL
);
CREATE INDEX flows_registration ON flows (email_key, created_at) WHERE type = 'registration';
CREATE INDEX flows_user ON flows (user_id, type, created_at);
CREATE INDEX flows_expiry ON flows (expires_at);

-- Unconfirmed accounts become what they always were: pending sign-ups.
-- They could not log in; whoever registered them registers again, and
-- the address no longer waits on an account nobody confirmed.
DELETE FROM users WHERE status = 'unverified';
