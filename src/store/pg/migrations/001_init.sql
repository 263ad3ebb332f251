-- tokend's PostgreSQL schema: the tables of the SQLite store as of its
-- migration 007 (src/store/sqlite/migrations), in PostgreSQL types. Times are
-- milliseconds since the epoch (BIGINT), sealed secrets BYTEA. Differences that
-- matter: the outbox has no `head` column or triggers (a claim finds the first
-- open row of each order key itself, under FOR UPDATE SKIP LOCKED, so several
-- nodes can claim at once); ids of outbox rows and timers come from identity
-- columns. docs/scaling.md names each table's distribution column.

CREATE TABLE members (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  created_ms BIGINT NOT NULL
);

CREATE TABLE member_keys (
  member_id TEXT NOT NULL REFERENCES members(id),
  key_id TEXT NOT NULL,
  level INTEGER NOT NULL,
  algorithm TEXT NOT NULL,
  public_key BYTEA NOT NULL,
  sealed_secret BYTEA,
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (member_id, key_id)
);
CREATE INDEX member_keys_level ON member_keys(member_id, level, created_ms);

CREATE TABLE credentials (
  hash TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  level INTEGER NOT NULL,
  role TEXT NOT NULL DEFAULT '',
  created_ms BIGINT NOT NULL
);

CREATE TABLE issuers (
  id TEXT PRIMARY KEY,
  display_name TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  card_policy_json TEXT NOT NULL DEFAULT ''
);

CREATE TABLE token_requests (
  id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  to_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL,
  request_json TEXT NOT NULL,
  token_id TEXT NOT NULL DEFAULT '',
  signature_json TEXT,
  consent_hash TEXT NOT NULL DEFAULT '',
  consent_expires_ms BIGINT NOT NULL DEFAULT 0,
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
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL DEFAULT 0,
  seq BIGINT NOT NULL,
  json TEXT NOT NULL,
  payload_canonical TEXT NOT NULL,
  accounts_src TEXT,
  accounts_dst TEXT
);
CREATE INDEX tokens_from ON tokens(from_id, created_ms);
CREATE INDEX tokens_to ON tokens(to_id, created_ms);
CREATE INDEX tokens_issuer ON tokens(issuer_id, created_ms);

CREATE TABLE token_events (
  token_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
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
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (scope, key)
);

CREATE TABLE cards (
  issuer_id TEXT NOT NULL,
  card_id TEXT NOT NULL,
  consumer_id TEXT NOT NULL,
  pan_fp TEXT NOT NULL,
  pan_sealed BYTEA NOT NULL,
  last4 TEXT NOT NULL,
  expiry TEXT NOT NULL,
  phone TEXT NOT NULL DEFAULT '',
  email TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL,
  seq BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (issuer_id, card_id)
);
CREATE UNIQUE INDEX cards_pan ON cards(issuer_id, pan_fp);

-- seq_no: insertion order, the tie-break of "oldest first" lists (SQLite's rowid).
CREATE TABLE digital_cards (
  id TEXT PRIMARY KEY,
  issuer_id TEXT NOT NULL,
  card_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  suspended_by TEXT NOT NULL DEFAULT '',
  last_event_ms BIGINT NOT NULL DEFAULT 0,
  seq BIGINT NOT NULL,
  stepup_open INTEGER NOT NULL DEFAULT 0,
  idv_failures INTEGER NOT NULL DEFAULT 0,
  revivable_until_ms BIGINT NOT NULL DEFAULT 0,
  verdict INTEGER NOT NULL,
  decision_reason TEXT NOT NULL DEFAULT '',
  wallet_provider_id TEXT NOT NULL,
  token_requestor_id TEXT NOT NULL DEFAULT '',
  token_storage_id TEXT NOT NULL DEFAULT '',
  is_primary INTEGER NOT NULL DEFAULT 1,
  correlation_id TEXT NOT NULL,
  digitize_op_id TEXT NOT NULL,
  last4 TEXT NOT NULL DEFAULT '',
  device_json TEXT NOT NULL DEFAULT '{}',
  idv_json TEXT NOT NULL DEFAULT '[]',
  answer_json TEXT NOT NULL DEFAULT '',
  stepup_deadline_ms BIGINT NOT NULL DEFAULT 0,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  seq_no BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX digital_cards_card ON digital_cards(issuer_id, card_id, created_ms, seq_no);
CREATE INDEX digital_cards_issuer ON digital_cards(issuer_id, created_ms, seq_no);
CREATE INDEX digital_cards_card_state ON digital_cards(issuer_id, card_id, state, created_ms);
CREATE UNIQUE INDEX digital_cards_correlation ON digital_cards(issuer_id, correlation_id);

CREATE TABLE dcard_events (
  digital_card_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  issuer_id TEXT NOT NULL,
  event_id TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  outcome TEXT NOT NULL,
  why TEXT NOT NULL DEFAULT '',
  event_ms BIGINT NOT NULL DEFAULT 0,
  time_ms BIGINT NOT NULL,
  detail_json TEXT NOT NULL DEFAULT '{}',
  answer_json TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (digital_card_id, seq)
);
CREATE UNIQUE INDEX dcard_events_dedupe ON dcard_events(issuer_id, source, event_id) WHERE event_id <> '';

CREATE TABLE operations (
  id TEXT PRIMARY KEY,
  issuer_id TEXT NOT NULL,
  digital_card_id TEXT NOT NULL DEFAULT '',
  card_id TEXT NOT NULL DEFAULT '',
  operation TEXT NOT NULL,
  status TEXT NOT NULL,
  requestor_type TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  reason_code TEXT NOT NULL DEFAULT '',
  error_code TEXT NOT NULL DEFAULT '',
  correlation_id TEXT NOT NULL DEFAULT '',
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE outbox (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  issuer_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  digital_card_id TEXT NOT NULL DEFAULT '',
  card_id TEXT NOT NULL DEFAULT '',
  dcard_seq BIGINT NOT NULL DEFAULT 0,
  operation_id TEXT NOT NULL DEFAULT '',
  operation TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  error_code TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT '',
  correlation_id TEXT NOT NULL DEFAULT '',
  wallet_provider_id TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  method_id TEXT NOT NULL DEFAULT '',
  secret_sealed BYTEA,
  event_ms BIGINT NOT NULL DEFAULT 0,
  created_ms BIGINT NOT NULL,
  due_ms BIGINT NOT NULL,
  state TEXT NOT NULL,
  order_key TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  first_attempt_ms BIGINT NOT NULL DEFAULT 0,
  lease_until_ms BIGINT NOT NULL DEFAULT 0,
  done_ms BIGINT NOT NULL DEFAULT 0,
  replayed_ms BIGINT NOT NULL DEFAULT 0,
  token_storage_id TEXT NOT NULL DEFAULT '',
  is_primary INTEGER NOT NULL DEFAULT 0,
  last4 TEXT NOT NULL DEFAULT '',
  dcard_state INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX outbox_dcard ON outbox(digital_card_id, id);
CREATE INDEX outbox_issuer ON outbox(issuer_id, id);
CREATE INDEX outbox_order ON outbox(issuer_id, order_key, id);
-- a claim's "no earlier open row of the key" test reads only open rows
CREATE INDEX outbox_open_order ON outbox(issuer_id, order_key, id) WHERE state IN ('PENDING', 'IN_FLIGHT');
-- the open rows of an issuer by due time: what a claim reads
CREATE INDEX outbox_open_due ON outbox(issuer_id, due_ms, id) WHERE state IN ('PENDING', 'IN_FLIGHT');
CREATE INDEX outbox_open ON outbox(state) WHERE state IN ('PENDING', 'IN_FLIGHT');
CREATE INDEX outbox_dead ON outbox(issuer_id, id) WHERE state = 'DEAD';
CREATE INDEX outbox_open_age ON outbox(created_ms) WHERE state IN ('PENDING', 'IN_FLIGHT');

CREATE TABLE issuer_delivery (
  issuer_id TEXT PRIMARY KEY REFERENCES issuers(id),
  profile TEXT NOT NULL,
  base_url TEXT NOT NULL DEFAULT '',
  auth TEXT NOT NULL DEFAULT 'none',
  secret_sealed BYTEA,
  oauth_token_url TEXT NOT NULL DEFAULT '',
  oauth_client_id TEXT NOT NULL DEFAULT '',
  oauth_scope TEXT NOT NULL DEFAULT '',
  tls_cert_file TEXT NOT NULL DEFAULT '',
  tls_key_file TEXT NOT NULL DEFAULT '',
  tls_ca_file TEXT NOT NULL DEFAULT '',
  tls_pinned_key TEXT NOT NULL DEFAULT '',
  d1_batch_max INTEGER NOT NULL DEFAULT 1,
  max_age_ms BIGINT NOT NULL DEFAULT 86400000,
  timeout_ms INTEGER NOT NULL DEFAULT 5000,
  messaging_url TEXT NOT NULL DEFAULT '',
  templates_json TEXT NOT NULL DEFAULT '',
  updated_ms BIGINT NOT NULL
);

CREATE TABLE timers (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  issuer_id TEXT NOT NULL,
  digital_card_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  n INTEGER NOT NULL DEFAULT 0,
  due_ms BIGINT NOT NULL,
  state TEXT NOT NULL
);
CREATE INDEX timers_due ON timers(state, due_ms, id);
CREATE INDEX timers_dcard ON timers(digital_card_id);
