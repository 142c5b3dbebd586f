-- The outbox had two indexes over every message, (status, next_attempt_at)
-- and (channel, status, next_attempt_at), though only pending messages are
-- ever looked up by them (the workers' claims, the outbox depth). Each
-- message wrote both twice: on insert, and again when it was marked sent
-- or failed (status is in both). One partial index over the pending
-- messages serves the same lookups; a message enters it once and leaves it
-- once, and the index stays as small as the backlog.
DROP INDEX outbox_due;
DROP INDEX outbox_channel_due;
CREATE INDEX outbox_pending ON outbox (channel, next_attempt_at) WHERE status = 'pending';
