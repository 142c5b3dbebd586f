-- One credential model: every way a user proves something is a row of
-- credentials (password, email address, phone, authenticator app,
-- recovery codes; passkeys next). The facts move out of users, which
-- keeps only the account itself (status, login counters, last login,
-- anti-phishing code): one source of truth per fact.
--
-- The email address moves too. Its lower-cased form (identifier_key) is
-- unique among email rows, which is what users.email_key was: logins look
-- an account up by it. Each kind is one row per user so far (passkeys,
-- several per user, will narrow credentials_user_kind).
--
--   kind            identifier  secret              verified_at       second_factor_at
--   password        recovered   argon2id PHC hash   when set          NULL
--                   via: the channel ('email', 'sms') of the recovery that set it, '' when the user chose it
--   email           address     ''                  when confirmed    NULL
--   phone           E.164       ''                  when verified     while texted codes are a factor (since when)
--   totp            ''          ''                  when enrolled     = verified_at (always a factor)
--   recovery_codes  ''          ''                  when issued       NULL (a fallback, not a factor)
--
-- The TOTP secret stays, encrypted, in totp_secrets and the recovery codes,
-- hashed, in recovery_codes: these rows say what is enrolled. Whether a
-- credential is a second factor is a time, not a flag, so "SMS MFA on
-- since" survives the move; NULL means it is not one. An SMS switch left
-- on a user with no phone at all (no way to text a code) is not carried.
CREATE TABLE credentials (
    id               INTEGER PRIMARY KEY,
    user_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    identifier       TEXT NOT NULL,
    identifier_key   TEXT NOT NULL, -- email: the address lower-cased, unique, for lookup; '' otherwise
    country          TEXT NOT NULL, -- phone: ISO 3166-1 alpha-2 it was entered with
    secret           TEXT NOT NULL, -- password: the hash
    verified_at      INTEGER,       -- NULL: unverified
    second_factor_at INTEGER,       -- NULL: not a second factor
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER
);
CREATE UNIQUE INDEX credentials_user_kind ON credentials (user_id, kind);
CREATE UNIQUE INDEX credentials_email ON credentials (identifier_key) WHERE kind = 'email';

INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at)
    SELECT id, 'email', email, email_key, '', '', email_verified_at, NULL, created_at, NULL FROM users;
INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at)
    SELECT id, 'password', '', '', '', password_hash, password_changed_at, NULL, password_changed_at, NULL FROM users WHERE password_hash <> '';
INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at)
    SELECT id, 'phone', phone, '', phone_country, '', phone_verified_at, sms_mfa_at, COALESCE(phone_verified_at, created_at), NULL
    FROM users WHERE phone <> '';
INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at)
    SELECT id, 'totp', '', '', '', '', totp_verified_at, totp_verified_at, totp_verified_at, NULL FROM users WHERE totp_verified_at IS NOT NULL;
INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at)
    SELECT user_id, 'recovery_codes', '', '', '', '', MIN(created_at), NULL, MIN(created_at), MAX(used_at)
    FROM recovery_codes WHERE user_id IN (SELECT id FROM users) GROUP BY user_id;

-- users without the moved columns. SQLite cannot drop a UNIQUE column
-- (email_key), so the table is rebuilt; nothing references it.
CREATE TABLE users_new (
    id                   TEXT PRIMARY KEY,
    status               TEXT NOT NULL,
    last_login_at        INTEGER,
    last_login_device    TEXT NOT NULL,
    failed_logins        INTEGER NOT NULL,
    locked_until         INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    anti_phishing_sealed BLOB
);
INSERT INTO users_new (id, status, last_login_at, last_login_device, failed_logins, locked_until, created_at, anti_phishing_sealed)
    SELECT id, status, last_login_at, last_login_device, failed_logins, locked_until, created_at, anti_phishing_sealed FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
