-- 006: outbox_order (issuer_id, order_key, id) over every row goes. Every
-- query on an order key reads open rows only (the claim's head test, the
-- waits of migration 005), which outbox_open_order serves; delivered rows
-- are never sought by key. Each outbox row version wrote an entry into it:
-- three per delivered row (inserted, claimed, delivered), about one in six
-- of the index entries a delivery wrote.
DROP INDEX outbox_order;
