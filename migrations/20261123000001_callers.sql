-- Callers: API keys (hashed; the secret itself is never stored), and who
-- asked, recorded with every processing.
CREATE TABLE IF NOT EXISTS api_keys (
    -- Public key id, also the first part of the secret ("ek_<id>_<secret>").
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- HMAC-SHA-256 of the whole secret under a key derived from the hash key.
    secret_hash TEXT NOT NULL,
    -- Comma-separated scopes and purposes (purposes empty: any purpose).
    scopes TEXT NOT NULL,
    purposes TEXT NOT NULL,
    -- Requests per second; 0: no quota of its own.
    quota_per_second DOUBLE PRECISION NOT NULL,
    created_ms BIGINT NOT NULL,
    -- 0: never expires / not revoked.
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_name ON api_keys (name);

-- The authenticated caller's key id (the caller column holds its name), the
-- "on behalf of" note a client may add, the data-subject request reference
-- and what a data-subject request returned or erased.
ALTER TABLE ledger ADD COLUMN caller_id TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN on_behalf_of TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN reference TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN detail TEXT NOT NULL DEFAULT '';
