-- 005: rows waiting behind a head that is waiting for its retry are set
-- aside from the claim's walk. A claim walks an issuer's open rows by due
-- time and keeps the heads (no earlier open row of their order key); when a
-- head failed, the rows behind it are due but cannot go, and every claim
-- walked past them again (with 30 % of first attempts failing, most of what
-- a delivered row cost PostgreSQL). wait_ms: the retry time of the head this
-- row waits behind, 0 when it does not wait; the outcome of the head sets
-- it (its retry time) or clears it (delivered, dead, cancelled). It is a
-- hint for the walk, never a rule: a row that is a head goes whatever it
-- holds, once the time it holds has passed. SQLite has its head index.
ALTER TABLE outbox ADD COLUMN wait_ms bigint NOT NULL DEFAULT 0;
DROP INDEX outbox_open_due;
CREATE INDEX outbox_open_due ON outbox(issuer_id, (GREATEST(due_ms, wait_ms)), id)
  WHERE state IN ('PENDING', 'IN_FLIGHT');
