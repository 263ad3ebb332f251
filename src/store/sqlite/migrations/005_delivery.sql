-- 005: delivering the outbox (issue 4; docs/notifications.md). Each row gets
-- its order key (the rows of one digital card, or the card-level rows of one
-- card, go in id order; end-user messages keep an order of their own, msg:...),
-- its attempts and last answer, and a lease while a
-- worker holds it; issuers get how their backend is reached.
ALTER TABLE outbox ADD COLUMN order_key TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN first_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN done_ms INTEGER NOT NULL DEFAULT 0;
-- when a dead letter was last replayed: its maximum age counts from there
ALTER TABLE outbox ADD COLUMN replayed_ms INTEGER NOT NULL DEFAULT 0;
-- 1 for the first open (PENDING or IN_FLIGHT) row of its (issuer, order key),
-- 0 otherwise: only these can be claimed. Kept by the triggers below, so the
-- claim reads the heads alone instead of every waiting row behind them.
ALTER TABLE outbox ADD COLUMN head INTEGER NOT NULL DEFAULT 0;

-- Rows written before 005: the same rule outbox_insert applies to new rows.
UPDATE outbox SET order_key = CASE WHEN channel = 'USER' THEN 'msg:' ELSE '' END
                          || CASE WHEN digital_card_id <> '' THEN digital_card_id ELSE 'card:' || card_id END
WHERE order_key = '';

-- The open rows of an order key, in id order: "is there an earlier one?" is
-- one seek, however many delivered rows the key has behind it. The key is
-- scoped by issuer: card ids are unique only within an issuer.
CREATE INDEX outbox_open_order ON outbox(issuer_id, order_key, id) WHERE state IN ('PENDING', 'IN_FLIGHT');

UPDATE outbox SET head = 1
WHERE state IN ('PENDING', 'IN_FLIGHT')
  AND NOT EXISTS (SELECT 1 FROM outbox AS p
                  WHERE p.issuer_id = outbox.issuer_id AND p.order_key = outbox.order_key AND p.id < outbox.id
                    AND p.state IN ('PENDING', 'IN_FLIGHT'));

-- outbox_claim: the heads in id order; the filter columns are in the index,
-- so a head that is not due (a retry waiting) or still leased costs no row read;
-- created_ms: outbox_stats finds the oldest open row among the heads.
CREATE INDEX outbox_heads ON outbox(id, due_ms, state, lease_until_ms, issuer_id, created_ms) WHERE head = 1;
-- outbox_claim, per configured issuer: its due heads, oldest due first; heads
-- not due yet (retries waiting) and other issuers' heads are not read.
CREATE INDEX outbox_heads_due ON outbox(issuer_id, due_ms, id, state, lease_until_ms) WHERE head = 1;

-- A new row (AUTOINCREMENT: the largest id) is a head when its key has no open row.
CREATE TRIGGER outbox_head_insert AFTER INSERT ON outbox
WHEN NEW.state IN ('PENDING', 'IN_FLIGHT')
BEGIN
  UPDATE outbox SET head = 1
  WHERE id = NEW.id
    AND NOT EXISTS (SELECT 1 FROM outbox AS p
                    WHERE p.issuer_id = NEW.issuer_id AND p.order_key = NEW.order_key AND p.id < NEW.id
                      AND p.state IN ('PENDING', 'IN_FLIGHT'));
END;

-- A row closed (delivered, dead, cancelled): the first open row of its key,
-- if any, becomes the head (it was the head already if the closed row was not).
CREATE TRIGGER outbox_head_close AFTER UPDATE OF state ON outbox
WHEN OLD.state IN ('PENDING', 'IN_FLIGHT') AND NEW.state NOT IN ('PENDING', 'IN_FLIGHT')
BEGIN
  UPDATE outbox SET head = 0 WHERE id = NEW.id AND head <> 0;
  UPDATE outbox SET head = 1
  WHERE id = (SELECT min(p.id) FROM outbox AS p
              WHERE p.issuer_id = NEW.issuer_id AND p.order_key = NEW.order_key
                AND p.state IN ('PENDING', 'IN_FLIGHT'))
    AND head = 0;
END;

-- A row opened again (a replayed dead letter) may be ahead of the key's head:
-- every open row of the key is set again. PENDING <-> IN_FLIGHT fires neither.
CREATE TRIGGER outbox_head_open AFTER UPDATE OF state ON outbox
WHEN OLD.state NOT IN ('PENDING', 'IN_FLIGHT') AND NEW.state IN ('PENDING', 'IN_FLIGHT')
BEGIN
  UPDATE outbox SET head = (id = (SELECT min(p.id) FROM outbox AS p
                                  WHERE p.issuer_id = NEW.issuer_id AND p.order_key = NEW.order_key
                                    AND p.state IN ('PENDING', 'IN_FLIGHT')))
  WHERE issuer_id = NEW.issuer_id AND order_key = NEW.order_key AND state IN ('PENDING', 'IN_FLIGHT')
    AND head <> (id = (SELECT min(p.id) FROM outbox AS p
                       WHERE p.issuer_id = NEW.issuer_id AND p.order_key = NEW.order_key
                         AND p.state IN ('PENDING', 'IN_FLIGHT')));
END;

CREATE TRIGGER outbox_head_delete AFTER DELETE ON outbox
WHEN OLD.head = 1
BEGIN
  UPDATE outbox SET head = 1
  WHERE id = (SELECT min(p.id) FROM outbox AS p
              WHERE p.issuer_id = OLD.issuer_id AND p.order_key = OLD.order_key
                AND p.state IN ('PENDING', 'IN_FLIGHT'));
END;

-- How an issuer's backend is reached. Secrets are sealed with the master key.
CREATE TABLE issuer_delivery (
  issuer_id TEXT PRIMARY KEY REFERENCES issuers(id),
  profile TEXT NOT NULL,
  base_url TEXT NOT NULL DEFAULT '',
  auth TEXT NOT NULL DEFAULT 'none',
  secret_sealed BLOB,
  oauth_token_url TEXT NOT NULL DEFAULT '',
  oauth_client_id TEXT NOT NULL DEFAULT '',
  oauth_scope TEXT NOT NULL DEFAULT '',
  tls_cert_file TEXT NOT NULL DEFAULT '',
  tls_key_file TEXT NOT NULL DEFAULT '',
  tls_ca_file TEXT NOT NULL DEFAULT '',
  tls_pinned_key TEXT NOT NULL DEFAULT '',
  d1_batch_max INTEGER NOT NULL DEFAULT 1,
  max_age_ms INTEGER NOT NULL DEFAULT 86400000,
  timeout_ms INTEGER NOT NULL DEFAULT 5000,
  messaging_url TEXT NOT NULL DEFAULT '',
  templates_json TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL
);
