-- Audience reports (GET /v1/batches/{id}/audience): each answered row keeps
-- the few facts a report counts (platforms, interest ids, footprint and risk
-- scores, messaging apps, oldest account), compact JSON, so that a report
-- of 50,000 rows reads kilobytes a row less than the answers; and, once a
-- caller exported per-person segment membership, the row's segment. Both
-- are personal data: Access shows the segment, erasure empties both.
ALTER TABLE batch_rows ADD COLUMN features TEXT;
ALTER TABLE batch_rows ADD COLUMN segment TEXT;
