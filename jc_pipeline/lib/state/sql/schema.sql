-- State roll-up tables: the extension of state_metrics (DESIGN §3.3 columns stay as they are; we only add)
-- and the agency-grain table it is aggregated from. Idempotent: safe to run on every start and on the
-- published file. Views live in views/*.sql (they are re-created by apply_views).

-- Columns beyond the DESIGN contract. ADD COLUMN IF NOT EXISTS keeps existing rows and older files usable.
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS period_kind VARCHAR;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS period_label VARCHAR;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS is_derived_annual BOOLEAN;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS measurement_type VARCHAR;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS aggregation_rule VARCHAR;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS expected_population BIGINT;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS agencies_missing VARCHAR[];
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS agencies_excluded VARCHAR[];
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS breakdown_covered_value DOUBLE;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS breakdown_share_pct DOUBLE;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS breakdown_threshold_pct DOUBLE;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS is_breakdown_published BOOLEAN;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS agencies_expected_other_cadence INTEGER;
ALTER TABLE state_metrics ADD COLUMN IF NOT EXISTS agencies_expected_by_subsystem INTEGER;

COMMENT ON TABLE state_metrics IS 'State totals per metric, period and breakdown category, with coverage beside every number. One row per (state_code, metric_key, period_start, period_end, is_derived_annual, dimension, category). Sums only agencies of one sector and one metric key over one identical period window; rows excluded by validation ERRORs and agencies whose settings do not produce this kind of period are not summed. Missing is not zero: nothing is zero-filled.';
COMMENT ON COLUMN state_metrics.state_code IS 'State of the contributing agencies (agencies.state_code); states are never summed together.';
COMMENT ON COLUMN state_metrics.sector IS 'System code of the metric (metric_definitions.sector): PAROLE_* keys are sector PAROLE, SUPERVISION_* keys sector SUPERVISION. Never summed across sectors.';
COMMENT ON COLUMN state_metrics.metric_key IS 'Metric (metric_definitions.metric_key). Never summed across metric keys.';
COMMENT ON COLUMN state_metrics.frequency IS 'MONTHLY or ANNUAL: the length of the period the value covers. Derived calendar-year rows of monthly reporters are ANNUAL with is_derived_annual = true.';
COMMENT ON COLUMN state_metrics.period_start IS 'First day of the period (inclusive). Fiscal years start on their own month, so they are different rows from calendar years. Derived calendar-year rows start on January 1.';
COMMENT ON COLUMN state_metrics.period_end IS 'Day after the period (exclusive).';
COMMENT ON COLUMN state_metrics.dimension IS 'Breakdown dimension identifier; NULL on the total row.';
COMMENT ON COLUMN state_metrics.category IS 'Breakdown member NAME; NULL on the total row.';
COMMENT ON COLUMN state_metrics.value IS 'Sum over the reporting agencies (see aggregation_rule), exact to 6 decimals. NULL when no agency is counted (every datapoint excluded by a validation error; a derived year nobody completed): missing is not zero. A total row exists for every period with at least one datapoint of an expected agency; breakdown rows only where an agency is counted.';
COMMENT ON COLUMN state_metrics.agencies_reporting IS 'Agencies whose value is in the sum of this row (for a breakdown row: that reported this category).';
COMMENT ON COLUMN state_metrics.agencies_expected IS 'Roster agencies of the state whose effective setting enables the metric AND whose effective frequency/starting month produce this kind of period: MONTHLY reporters for month rows and derived calendar-year rows, ANNUAL reporters starting in January for calendar-year rows, ANNUAL reporters starting in that month for fiscal-year rows. Supervision: the combined SUPERVISION_* key expects only agencies not disaggregated by subsystem for that metric; subsystem keys only agencies that are. Based on current settings, also for past periods.';
COMMENT ON COLUMN state_metrics.population_covered IS 'Sum of agencies.population of the reporting agencies (NULL populations count as 0). Agencies serving overlapping populations (a county sheriff and a city police department) are both counted, so this is not a count of distinct residents.';
COMMENT ON COLUMN state_metrics.coverage_population_pct IS '100 * population_covered / expected_population: share of the expected agencies'' summed population that is covered; NULL when an expected agency has no population. Not a share of the state''s residents (see population_covered on overlaps).';
COMMENT ON COLUMN state_metrics.rate_per_100k IS 'value / population_covered * 100000, computed from the sums (never averaged). NULL when a reporting agency has no population or population_covered is 0. For breakdown rows still per 100,000 residents covered, not per 100,000 members of that category.';
COMMENT ON COLUMN state_metrics.is_complete IS 'agencies_reporting = agencies_expected. On breakdown rows: every expected agency reported this category.';
COMMENT ON COLUMN state_metrics.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR (January-December) or FISCAL_YEAR (an annual period starting in another month; never mixed with calendar years).';
COMMENT ON COLUMN state_metrics.period_label IS 'Human label: 2023-04, CY2023, or FY2023 (Jul-Jun) where the fiscal year is named by the year it ends in (spec §5.4).';
COMMENT ON COLUMN state_metrics.is_derived_annual IS 'True for calendar-year roll-ups of MONTHLY reporters: an agency contributes only when all 12 of its months are counted (11 months = expected but not reporting). The row exists for every year in which a monthly reporter delivered data and is refreshed whenever a month of that year is built. False for rows summing the periods agencies reported themselves. View state_calendar_years adds both kinds per year.';
COMMENT ON COLUMN state_metrics.measurement_type IS 'DELTA (events in the period) or INSTANT (point-in-time level), from metric_definitions.';
COMMENT ON COLUMN state_metrics.aggregation_rule IS 'SUM (events and money: DELTA metrics, and funding and expenses of either type; agencies summed over the identical period), SUM_OF_SNAPSHOTS (levels: populations, staff, open cases, metric_definitions.is_level; agencies summed over the same snapshot period), SUM_OF_12_MONTHS (derived calendar year of a DELTA metric or of money, funding and expenses of either type: per agency the sum of its 12 months, then summed), SUM_OF_12_MONTH_MEANS (derived calendar year of any other INSTANT metric: per agency the average of its 12 monthly values (on a breakdown row, its months of the category summed over twelve), then summed).';
COMMENT ON COLUMN state_metrics.expected_population IS 'Sum of agencies.population of the expected agencies; denominator of coverage_population_pct. NULL when one of them has no population.';
COMMENT ON COLUMN state_metrics.agencies_missing IS 'Total rows only: expected agencies (agency_id, sorted) not in this sum - no data, excluded by validation, or (derived rows) fewer than 12 months. NULL on breakdown rows. View state_coverage lists them with names and reasons.';
COMMENT ON COLUMN state_metrics.agencies_excluded IS 'Total rows only: the missing agencies whose datapoints for this metric and period (any month of the year for derived rows) failed a validation ERROR.';
COMMENT ON COLUMN state_metrics.agencies_expected_other_cadence IS 'Total rows only: roster agencies expected to report this metric at another cadence (monthly against annual, or a year starting in another month), whose values are in other rows and not in this one: is_complete and the coverage columns speak of this row''s cadence only. 37 agencies reporting a metric yearly beside 1 reporting it monthly make a month row "1 of 1, complete" with 37 here. NULL on breakdown rows and on rows built before 2026-12-07 (a backfill fills them).';
COMMENT ON COLUMN state_metrics.agencies_expected_by_subsystem IS 'Total rows of a combined SUPERVISION_* key only: agencies expected to report the metric by subsystem (PAROLE_*, PROBATION_*, ...) instead, at any cadence. Their numbers are in the subsystem rows and, with this row''s, in state_supervision_totals: is_complete and the coverage columns speak of the agencies reporting combined only. NULL on other rows and on rows built before 2026-12-07.';
COMMENT ON COLUMN state_metrics.breakdown_covered_value IS 'Breakdown rows only: sum of the totals of the reporting agencies that reported this breakdown dimension (any category) for the period; numerator of breakdown_share_pct.';
COMMENT ON COLUMN state_metrics.breakdown_share_pct IS 'Breakdown rows only: 100 * breakdown_covered_value / the state total value of the period. NULL when the state total is 0 or missing.';
COMMENT ON COLUMN state_metrics.breakdown_threshold_pct IS 'Breakdown rows only: the publication threshold in percent used for this build (build_state_metrics(breakdown_coverage_threshold), default 80).';
COMMENT ON COLUMN state_metrics.is_breakdown_published IS 'Breakdown rows: true when breakdown_share_pct >= breakdown_threshold_pct, false otherwise (the row is kept and flagged, not hidden). NULL on total rows, which are not gated: filter published rows with is_breakdown_published IS NOT FALSE.';

-- Agency grain of state_metrics, written in the same transaction: what exactly was summed.
CREATE TABLE IF NOT EXISTS state_metric_contributions (
    state_code        VARCHAR NOT NULL,
    sector            VARCHAR NOT NULL,
    metric_key        VARCHAR NOT NULL,
    measurement_type  VARCHAR NOT NULL,
    frequency         VARCHAR NOT NULL,
    period_kind       VARCHAR NOT NULL,
    is_derived_annual BOOLEAN NOT NULL,
    period_start      DATE NOT NULL,
    period_end        DATE NOT NULL,
    dimension         VARCHAR,
    category          VARCHAR,
    agency_id         VARCHAR NOT NULL,
    population        BIGINT,
    value             DOUBLE NOT NULL,
    months_combined   INTEGER NOT NULL
);
COMMENT ON TABLE state_metric_contributions IS 'Agency-level values that were summed into state_metrics, written by the same transaction (drill-down, and the input of the comparison, caseload and supervision views). One row per agency x state_metrics row key.';
COMMENT ON COLUMN state_metric_contributions.state_code IS 'State of the agency.';
COMMENT ON COLUMN state_metric_contributions.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_metric_contributions.metric_key IS 'Metric (metric_definitions.metric_key).';
COMMENT ON COLUMN state_metric_contributions.measurement_type IS 'DELTA or INSTANT.';
COMMENT ON COLUMN state_metric_contributions.frequency IS 'MONTHLY or ANNUAL: length of the period (ANNUAL on derived calendar-year rows).';
COMMENT ON COLUMN state_metric_contributions.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR.';
COMMENT ON COLUMN state_metric_contributions.is_derived_annual IS 'True when this calendar-year value was derived from the agency''s 12 monthly values.';
COMMENT ON COLUMN state_metric_contributions.period_start IS 'First day of the period (inclusive).';
COMMENT ON COLUMN state_metric_contributions.period_end IS 'Day after the period (exclusive).';
COMMENT ON COLUMN state_metric_contributions.dimension IS 'Breakdown dimension identifier; NULL on the total.';
COMMENT ON COLUMN state_metric_contributions.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_metric_contributions.agency_id IS 'Contributing agency.';
COMMENT ON COLUMN state_metric_contributions.population IS 'agencies.population of the agency at build time.';
COMMENT ON COLUMN state_metric_contributions.value IS 'The agency''s value: its datapoint, or for derived calendar years the sum (DELTA, and money of either type) or average (other INSTANT metrics) of its 12 monthly datapoints.';
COMMENT ON COLUMN state_metric_contributions.months_combined IS '1 for reported periods (one datapoint); for derived calendar-year values the months summed: 12 for a total, as few as 1 for a breakdown category the agency reported in only some months of a year in which it reported the dimension every month.';
