-- Outbox leases held by a named worker, on the database's clock.
-- lease_holder is the worker that claimed the message ('' while nobody
-- has: just queued, or back from a failed attempt); locked_until is then
-- the end of its lease in the database's milliseconds, renewed while the
-- send runs. A message nobody holds may be claimed at once, whatever
-- locked_until says; one held is claimable only after its lease ran out.
-- A worker's renewal, retry and failure apply only while it is the holder.
ALTER TABLE outbox ADD COLUMN lease_holder TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_channel_due ON outbox (channel, status, next_attempt_at);
