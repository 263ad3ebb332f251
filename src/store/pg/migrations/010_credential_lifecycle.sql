-- 010: API keys can be revoked, and credential changes leave an audit trail
-- (as SQLite's migration 012). key_id is the first 16 hex characters of the
-- key's stored hash (td_api_key_id); revoked_ms > 0: revoked.
ALTER TABLE credentials ADD COLUMN key_id text NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN revoked_ms bigint NOT NULL DEFAULT 0;
UPDATE credentials SET key_id = substr(hash, 1, 16);
CREATE INDEX credentials_owner ON credentials(owner_id, kind, key_id);
CREATE TABLE credential_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time_ms bigint NOT NULL,
  type text NOT NULL,
  owner_kind text NOT NULL,
  owner_id text NOT NULL,
  key_id text NOT NULL,
  detail_json text NOT NULL
);
