-- 012: API keys can be revoked, and credential changes leave an audit trail
-- (docs/api.md, Credentials). key_id names a key without showing it: the
-- first 16 hex characters of its stored hash (td_api_key_id), so keys made
-- before this migration get theirs from the hash they already have.
-- revoked_ms > 0: the key no longer authenticates (kept for the record).
ALTER TABLE credentials ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN revoked_ms INTEGER NOT NULL DEFAULT 0;
UPDATE credentials SET key_id = substr(hash, 1, 16);
CREATE INDEX credentials_owner ON credentials(owner_id, kind, key_id);
CREATE TABLE credential_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  owner_kind TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  detail_json TEXT NOT NULL
);
