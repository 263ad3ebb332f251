-- 006: delivery indexes that do not move when a row is delivered (issue 4;
-- docs/performance.md "Notification delivery"). Delivering a row used to
-- rewrite entries in five indexes, one of them (outbox_open_order, keyed by
-- the random digital card id) on a different page for nearly every row: a
-- write job of 100 rows dirtied ~190 pages. Now closing a row deletes only
-- entries that sit together (ordered by id or by due time), and "the next
-- open row of this order key" is read from an index that closing leaves as is.

-- Every row of an order key, open or not, in id order: the head triggers read
-- it (then the row's state); delivering a row changes nothing in it.
DROP INDEX outbox_open_order;
CREATE INDEX outbox_order ON outbox(issuer_id, order_key, id);

-- outbox_stats: open rows by state (a partial index: a delivered row leaves
-- it, its entry next to those of the rows delivered with it), dead letters
-- (also what an operator lists), the oldest head. outbox_due (state, due_ms)
-- and the wide outbox_heads are gone: each claim and each outcome rewrote
-- their entries.
DROP INDEX outbox_due;
DROP INDEX outbox_heads;
CREATE INDEX outbox_open ON outbox(state) WHERE state IN ('PENDING', 'IN_FLIGHT');
CREATE INDEX outbox_dead ON outbox(issuer_id, id) WHERE state = 'DEAD';
CREATE INDEX outbox_heads_age ON outbox(created_ms) WHERE head = 1;

-- A head closed (delivered, dead, cancelled): the next open row of its key,
-- if any, becomes the head. The rows before a head are all closed, so the
-- search starts after it. A row closed behind the head (a cancelled end-user
-- message) changes no head. outbox_attempt clears a closed row's head in its
-- own UPDATE (one row rewrite instead of two); the first statement here is
-- for the other ways a row closes.
DROP TRIGGER outbox_head_close;
CREATE TRIGGER outbox_head_close AFTER UPDATE OF state ON outbox
WHEN OLD.state IN ('PENDING', 'IN_FLIGHT') AND NEW.state NOT IN ('PENDING', 'IN_FLIGHT') AND OLD.head = 1
BEGIN
  UPDATE outbox SET head = 0 WHERE id = NEW.id AND head <> 0;
  UPDATE outbox SET head = 1
  WHERE id = (SELECT min(p.id) FROM outbox AS p
              WHERE p.issuer_id = NEW.issuer_id AND p.order_key = NEW.order_key AND p.id > NEW.id
                AND p.state IN ('PENDING', 'IN_FLIGHT'));
END;
