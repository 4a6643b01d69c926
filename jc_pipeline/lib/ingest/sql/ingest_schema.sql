-- Internal tables of the ingest stage (the contract tables are in jc_pipeline/lib/sql/warehouse_schema.sql).

-- The staged datapoints are Parquet files beside the store, one per batch (store.py, docs/decisions.md "Staged
-- datapoints in Parquet files beside the store"), read through the view ingest_datapoints (created by store.py over
-- the files listed here). Columns: sheet, sheet_order (position of the sheet in its file, alphabetical: orders rows
-- within one upload), row_number, upload_seq (source_files.upload_seq of the file version that delivered the row:
-- its file_id is there), agency_id, sector, metric_key, frequency, period_start, period_end, dimension, category,
-- value.
CREATE TABLE IF NOT EXISTS ingest_staged_files (
    file_name        VARCHAR PRIMARY KEY,
    rows             BIGINT NOT NULL,
    first_upload_seq BIGINT NOT NULL,
    last_upload_seq  BIGINT NOT NULL
);
COMMENT ON TABLE ingest_staged_files IS 'The Parquet files of staged datapoints, in the store''s staged folder, that hold committed batches; the view ingest_datapoints reads exactly these. Not published.';

-- A row's file and its agency's state are the same for millions of rows: kept once, in source_files and here, not on
-- every staged row (docs/decisions.md, "Staged rows keep neither their file's id nor their agency's state").
CREATE TABLE IF NOT EXISTS ingest_agency_states (
    agency_id  VARCHAR PRIMARY KEY,
    state_code VARCHAR NOT NULL
);
COMMENT ON TABLE ingest_agency_states IS 'The state of every agency a roster has listed, as the latest run to read one said: agency_metrics takes it for the datapoints of an agency the current roster no longer lists. Not published.';

CREATE TABLE IF NOT EXISTS inbox_file_stats (
    path     VARCHAR PRIMARY KEY,
    size     BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    ctime_ns BIGINT NOT NULL,
    sha256   VARCHAR NOT NULL
);
COMMENT ON TABLE inbox_file_stats IS 'The stat of each inbox file when it was last hashed: a file whose size, mtime and ctime are unchanged is not read again (docs/decisions.md, "Trusting the stat of inbox files"). Not published.';
COMMENT ON COLUMN inbox_file_stats.sha256 IS 'SHA-256 of the file bytes as read then (for a native export, without its mapping''s part).';

-- The file versions withdrawals.csv withdraws (withdrawals.py): the resolve leaves their staged rows out, and
-- source_files says WITHDRAWN; the version's own status and reason are kept here to be given back.
CREATE TABLE IF NOT EXISTS ingest_withdrawals (
    upload_seq BIGINT PRIMARY KEY,
    status     VARCHAR NOT NULL,
    reason     VARCHAR
);
COMMENT ON TABLE ingest_withdrawals IS 'The file versions (source_files.upload_seq) withdrawals.csv withdraws, with the status and reason the ingest gave them. Not published.';

-- The code (code_version.code_digest) the store's files were read by. One row; none in a store from before the table.
CREATE TABLE IF NOT EXISTS ingest_read_by (
    code_digest VARCHAR NOT NULL
);
COMMENT ON TABLE ingest_read_by IS 'The digest of the jc_pipeline code that read the store''s files: other code (an upgrade) reads every path the inbox holds again, once, in place. Not published.';
