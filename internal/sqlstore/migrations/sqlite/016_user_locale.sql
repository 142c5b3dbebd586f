-- The language the user chose for the messages Tessera sends them (a
-- catalogue of internal/i18n, such as 'de'); '' follows the language of
-- the request that caused the message, then English.
ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT '';
