-- 011: an API key can be bound to one client certificate: cert_sha256 holds
-- the SHA-256 of the certificate's DER, 64 lower-case hex digits, and tokend
-- then accepts the key only over a TLS connection that presented that
-- certificate (docs/operations.md, "TLS"). '' = not bound.
ALTER TABLE credentials ADD COLUMN cert_sha256 TEXT NOT NULL DEFAULT '';
