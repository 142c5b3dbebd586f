-- fallback_at is when a sent message of a phone channel falls back to the
-- next channel of its order unless reported delivered first, in Unix
-- milliseconds of the sending instance's clock (as next_attempt_at); 0
-- when it is on no such timer. A delivery report, the fallback itself, or
-- finding nothing left to do sets it back to 0, so the index holds only
-- the messages still waiting.
ALTER TABLE outbox ADD COLUMN fallback_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_fallback_due ON outbox (fallback_at) WHERE fallback_at > 0;
