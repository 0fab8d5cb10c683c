-- The hot path: when a person was first enriched is one index probe, however
-- many records they have; the suppression list carries a change counter that
-- every process polls to keep its in-memory copy in step.
CREATE INDEX IF NOT EXISTS ledger_subject_outcome_at ON ledger (subject, outcome, at_ms);
INSERT INTO ledger_meta (name, value) VALUES ('suppression_version', '0')
    ON CONFLICT (name) DO NOTHING;
