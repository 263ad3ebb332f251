-- 008: facts about the store itself, by name. The first is
-- "master_key_check": a value sealed with the master key when the store was
-- first served, which every later start opens to prove it holds the same key
-- (service/master_key.c): a node given another master key refuses to start
-- instead of sealing new secrets that no other node can open.
CREATE TABLE store_meta (
  name TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
