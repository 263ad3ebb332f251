-- 001: members, keys, credentials, issuers, token requests, tokens, events,
-- idempotency records.
CREATE TABLE members (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE member_keys (
  member_id TEXT NOT NULL REFERENCES members(id),
  key_id TEXT NOT NULL,
  level INTEGER NOT NULL,
  algorithm TEXT NOT NULL,
  public_key BLOB NOT NULL,
  sealed_secret BLOB,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (member_id, key_id)
);
CREATE TABLE credentials (
  hash TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  level INTEGER NOT NULL,
  role TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL
);
CREATE TABLE issuers (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE token_requests (
  id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  to_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  request_json TEXT NOT NULL,
  token_id TEXT NOT NULL DEFAULT '',
  signature_json TEXT,
  consent_hash TEXT NOT NULL DEFAULT '',
  consent_expires_ms INTEGER NOT NULL DEFAULT 0,
  consent_used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX token_requests_consent ON token_requests(consent_hash) WHERE consent_hash <> '';
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  state INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  to_id TEXT NOT NULL,
  issuer_id TEXT NOT NULL DEFAULT '',
  ref_id TEXT NOT NULL DEFAULT '',
  acting_as_ref_id TEXT NOT NULL DEFAULT '',
  token_request_id TEXT NOT NULL DEFAULT '',
  replaced_by TEXT NOT NULL DEFAULT '',
  canceled_by TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL,
  json TEXT NOT NULL,
  payload_canonical TEXT NOT NULL,
  accounts_src TEXT,
  accounts_dst TEXT
);
CREATE INDEX tokens_from ON tokens(from_id, created_ms);
CREATE INDEX tokens_to ON tokens(to_id, created_ms);
CREATE TABLE token_events (
  token_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  type TEXT NOT NULL,
  actor TEXT NOT NULL,
  customer_ip TEXT,
  customer_initiated TEXT,
  customer_device_id TEXT,
  detail_json TEXT,
  PRIMARY KEY (token_id, seq)
);
CREATE TABLE idempotency (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  req_hash TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (scope, key)
);
