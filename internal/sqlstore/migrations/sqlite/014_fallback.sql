-- fallback_id is the id of the message that took over from this one on
-- the next channel of its fallback order ('' while none did): set once, in
-- the transaction that queues the successor, so a failure reported twice
-- (a repeated status callback, a retried send) never falls back twice.
ALTER TABLE outbox ADD COLUMN fallback_id TEXT NOT NULL DEFAULT '';
