-- Months whose staged datapoints have not yet been rolled up to state level: a file's months stay pending until
-- the state roll-up of each of them has committed, so a run killed half-way is picked up by the next one.
-- No primary key on this table or the next: the statements that write them skip the file-months already there,
-- and DuckDB's index made the commit of a full build's marks take 3.6 s (733,595 file-months at 3,000 agencies,
-- ten years) against 0.01 s without it. pending.ensure_schema drops the keys of a store that has them.
CREATE TABLE IF NOT EXISTS rolled_up_file_months (
    file_id VARCHAR NOT NULL,
    month   DATE NOT NULL
);

-- The file-months above that no roll-up has covered yet, kept so that finding the pending months reads neither
-- the staged table's millions of rows nor the history of roll-up marks: rows of uploads up to
-- staged_months_indexed.upload_seq (one row) are listed here until their roll-up; later uploads are added from the
-- staged rows above that sequence number only.
CREATE TABLE IF NOT EXISTS pending_file_months (
    file_id VARCHAR NOT NULL,
    month   DATE NOT NULL
);
-- resolved: the step that rebuilt agency_metrics for this month has read this upload; the roll-up of the month
-- moves only such rows to rolled_up_file_months, so an upload written between the two steps stays pending.
ALTER TABLE pending_file_months ADD COLUMN IF NOT EXISTS resolved BOOLEAN DEFAULT FALSE;
-- The agencies whose agency_metrics rows (and verdicts) of a month were rebuilt since the state roll-up last read
-- that month: a nightly state build replaces only their contributions. agency_id NULL: every agency (a rebuild of
-- whole months). No key: rows are few, read with DISTINCT, and removed by the roll-up of their month.
CREATE TABLE IF NOT EXISTS rebuilt_agency_months (
    month     DATE NOT NULL,
    agency_id VARCHAR
);
-- checked: the rebuild's checks have run (pending.mark_resolved). An unchecked rebuild (its run died before or in
-- its checks) is work for the next agency_metrics step, not for a state roll-up, which reads checked ones only.
-- Rows from before the column were written by a rebuild whose run went on to its checks: TRUE.
ALTER TABLE rebuilt_agency_months ADD COLUMN IF NOT EXISTS checked BOOLEAN DEFAULT TRUE;
-- Months to rebuild for every agency: the roster, its settings or the registry changed (pending.mark_whole_months),
-- and resolve, checks and roll-up read those. resolved: the rebuild of agency_metrics has read the change; the state
-- roll-up of the month removes such rows, so a run stopped between the two steps rolls the month up again.
CREATE TABLE IF NOT EXISTS pending_whole_months (
    month    DATE NOT NULL,
    resolved BOOLEAN NOT NULL DEFAULT FALSE
);
-- Paths whose files the next ingest reads again: the roster changed how files delivered to their agency's folder
-- are read (its fiscal year, settings, sectors or child agencies; reference.py). The ingest reads the path's latest
-- version again in place (its file_id and upload_seq kept, its earlier reading replaced) and removes the mark.
CREATE TABLE IF NOT EXISTS pending_rereads (
    path VARCHAR NOT NULL
);
-- The version of the roll-up rules the store's months were built by (pending.ROLLUP_RULES). One row; none in a store
-- from before the table.
CREATE TABLE IF NOT EXISTS rollup_rules (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_months_indexed (
    upload_seq BIGINT NOT NULL
);
INSERT INTO staged_months_indexed SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM staged_months_indexed);

-- Roll-ups committed to the store, and how many of them the published warehouse holds; the latest upload the
-- published warehouse holds (source_files.upload_seq). A run stopped after a roll-up or an ingest and before its
-- publish leaves rolled_up > published or a later upload in source_files, so the next run publishes although no
-- month is pending any more (files whose rows were all rejected, or unreadable ones, touch no month). One row.
CREATE TABLE IF NOT EXISTS publish_generations (
    rolled_up BIGINT NOT NULL,
    published BIGINT NOT NULL,
    published_upload_seq BIGINT NOT NULL DEFAULT 0
);
-- A store from before the column: 0, so its next run publishes once.
ALTER TABLE publish_generations ADD COLUMN IF NOT EXISTS published_upload_seq BIGINT DEFAULT 0;
INSERT INTO publish_generations SELECT 0, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM publish_generations);
