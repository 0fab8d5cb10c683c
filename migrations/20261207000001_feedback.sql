-- Feedback on findings (the Feedback RPC): a caller says a profile or an
-- attribute it was answered is the wrong person's (wrong_person), not there
-- at all (not_there) or right (correct). A finding whose latest feedback
-- for a person is wrong_person or not_there is held out of that person's
-- profiles from then on, in every process: rows carry the suppression
-- list's change counter (`version`), and processes follow them with it.
-- The counts per source and verdict are the sources' precision.
--
-- Erasure blanks a row's personal columns (subject, finding, note, caller)
-- and keeps its source, verdict and time: the precision of a source is a
-- fact about the source, not about the person.
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    subject TEXT NOT NULL,
    processing_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    -- 'profile' (finding is the profile's URL) or 'attribute' (finding is
    -- "name=value").
    kind TEXT NOT NULL,
    finding TEXT NOT NULL,
    verdict TEXT NOT NULL,
    caller TEXT NOT NULL,
    caller_id TEXT NOT NULL,
    note TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS feedback_subject ON feedback (subject);
CREATE INDEX IF NOT EXISTS feedback_version ON feedback (version);
CREATE INDEX IF NOT EXISTS feedback_source ON feedback (at_ms, source_id);

-- The canary (maigret's idea): each username source asked now and then for
-- a random name nobody holds. A source that claims it is unreliable until
-- it answers the next one right. One row per source: its latest answer.
CREATE TABLE IF NOT EXISTS source_canary (
    source_id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    -- 1: the source said the random name exists.
    claimed BIGINT NOT NULL,
    probe TEXT NOT NULL,
    detail TEXT NOT NULL
);
INSERT INTO ledger_meta (name, value) VALUES ('canary_run_ms', '0')
    ON CONFLICT (name) DO NOTHING;
