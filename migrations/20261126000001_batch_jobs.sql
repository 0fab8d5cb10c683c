-- Batch jobs submitted over HTTP (POST /v1/batches). A job keeps the request
-- every row is sent with and who submitted it; each row keeps its input
-- columns and, once answered, its output line. A restarted server goes on
-- with the rows that have no answer yet, so each row is answered once.
-- Rows are personal data: an erasure empties the person's rows (by the
-- keyed hash in `subject`), and a finished job is deleted with its rows
-- after `batch.job_retention`.
CREATE TABLE IF NOT EXISTS batch_jobs (
    id TEXT PRIMARY KEY,
    -- The submitting caller (JSON, no secret) and its key id ('' for a
    -- client certificate or an anonymous loopback caller).
    caller TEXT NOT NULL,
    caller_id TEXT NOT NULL,
    -- The EnrichRequest every row is sent with, as proto JSON, minus the
    -- identifier.
    template TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    -- running, done, failed
    state TEXT NOT NULL,
    -- Why a failed job failed.
    reason TEXT NOT NULL,
    rows_total BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL,
    -- pending, delivered, failed, none
    webhook_state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_rows (
    job_id TEXT NOT NULL,
    row_number BIGINT NOT NULL,
    -- Keyed hash of the row's identifier ('' when it does not parse).
    subject TEXT NOT NULL,
    -- The row's columns (JSON object).
    input TEXT NOT NULL,
    -- The row's EnrichRequest as proto JSON ('' for a row with no usable
    -- identifier, answered at once).
    request TEXT NOT NULL,
    -- The output line without row and input (JSON); NULL until answered.
    result TEXT,
    -- The counters' key: found, not_found, incomplete, suppressed, error...
    outcome TEXT NOT NULL,
    PRIMARY KEY (job_id, row_number)
);
CREATE INDEX IF NOT EXISTS batch_rows_subject ON batch_rows (subject);
