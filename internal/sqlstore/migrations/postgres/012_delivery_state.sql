-- Delivery state as the provider reports it after accepting a message.
-- provider_id is the provider's id of the message (Twilio's SID, '' until
-- known); delivery_status is '' until a final report, then 'delivered',
-- 'undelivered' or 'failed', with the provider's error code in
-- provider_error; delivered_at is when it was reported delivered.
-- converted_at is when the verification was validated after its message
-- was delivered (the code reached the person and was used).
ALTER TABLE outbox ADD COLUMN provider_id TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN delivery_status TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN provider_error TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN delivered_at BIGINT;
ALTER TABLE outbox ADD COLUMN converted_at BIGINT;
