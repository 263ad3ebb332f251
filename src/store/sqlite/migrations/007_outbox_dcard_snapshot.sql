-- 007: an outbox row carries what its notification says about the digital
-- card, as the change left it (issue 4; docs/performance.md "Notification
-- delivery"). The delivery thread used to read the digital card for every
-- notification it built: a read transaction and a page read per row, on a
-- connection whose cache every write drops. A notification describes a
-- change, so the card as that change left it is also the right content.
ALTER TABLE outbox ADD COLUMN token_storage_id TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN is_primary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last4 TEXT NOT NULL DEFAULT '';
-- The digital card's state after the change (td_dc_state); -1: not known
-- (card-level rows, and rows whose card changed again before this migration).
ALTER TABLE outbox ADD COLUMN dcard_state INTEGER NOT NULL DEFAULT -1;

-- Rows that may still be sent (open, or dead and replayable) get what the
-- delivery thread read before: the card as it stands; its state only while
-- the card is still as this row left it.
UPDATE outbox SET
  token_storage_id = coalesce((SELECT d.token_storage_id FROM digital_cards d WHERE d.id = outbox.digital_card_id), ''),
  is_primary = coalesce((SELECT d.is_primary FROM digital_cards d WHERE d.id = outbox.digital_card_id), 0),
  last4 = coalesce((SELECT d.last4 FROM digital_cards d WHERE d.id = outbox.digital_card_id), ''),
  dcard_state = coalesce((SELECT d.state FROM digital_cards d
                          WHERE d.id = outbox.digital_card_id AND d.seq = outbox.dcard_seq), -1)
WHERE digital_card_id <> '' AND state IN ('PENDING', 'IN_FLIGHT', 'DEAD');
