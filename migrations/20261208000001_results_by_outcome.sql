-- GET /v1/batches/{id}/results?outcome=...: a job's rows of one outcome, in
-- row order, found without reading the others. (On SQLite a row's outcome
-- is stored after its answer, so a scan that reads it reads every answer:
-- a quarter of a second for 20,000 rows, per page of results.) `error`
-- stands for every `error:<CODE>`; the expression is the one
-- Ledger::job_rows asks by, word for word.
CREATE INDEX IF NOT EXISTS batch_rows_outcome ON batch_rows
    (job_id, (CASE WHEN outcome LIKE 'error:%' THEN 'error' ELSE outcome END), row_number);
