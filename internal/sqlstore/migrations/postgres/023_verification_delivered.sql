-- Whether a message of the verification was reported delivered: only then
-- can its validation be a conversion (RecordConversion). Kept on the row
-- that every validation reads and updates anyway, so a validation no
-- longer asks the outbox on every call to find, nearly always, nothing.
-- Set by RecordDelivery, never cleared: a renewed verification keeps the
-- delivered message it had, as the outbox does.
ALTER TABLE verifications ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
UPDATE verifications SET delivered = 1 WHERE EXISTS (SELECT 1 FROM outbox
    WHERE outbox.owner = verifications.owner AND outbox.verification_id = verifications.id
      AND outbox.delivery_status = 'delivered');
