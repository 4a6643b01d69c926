-- Internal tables of the ingest stage (the contract tables are in jc_pipeline/lib/sql/warehouse_schema.sql).

CREATE TABLE IF NOT EXISTS ingest_datapoints (
    sheet        VARCHAR NOT NULL,
    sheet_order  INTEGER NOT NULL,
    row_number   BIGINT NOT NULL,
    upload_seq   BIGINT NOT NULL,
    agency_id    VARCHAR NOT NULL,
    sector       VARCHAR NOT NULL,
    metric_key   VARCHAR NOT NULL,
    frequency    VARCHAR NOT NULL,
    period_start DATE NOT NULL,
    period_end   DATE NOT NULL,
    dimension    VARCHAR,
    category     VARCHAR,
    value        DOUBLE NOT NULL
);
COMMENT ON TABLE ingest_datapoints IS 'Every loaded row of every ingested file version, kept after newer uploads supersede it; agency_metrics is resolved from it (latest upload_seq wins).';
COMMENT ON COLUMN ingest_datapoints.sheet_order IS 'Position of the sheet in the file (alphabetical), to order rows within one upload.';
COMMENT ON COLUMN ingest_datapoints.upload_seq IS 'source_files.upload_seq of the file version that delivered the row (its file_id is there).';

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
