-- One row per missing agency of every state total row: who is missing from which number, and why.
CREATE OR REPLACE VIEW state_coverage AS
SELECT
    sm.state_code,
    sm.sector,
    sm.metric_key,
    sm.frequency,
    sm.period_kind,
    sm.is_derived_annual,
    sm.period_start,
    sm.period_end,
    sm.period_label,
    sm.agencies_reporting,
    sm.agencies_expected,
    missing.agency_id,
    a.agency_name,
    a.population,
    CASE
        WHEN list_contains(sm.agencies_excluded, missing.agency_id) THEN 'VALIDATION_ERROR'
        WHEN sm.is_derived_annual THEN 'INCOMPLETE_YEAR'
        ELSE 'NO_DATA'
    END AS reason,
    CASE WHEN sm.is_derived_annual THEN (
        SELECT count(DISTINCT c.period_start)
        FROM state_metric_contributions AS c
        WHERE c.state_code = sm.state_code AND c.metric_key = sm.metric_key AND c.agency_id = missing.agency_id
          AND c.frequency = 'MONTHLY' AND c.dimension IS NULL
          AND c.period_start >= sm.period_start AND c.period_start < sm.period_end
    ) END AS months_counted
FROM state_metrics AS sm, unnest(sm.agencies_missing) AS missing(agency_id)
LEFT JOIN agencies AS a ON a.agency_id = missing.agency_id
WHERE sm.dimension IS NULL;

COMMENT ON VIEW state_coverage IS 'One row per expected agency missing from a state_metrics total row (as of its build), with the reason. A period with every expected agency reporting has no row here.';
COMMENT ON COLUMN state_coverage.state_code IS 'State.';
COMMENT ON COLUMN state_coverage.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_coverage.metric_key IS 'Metric.';
COMMENT ON COLUMN state_coverage.frequency IS 'MONTHLY or ANNUAL length of the period.';
COMMENT ON COLUMN state_coverage.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR.';
COMMENT ON COLUMN state_coverage.is_derived_annual IS 'True for calendar-year roll-ups of monthly reporters.';
COMMENT ON COLUMN state_coverage.period_start IS 'First day of the period (inclusive).';
COMMENT ON COLUMN state_coverage.period_end IS 'Day after the period (exclusive).';
COMMENT ON COLUMN state_coverage.period_label IS 'Human label of the period (2023-04, CY2023, FY2023 (Jul-Jun)).';
COMMENT ON COLUMN state_coverage.agencies_reporting IS 'Agencies in the state total.';
COMMENT ON COLUMN state_coverage.agencies_expected IS 'Agencies expected in the state total.';
COMMENT ON COLUMN state_coverage.agency_id IS 'The missing agency.';
COMMENT ON COLUMN state_coverage.agency_name IS 'Its name in the roster.';
COMMENT ON COLUMN state_coverage.population IS 'Population it serves (what the state total does not cover).';
COMMENT ON COLUMN state_coverage.reason IS 'VALIDATION_ERROR (its data failed an ERROR check: see validation_results), INCOMPLETE_YEAR (derived calendar year: fewer than 12 counted months) or NO_DATA (nothing delivered for the period).';
COMMENT ON COLUMN state_coverage.months_counted IS 'Derived calendar-year rows only: how many of the agency''s 12 months were counted.';
