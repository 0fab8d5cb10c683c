-- Each suppression row carries the value of the list's change counter
-- (ledger_meta.suppression_version) its transaction moved it to, so that a
-- process following the list reads only the rows added since the counter it
-- knows (an index range) instead of the whole list on every change: with a
-- million suppressions every erasure or objection made every process read
-- them all again, for seconds, while its calls waited.
--
-- Rows already here carry the counter as it stands (every process loads the
-- whole list when it starts). A row written without one (by a process of an
-- earlier version during a rolling upgrade, or by hand) has the default 0:
-- followers read those too, and the next change made by this version gives
-- them its counter, so they are read once more and then no longer.
ALTER TABLE suppression ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE suppression SET version =
    (SELECT CAST(value AS BIGINT) FROM ledger_meta WHERE name = 'suppression_version');
CREATE INDEX IF NOT EXISTS suppression_version ON suppression (version);
