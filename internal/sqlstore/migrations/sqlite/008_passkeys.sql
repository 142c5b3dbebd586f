-- Passkeys (WebAuthn). A user's passkeys are one credential row of kind
-- 'passkeys', as Ory Kratos keeps them; data holds them as JSON (credential
-- id, public key, sign counter, flags, name, times; nothing secret). Every
-- change rewrites data by compare-and-set, the sign counter included.
ALTER TABLE credentials ADD COLUMN data TEXT NOT NULL DEFAULT '';
