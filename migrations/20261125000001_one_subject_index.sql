-- ledger (subject, outcome, at_ms) serves every lookup by subject; the
-- single-column index only cost a B-tree write per record.
DROP INDEX IF EXISTS ledger_subject;
