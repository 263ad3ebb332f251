-- 004: room on the tokens' pages for their updates. A cancel or a
-- replacement rewrites a token's row (state, and its JSON with one more
-- signature) but none of its indexed columns; with free space on the row's
-- page PostgreSQL keeps the new version there (a HOT update) and inserts
-- into none of the table's four indexes. Packed full (the default), every
-- such update went to another page and into every index: the B-tree work
-- and index clean-up that were the largest part of PostgreSQL's own CPU in
-- a cancel (docs/performance.md). Pages written before this migration get
-- the room when rewritten (VACUUM FULL, or a copy with tokenctl store copy).
ALTER TABLE tokens SET (fillfactor = 80);
