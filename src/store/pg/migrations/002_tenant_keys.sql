-- 002: every issuer-owned table keyed by its issuer first, so that a sharded
-- PostgreSQL (Citus) can distribute it by issuer_id (a distributed table's
-- primary and unique keys must contain its distribution column), and so that
-- the store's verbs, which now find these rows by issuer and id together,
-- read one shard (docs/scaling.md, "Distributing the schema").
--
-- Ids stay unique on their own in practice: digital card and operation ids
-- carry 130 random bits, outbox and timer ids come from identity columns. No
-- foreign key refers to these tables. Rebuilding a primary key holds the
-- table's lock while the index is built: on a large outbox, run this
-- migration (tokend's start) in a quiet moment.

ALTER TABLE digital_cards DROP CONSTRAINT digital_cards_pkey;
ALTER TABLE digital_cards ADD PRIMARY KEY (issuer_id, id);

ALTER TABLE dcard_events DROP CONSTRAINT dcard_events_pkey;
ALTER TABLE dcard_events ADD PRIMARY KEY (issuer_id, digital_card_id, seq);

ALTER TABLE operations DROP CONSTRAINT operations_pkey;
ALTER TABLE operations ADD PRIMARY KEY (issuer_id, id);

-- outbox_issuer (issuer_id, id) was the issuer's rows in id order: the new
-- primary key is that index.
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox ADD PRIMARY KEY (issuer_id, id);
DROP INDEX outbox_issuer;
-- a digital card's rows (outbox_cancel, outbox_otp_times) within its issuer
DROP INDEX outbox_dcard;
CREATE INDEX outbox_dcard ON outbox(issuer_id, digital_card_id, id);

ALTER TABLE timers DROP CONSTRAINT timers_pkey;
ALTER TABLE timers ADD PRIMARY KEY (issuer_id, id);
-- a digital card's timers (timer_cancel_dcard) within its issuer
DROP INDEX timers_dcard;
CREATE INDEX timers_dcard ON timers(issuer_id, digital_card_id);

-- A consent code names its request (<requestId>.<secret>): the request is
-- read by id and the secret's hash compared; nothing looks a hash up any more.
DROP INDEX token_requests_consent;
