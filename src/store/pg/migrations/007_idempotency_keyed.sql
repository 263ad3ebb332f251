-- 007: idempotency records written before this release kept an unkeyed
-- SHA-256 of each request body (a PAN or a 6-digit OTP in the body could be
-- found from it by hashing guesses) and the answer in clear (an API key, a
-- consent link). New records hold a hash keyed with the master key and a
-- sealed answer (service/write.c). The old hashes cannot be rehashed without
-- the bodies, so both are discarded and the record is marked 'retired' (never
-- a hash, so never matched): a retry under an old key is refused with 409
-- IDEMPOTENCY_KEY_REUSED rather than run a second time (docs/api.md). The old
-- row versions stay in the table's pages until VACUUM (docs/postgres.md).
UPDATE idempotency SET req_hash = 'retired', body = '' WHERE req_hash <> 'retired';
