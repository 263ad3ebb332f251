-- 003: facts about the store itself, by name (as SQLite's migration 008).
-- "master_key_check": a value sealed with the master key by the first node
-- that served the database; every node opens it at start, so a node given
-- another master key refuses to start (service/master_key.c). A reference
-- table on a sharded PostgreSQL (docs/scaling.md).
CREATE TABLE store_meta (
  name text PRIMARY KEY,
  value bytea NOT NULL
);
