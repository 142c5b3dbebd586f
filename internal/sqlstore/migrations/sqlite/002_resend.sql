-- Resending the same code: the message content stays, encrypted, on the
-- verification until it is used or expires; sends and last_sent_at enforce
-- the resend cooldown and cap in the same statement that queues a resend.
ALTER TABLE verifications ADD COLUMN sealed_content BLOB;
ALTER TABLE verifications ADD COLUMN sends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE verifications ADD COLUMN last_sent_at INTEGER NOT NULL DEFAULT 0;
