-- Facts about the ledger itself: the fingerprint of the hash key its
-- subjects were hashed with, so another key is refused instead of silently
-- undoing every erasure.
CREATE TABLE IF NOT EXISTS ledger_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
