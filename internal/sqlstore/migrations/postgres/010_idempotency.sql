-- Idempotency-Key: one row per caller (scope), route and key. A request
-- claims its key by inserting the row first (status 0, claim a random
-- token), runs, then fills in its answer, sealed with the server's keys;
-- a retry within 24 h gets that answer and runs nothing. request_hash is
-- an HMAC of the request, so a key reused for another request is refused.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    route        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    claim        TEXT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    sealed       BYTEA,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, route, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
