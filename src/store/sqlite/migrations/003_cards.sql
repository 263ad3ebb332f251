-- 003: network tokenization: issuers' card policies, cards (PAN sealed, found
-- by a keyed fingerprint), digital cards (CARD tokens), their events (inbound
-- event ids deduplicated by a unique index), operations, the outbox of owed
-- notifications and end-user messages, and step-up timers.
ALTER TABLE issuers ADD COLUMN card_policy_json TEXT NOT NULL DEFAULT '';

CREATE TABLE cards (
  issuer_id TEXT NOT NULL,
  card_id TEXT NOT NULL,
  consumer_id TEXT NOT NULL,
  pan_fp TEXT NOT NULL,
  pan_sealed BLOB NOT NULL,
  last4 TEXT NOT NULL,
  expiry TEXT NOT NULL,
  phone TEXT NOT NULL DEFAULT '',
  email TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (issuer_id, card_id)
);
CREATE UNIQUE INDEX cards_pan ON cards(issuer_id, pan_fp);

CREATE TABLE digital_cards (
  id TEXT PRIMARY KEY,
  issuer_id TEXT NOT NULL,
  card_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  suspended_by TEXT NOT NULL DEFAULT '',
  last_event_ms INTEGER NOT NULL DEFAULT 0,
  seq INTEGER NOT NULL,
  stepup_open INTEGER NOT NULL DEFAULT 0,
  idv_failures INTEGER NOT NULL DEFAULT 0,
  revivable_until_ms INTEGER NOT NULL DEFAULT 0,
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
  stepup_deadline_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE INDEX digital_cards_card ON digital_cards(issuer_id, card_id, created_ms);
CREATE INDEX digital_cards_issuer ON digital_cards(issuer_id, created_ms);
-- A tokenization request retried by the TSP gets the first answer.
CREATE UNIQUE INDEX digital_cards_correlation ON digital_cards(issuer_id, correlation_id);

CREATE TABLE dcard_events (
  digital_card_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  issuer_id TEXT NOT NULL,
  event_id TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  outcome TEXT NOT NULL,
  why TEXT NOT NULL DEFAULT '',
  event_ms INTEGER NOT NULL DEFAULT 0,
  time_ms INTEGER NOT NULL,
  detail_json TEXT NOT NULL DEFAULT '{}',
  answer_json TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (digital_card_id, seq)
);
-- Exactly once: an inbound event id is applied once per (issuer, source).
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
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  issuer_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  digital_card_id TEXT NOT NULL DEFAULT '',
  card_id TEXT NOT NULL DEFAULT '',
  dcard_seq INTEGER NOT NULL DEFAULT 0,
  operation_id TEXT NOT NULL DEFAULT '',
  operation TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  error_code TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT '',
  correlation_id TEXT NOT NULL DEFAULT '',
  wallet_provider_id TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  method_id TEXT NOT NULL DEFAULT '',
  secret_sealed BLOB,
  event_ms INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  due_ms INTEGER NOT NULL,
  state TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox(state, due_ms);
CREATE INDEX outbox_dcard ON outbox(digital_card_id, id);
-- outbox_list: an issuer's rows after a cursor id.
CREATE INDEX outbox_issuer ON outbox(issuer_id, id);

CREATE TABLE timers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  issuer_id TEXT NOT NULL,
  digital_card_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  n INTEGER NOT NULL DEFAULT 0,
  due_ms INTEGER NOT NULL,
  state TEXT NOT NULL
);
CREATE INDEX timers_due ON timers(state, due_ms);
CREATE INDEX timers_dcard ON timers(digital_card_id);
