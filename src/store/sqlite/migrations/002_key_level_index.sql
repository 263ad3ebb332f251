-- 002: the signing-key lookup (member, level, newest first) runs on every
-- cancel; without this index it sorted into a temporary table each time.
CREATE INDEX member_keys_level ON member_keys(member_id, level, created_ms);
