-- An erasure's purge (its redaction of the person's records and the
-- emptying of their batch job rows), from the commit of the suppression
-- until it is done. A purge cut short (a caller that gave up, a process
-- stopped or killed) is finished by the next retention sweep of any process
-- on the ledger, so every record of an erased person ends up redacted
-- however its erasure was interrupted.
CREATE TABLE IF NOT EXISTS pending_purge (
    subject TEXT PRIMARY KEY,
    since_ms BIGINT NOT NULL
);
