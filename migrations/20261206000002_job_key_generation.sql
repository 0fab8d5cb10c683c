-- The hash-key generation a job's webhook secret derives from: the chain's
-- newest key when the job was made, kept for the job's life so that its
-- deliveries stay verifiable with the secret its submitter was given.
-- Jobs made before this column derived theirs from the first key.
ALTER TABLE batch_jobs ADD COLUMN key_generation BIGINT NOT NULL DEFAULT 1;
