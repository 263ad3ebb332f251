-- 008: the end user's phone and email, sealed (as SQLite's migration 010).
-- contact_sealed holds them, sealed with the master key like the PAN (the
-- service seals and opens it); phone and email stay only for rows written
-- before this migration, until a tokend's start seals them
-- (td_svc_seal_contacts) and blanks them. The partial index finds those rows
-- without a scan, and is empty afterwards.
ALTER TABLE cards ADD COLUMN contact_sealed bytea NOT NULL DEFAULT ''::bytea;
CREATE INDEX cards_contact_clear ON cards(issuer_id, card_id) WHERE phone <> '' OR email <> '';
