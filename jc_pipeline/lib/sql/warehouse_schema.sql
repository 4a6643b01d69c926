-- The analyst-facing tables of DESIGN.md §3.3. Column names are a contract: add columns, never rename.
-- Each stage module may keep internal tables of its own; these are the ones every stage agrees on.

CREATE TABLE IF NOT EXISTS agencies (
    agency_id               VARCHAR PRIMARY KEY,
    agency_name             VARCHAR NOT NULL,
    state_code              VARCHAR NOT NULL,
    sectors                 VARCHAR[] NOT NULL,
    county_fips             VARCHAR,
    population              BIGINT,
    fiscal_year_start_month INTEGER NOT NULL,
    superagency_id          VARCHAR
);
COMMENT ON TABLE agencies IS 'The state''s roster (agencies.csv) as loaded: one row per reporting agency.';
COMMENT ON COLUMN agencies.agency_id IS 'Stable agency identifier; also the inbox folder name.';
COMMENT ON COLUMN agencies.agency_name IS 'Agency name as written in the roster.';
COMMENT ON COLUMN agencies.state_code IS 'State the agency belongs to (e.g. US_XX).';
COMMENT ON COLUMN agencies.sectors IS 'System codes the agency reports for (LAW_ENFORCEMENT, JAILS, PAROLE, SUPERAGENCY, ...).';
COMMENT ON COLUMN agencies.county_fips IS 'Five-digit county FIPS code of the agency seat, when known.';
COMMENT ON COLUMN agencies.population IS 'Resident population the agency serves; denominator of per-capita rates.';
COMMENT ON COLUMN agencies.fiscal_year_start_month IS 'Month its fiscal year starts (1 = calendar year); default start month of its annual metrics.';
COMMENT ON COLUMN agencies.superagency_id IS 'Umbrella agency that uploads on this agency''s behalf, if any.';

CREATE TABLE IF NOT EXISTS agency_metric_settings (
    agency_id        VARCHAR NOT NULL,
    metric_key       VARCHAR NOT NULL,
    enabled          BOOLEAN NOT NULL,
    frequency        VARCHAR NOT NULL,
    starting_month   INTEGER NOT NULL,
    disaggregated_by_supervision_subsystems BOOLEAN NOT NULL,
    is_default       BOOLEAN NOT NULL,
    PRIMARY KEY (agency_id, metric_key)
);
COMMENT ON TABLE agency_metric_settings IS 'Effective reporting settings of every agency for every metric of its sectors: registry defaults overridden by metric_settings.csv.';
COMMENT ON COLUMN agency_metric_settings.agency_id IS 'Agency (agencies.agency_id).';
COMMENT ON COLUMN agency_metric_settings.metric_key IS 'Metric (metric_definitions.metric_key).';
COMMENT ON COLUMN agency_metric_settings.enabled IS 'Whether the agency reports this metric; disabled metrics are not expected in coverage.';
COMMENT ON COLUMN agency_metric_settings.frequency IS 'Effective reporting frequency, MONTHLY or ANNUAL.';
COMMENT ON COLUMN agency_metric_settings.starting_month IS 'First month of the annual period (1 = calendar year, 7 = July-June fiscal year); 1 for monthly metrics.';
COMMENT ON COLUMN agency_metric_settings.disaggregated_by_supervision_subsystems IS 'Supervision only: true when the agency reports this metric under the PAROLE/PROBATION/... keys instead of the combined SUPERVISION key.';
COMMENT ON COLUMN agency_metric_settings.is_default IS 'True when no row of metric_settings.csv changed the registry default.';

CREATE TABLE IF NOT EXISTS agency_breakdown_settings (
    agency_id    VARCHAR NOT NULL,
    metric_key   VARCHAR NOT NULL,
    dimension    VARCHAR NOT NULL,
    category     VARCHAR NOT NULL,
    enabled      BOOLEAN NOT NULL,
    is_inherited BOOLEAN NOT NULL,
    PRIMARY KEY (agency_id, metric_key, dimension, category)
);
COMMENT ON TABLE agency_breakdown_settings IS 'Breakdown categories an agency turned off (or, for one supervision subsystem, back on) in breakdown_settings.csv; a category without a row is enabled. Data for a disabled category is kept in the state numbers and flagged by the category_enabled validation warning.';
COMMENT ON COLUMN agency_breakdown_settings.agency_id IS 'Agency (agencies.agency_id).';
COMMENT ON COLUMN agency_breakdown_settings.metric_key IS 'Metric (metric_definitions.metric_key).';
COMMENT ON COLUMN agency_breakdown_settings.dimension IS 'Breakdown dimension identifier (metric_categories.dimension), e.g. metric/offense/type.';
COMMENT ON COLUMN agency_breakdown_settings.category IS 'Member NAME (metric_categories.category), e.g. PUBLIC_ORDER.';
COMMENT ON COLUMN agency_breakdown_settings.enabled IS 'False: the agency does not report this category; it is left out of its upload templates.';
COMMENT ON COLUMN agency_breakdown_settings.is_inherited IS 'True for a subsystem key (PAROLE_*, PROBATION_*, ...) that takes the setting of its combined SUPERVISION_* metric.';

CREATE TABLE IF NOT EXISTS metric_definitions (
    metric_key        VARCHAR PRIMARY KEY,
    sector            VARCHAR NOT NULL,
    parent_sector     VARCHAR NOT NULL,
    display_name      VARCHAR NOT NULL,
    unit              VARCHAR NOT NULL,
    reference_unit    VARCHAR NOT NULL,
    measurement_type  VARCHAR NOT NULL,
    default_frequency VARCHAR NOT NULL,
    category          VARCHAR NOT NULL,
    sheet             VARCHAR NOT NULL,
    v2_key            VARCHAR,
    ratio_role        VARCHAR,
    ratio_partner     VARCHAR
);
COMMENT ON TABLE metric_definitions IS 'Justice Counts Tier 1 metric registry: 70 sector metrics, 44 supervision subsystem copies and 3 superagency metrics.';
COMMENT ON COLUMN metric_definitions.metric_key IS 'Key as in the reference implementation, e.g. LAW_ENFORCEMENT_ARRESTS (note PROSECUTION_CASES REFERRED has a space).';
COMMENT ON COLUMN metric_definitions.sector IS 'System code of the metric (a Tier 1 sector, a supervision subsystem or SUPERAGENCY).';
COMMENT ON COLUMN metric_definitions.parent_sector IS 'SUPERVISION for the four subsystem copies, otherwise equal to sector.';
COMMENT ON COLUMN metric_definitions.display_name IS 'Human-readable metric name.';
COMMENT ON COLUMN metric_definitions.unit IS 'Normalized unit: USD (money), FTE (staff) or count.';
COMMENT ON COLUMN metric_definitions.reference_unit IS 'Unit label used by the reference implementation (some are mislabelled; see docs).';
COMMENT ON COLUMN metric_definitions.measurement_type IS 'DELTA = events during the period (summable over time); INSTANT = point-in-time level.';
COMMENT ON COLUMN metric_definitions.default_frequency IS 'MONTHLY or ANNUAL unless an agency overrides it.';
COMMENT ON COLUMN metric_definitions.category IS 'Justice Counts category (CAPACITY_AND_COSTS, POPULATIONS, ...).';
COMMENT ON COLUMN metric_definitions.sheet IS 'Bulk-upload sheet (or CSV file) name of the aggregate value.';
COMMENT ON COLUMN metric_definitions.v2_key IS 'Key used by the v2 dashboard API where it differs.';
COMMENT ON COLUMN metric_definitions.ratio_role IS 'numerator or denominator of the derived caseload ratio, else NULL.';
COMMENT ON COLUMN metric_definitions.ratio_partner IS 'The other metric of the caseload ratio.';
-- Added after the first release: ADD COLUMN keeps older files usable (the reference step fills it).
ALTER TABLE metric_definitions ADD COLUMN IF NOT EXISTS is_level BOOLEAN;
COMMENT ON COLUMN metric_definitions.is_level IS 'True for levels (populations, staff, open cases: INSTANT and not money): a year of an agency''s months is their average, and a jump is judged as a level''s. False for events and money (funding and expenses, whatever measurement_type says, spec §9.3), which add up over months.';

CREATE TABLE IF NOT EXISTS metric_categories (
    metric_key   VARCHAR NOT NULL,
    dimension    VARCHAR NOT NULL,
    category     VARCHAR NOT NULL,
    display_name VARCHAR NOT NULL,
    required     BOOLEAN NOT NULL,
    sheet        VARCHAR,
    column_name  VARCHAR,
    PRIMARY KEY (metric_key, dimension, category)
);
COMMENT ON TABLE metric_categories IS 'Every breakdown category of every metric: one row per metric x dimension x member.';
COMMENT ON COLUMN metric_categories.metric_key IS 'Metric (metric_definitions.metric_key).';
COMMENT ON COLUMN metric_categories.dimension IS 'Dimension identifier, e.g. metric/offense/type or global/race_and_ethnicity.';
COMMENT ON COLUMN metric_categories.category IS 'Member NAME stored on datapoints, e.g. PERSON or NOT_HISPANIC_BLACK.';
COMMENT ON COLUMN metric_categories.display_name IS 'Display value agencies write in bulk uploads, e.g. Person Offenses.';
COMMENT ON COLUMN metric_categories.required IS 'Breakdown flagged required by Justice Counts (a warning when missing, never an error).';
COMMENT ON COLUMN metric_categories.sheet IS 'Bulk-upload sheet carrying this breakdown (NULL: not uploadable, e.g. behavioral health).';
COMMENT ON COLUMN metric_categories.column_name IS 'Breakdown column header on that sheet.';

CREATE TABLE IF NOT EXISTS source_files (
    file_id       VARCHAR PRIMARY KEY,
    path          VARCHAR NOT NULL,
    sha256        VARCHAR NOT NULL,
    agency_id     VARCHAR,
    sector        VARCHAR,
    received_at   TIMESTAMP NOT NULL,
    ingested_at   TIMESTAMP NOT NULL,
    upload_seq    BIGINT NOT NULL,
    status        VARCHAR NOT NULL,
    reason        VARCHAR,
    rows_total    BIGINT NOT NULL,
    rows_loaded   BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL
);
COMMENT ON TABLE source_files IS 'Every file found in the inbox, one row per distinct content (sha256) per path.';
COMMENT ON COLUMN source_files.file_id IS 'Identifier of this version of the file.';
COMMENT ON COLUMN source_files.path IS 'Path relative to the data directory, e.g. inbox/AG001/JAILS/2024.xlsx.';
COMMENT ON COLUMN source_files.sha256 IS 'SHA-256 of the file bytes; an unchanged hash is never ingested twice.';
COMMENT ON COLUMN source_files.agency_id IS 'Agency whose inbox folder holds the file.';
COMMENT ON COLUMN source_files.sector IS 'System code of the inbox sub-folder.';
COMMENT ON COLUMN source_files.received_at IS 'When the file arrived: its modification time, or when it was read if that is earlier (a clock ahead); a version read again in place keeps its own.';
COMMENT ON COLUMN source_files.ingested_at IS 'When the pipeline read it.';
COMMENT ON COLUMN source_files.upload_seq IS 'Ingest order; a higher sequence wins when two files carry the same datapoint.';
COMMENT ON COLUMN source_files.status IS 'INGESTED (no errors), ERRORED (some rows rejected), UNREADABLE (nothing could be read), DUPLICATE (the bytes, and but for a workbook the name, of a file another path of the agency''s sector folder delivered first: a file moved or copied, a workbook renamed; not read, its numbers count from there) or WITHDRAWN (withdrawals.csv lists this version: its datapoints count for nothing).';
COMMENT ON COLUMN source_files.reason IS 'Why the file is ERRORED, UNREADABLE or DUPLICATE, in words an agency can act on; for WITHDRAWN, the state''s reason.';
COMMENT ON COLUMN source_files.rows_total IS 'Data rows in the file (all sheets); always rows_loaded + rows_rejected.';
COMMENT ON COLUMN source_files.rows_loaded IS 'Rows that became datapoints (a newer file may later supersede the value).';
COMMENT ON COLUMN source_files.rows_rejected IS 'Rows rejected; each has at least one ERROR row in rejected_rows.';

-- The latest version read of each path (a file deleted since stays its path's latest): the feedback and `status`
-- speak of these versions, not of replaced ones.
CREATE VIEW IF NOT EXISTS current_source_files AS
SELECT * FROM source_files QUALIFY upload_seq = max(upload_seq) OVER (PARTITION BY path);
COMMENT ON VIEW current_source_files IS 'The latest version read of each delivered path, also of a path deleted from the inbox since (source_files keeps every version). An earlier version of a path is superseded: its rejected rows are no longer asked of the agency (the agency feedback, the data-quality report and jc-pipeline status list those of these versions); the datapoints it loaded stay where no later upload carries them.';

CREATE TABLE IF NOT EXISTS rejected_rows (
    file_id     VARCHAR NOT NULL,
    sheet       VARCHAR,
    row_number  BIGINT,
    column_name VARCHAR,
    raw_value   VARCHAR,
    rule        VARCHAR NOT NULL,
    severity    VARCHAR NOT NULL,
    message     VARCHAR NOT NULL
);
COMMENT ON TABLE rejected_rows IS 'Ingest findings: every rejected row (severity ERROR) and every warning on a loaded row, with the rule it broke.';
COMMENT ON COLUMN rejected_rows.file_id IS 'File (source_files.file_id).';
COMMENT ON COLUMN rejected_rows.sheet IS 'Sheet name as written in the workbook (CSV: the file name).';
COMMENT ON COLUMN rejected_rows.row_number IS '1-based row as a spreadsheet program shows it (blank rows above the header counted; a CSV record spanning lines is one row).';
COMMENT ON COLUMN rejected_rows.column_name IS 'Column holding the offending value, as written in the file.';
COMMENT ON COLUMN rejected_rows.raw_value IS 'The offending value as text.';
COMMENT ON COLUMN rejected_rows.rule IS 'Stable rule code (see docs/rules.md).';
COMMENT ON COLUMN rejected_rows.severity IS 'ERROR: the row was not loaded. WARNING: loaded, but look at it.';
COMMENT ON COLUMN rejected_rows.message IS 'What is wrong and how to fix it.';

CREATE TABLE IF NOT EXISTS agency_metrics (
    state_code        VARCHAR NOT NULL,
    agency_id         VARCHAR NOT NULL,
    sector            VARCHAR NOT NULL,
    metric_key        VARCHAR NOT NULL,
    frequency         VARCHAR NOT NULL,
    period_start      DATE NOT NULL,
    period_end        DATE NOT NULL,
    dimension         VARCHAR,
    category          VARCHAR,
    value             DOUBLE NOT NULL,
    is_inferred_total BOOLEAN NOT NULL,
    file_id           VARCHAR,
    sheet             VARCHAR,
    row_number        BIGINT
);
COMMENT ON TABLE agency_metrics IS 'Current datapoints, one per agency x metric x period x breakdown category; the latest upload wins.';
COMMENT ON COLUMN agency_metrics.state_code IS 'State of the agency.';
COMMENT ON COLUMN agency_metrics.agency_id IS 'Agency the datapoint describes (the child agency for superagency uploads).';
COMMENT ON COLUMN agency_metrics.sector IS 'System code of the metric.';
COMMENT ON COLUMN agency_metrics.metric_key IS 'Metric (metric_definitions.metric_key).';
COMMENT ON COLUMN agency_metrics.frequency IS 'MONTHLY or ANNUAL: the period the value covers.';
COMMENT ON COLUMN agency_metrics.period_start IS 'First day of the period (inclusive).';
COMMENT ON COLUMN agency_metrics.period_end IS 'Day after the period (exclusive); fiscal years are explicit, e.g. 2022-07-01..2023-07-01.';
COMMENT ON COLUMN agency_metrics.dimension IS 'Breakdown dimension identifier; NULL on the total row.';
COMMENT ON COLUMN agency_metrics.category IS 'Breakdown member NAME; NULL on the total row.';
COMMENT ON COLUMN agency_metrics.value IS 'Value in the metric unit: dollars, FTE or a count.';
COMMENT ON COLUMN agency_metrics.is_inferred_total IS 'True when no total was delivered and it was inferred as the sum of a breakdown.';
COMMENT ON COLUMN agency_metrics.file_id IS 'File that delivered the current value (NULL for inferred totals).';
COMMENT ON COLUMN agency_metrics.sheet IS 'Sheet that delivered the current value.';
COMMENT ON COLUMN agency_metrics.row_number IS '1-based spreadsheet row that delivered the current value.';

CREATE TABLE IF NOT EXISTS validation_results (
    check_name   VARCHAR NOT NULL,
    severity     VARCHAR NOT NULL,
    passed       BOOLEAN NOT NULL,
    agency_id    VARCHAR,
    metric_key   VARCHAR,
    period_start DATE,
    observed     VARCHAR,
    expected     VARCHAR,
    message      VARCHAR NOT NULL,
    checked_at   TIMESTAMP NOT NULL,
    period_end   DATE,
    dimension    VARCHAR,
    category     VARCHAR,
    file_id      VARCHAR,
    sheet        VARCHAR,
    row_number   BIGINT
);
COMMENT ON TABLE validation_results IS 'Technical-guide checks on agency_metrics: one row per failing group. An ERROR row excludes that agency x metric x period from state_metrics.';
COMMENT ON COLUMN validation_results.check_name IS 'Rule that was checked (see docs/rules.md).';
COMMENT ON COLUMN validation_results.severity IS 'ERROR (excluded from state roll-ups) or WARNING (kept, flagged).';
COMMENT ON COLUMN validation_results.passed IS 'False for a failing group.';
COMMENT ON COLUMN validation_results.agency_id IS 'Agency of the failing group.';
COMMENT ON COLUMN validation_results.metric_key IS 'Metric of the failing group.';
COMMENT ON COLUMN validation_results.period_start IS 'Period start of the failing group.';
COMMENT ON COLUMN validation_results.observed IS 'What the data shows (e.g. the breakdown sum).';
COMMENT ON COLUMN validation_results.expected IS 'What the rule expects (e.g. the total).';
COMMENT ON COLUMN validation_results.message IS 'The problem and what to do, in plain words.';
COMMENT ON COLUMN validation_results.checked_at IS 'When the check ran.';
COMMENT ON COLUMN validation_results.period_end IS 'Period end (exclusive) of the failing group.';
COMMENT ON COLUMN validation_results.dimension IS 'Breakdown dimension, when the failure is about one.';
COMMENT ON COLUMN validation_results.category IS 'Breakdown category, when the failure is about one.';
COMMENT ON COLUMN validation_results.file_id IS 'File that delivered the failing value, when there is one.';
COMMENT ON COLUMN validation_results.sheet IS 'Sheet that delivered the failing value.';
COMMENT ON COLUMN validation_results.row_number IS 'Spreadsheet row that delivered the failing value.';

CREATE TABLE IF NOT EXISTS state_metrics (
    state_code              VARCHAR NOT NULL,
    sector                  VARCHAR NOT NULL,
    metric_key              VARCHAR NOT NULL,
    frequency               VARCHAR NOT NULL,
    period_start            DATE NOT NULL,
    period_end              DATE NOT NULL,
    dimension               VARCHAR,
    category                VARCHAR,
    value                   DOUBLE,
    agencies_reporting      INTEGER NOT NULL,
    agencies_expected       INTEGER NOT NULL,
    population_covered      BIGINT,
    coverage_population_pct DOUBLE,
    rate_per_100k           DOUBLE,
    is_complete             BOOLEAN NOT NULL
);
