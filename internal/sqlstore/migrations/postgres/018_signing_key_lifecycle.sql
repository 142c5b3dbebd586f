-- Signing keys get a life cycle: a key is published in JWKS from its
-- creation, signs from activates_at (next -> active), and retires when a
-- key of a later generation activates. generation orders the keys and is
-- unique, so two instances rotating at once create one key, not two.
-- Keys from before signed at once: they activated when they were created,
-- and take generations in creation order.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at,
    generation = (SELECT COUNT(*) FROM signing_keys k
                  WHERE k.created_at < signing_keys.created_at
                     OR (k.created_at = signing_keys.created_at AND k.id <= signing_keys.id));
CREATE UNIQUE INDEX signing_keys_generation ON signing_keys (generation);
