-- The ledger: one append-only row per processing, refusals included.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    caller TEXT NOT NULL,
    purpose TEXT NOT NULL,
    lawful_basis TEXT NOT NULL,
    consent_ref TEXT NOT NULL,
    lia_ref TEXT NOT NULL,
    contract_ref TEXT NOT NULL,
    -- Keyed hash (HMAC-SHA-256) of the canonical identifier; empty when the
    -- identifier did not parse. Kept after erasure as the tombstone.
    subject TEXT NOT NULL,
    -- JSON arrays.
    sources TEXT NOT NULL,
    field_categories TEXT NOT NULL,
    outcome TEXT NOT NULL,
    retain_until_ms BIGINT NOT NULL,
    redacted BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ledger_subject ON ledger (subject);
CREATE INDEX IF NOT EXISTS ledger_retain ON ledger (retain_until_ms);

-- The suppression list: erased (scope 'all') or objecting (scope
-- 'marketing') persons, by keyed hash.
CREATE TABLE IF NOT EXISTS suppression (
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (subject, scope)
);
