-- The processes serving from the ledger, each with the fingerprint of the
-- hash key it hashes subjects with and when it last said it was alive. A
-- hash-key rotation refuses while any is alive: a server still hashing
-- with the old key would write erasures no one could find again.
CREATE TABLE IF NOT EXISTS ledger_holders (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL
);
