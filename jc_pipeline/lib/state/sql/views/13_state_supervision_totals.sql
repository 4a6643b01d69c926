-- Full state supervision totals: per agency and base metric the combined SUPERVISION_* value, or the sum of its
-- subsystem values (PAROLE_*, PROBATION_*, ...) when it reports by subsystem - never both. The state_metrics
-- SUPERVISION_* rows, by contrast, hold only the agencies that report combined.
CREATE OR REPLACE VIEW state_supervision_totals AS
WITH supervision AS (
    SELECT
        c.*,
        state_supervision_base_key(c.metric_key, d.sector) AS base_metric_key,
        d.sector = 'SUPERVISION' AS is_combined
    FROM state_metric_contributions AS c
    JOIN metric_definitions AS d ON d.metric_key = c.metric_key
    WHERE d.parent_sector = 'SUPERVISION'
),
per_agency AS (
    SELECT
        state_code, base_metric_key, measurement_type, frequency, period_kind, is_derived_annual,
        period_start, period_end, dimension, category, agency_id, population,
        -- Settings make an agency report one or the other; should both ever be counted, the subsystems win.
        CASE WHEN bool_or(NOT is_combined)
             THEN sum(value::DECIMAL(38, 12)) FILTER (WHERE NOT is_combined)
             ELSE sum(value::DECIMAL(38, 12))
        END AS value,
        NOT bool_or(NOT is_combined) AS reported_combined,
        list(DISTINCT sector ORDER BY sector) FILTER (WHERE NOT is_combined) AS subsystems
    FROM supervision
    GROUP BY ALL
),
-- Each agency expected for a base metric (combined or by subsystem) at a cadence, and the subsystem keys it is
-- expected to send: one missing makes its value partial (a month's probation population left out of the whole
-- state's without a word).
agency_subsystems AS (
    SELECT
        state_code, agency_id,
        state_supervision_base_key(metric_key, sector) AS base_metric_key,
        frequency, starting_month,
        count(*) FILTER (WHERE supervision_reporting = 'SUBSYSTEM') AS subsystems_expected
    FROM state_expected_agencies
    WHERE supervision_reporting IS NOT NULL
    GROUP BY ALL
),
-- Judged on the agency's total of the period and carried to its breakdown rows: a subsystem without a category's
-- row (no women on parole that month) is no missing subsystem.
judged AS (
    SELECT p.*,
           coalesce(bool_or(p.dimension IS NULL AND NOT p.reported_combined
                            AND len(p.subsystems) < x.subsystems_expected)
                        OVER (PARTITION BY p.state_code, p.agency_id, p.base_metric_key, p.frequency,
                                           p.is_derived_annual, p.period_start, p.period_end), FALSE) AS is_partial
    FROM per_agency AS p
    LEFT JOIN agency_subsystems AS x
      ON x.state_code = p.state_code AND x.agency_id = p.agency_id AND x.base_metric_key = p.base_metric_key
     AND x.frequency = state_reporting_frequency(p.frequency, p.is_derived_annual)
     AND x.starting_month = state_reporting_starting_month(p.frequency, p.is_derived_annual, p.period_start)
),
expected AS (
    SELECT state_code, base_metric_key, frequency, starting_month, count(*)::INTEGER AS agencies_expected
    FROM agency_subsystems
    GROUP BY ALL
)
SELECT
    p.state_code,
    'SUPERVISION' AS sector,
    p.base_metric_key AS metric_key,
    p.measurement_type, p.frequency, p.period_kind, p.is_derived_annual, p.period_start, p.period_end,
    p.dimension, p.category,
    state_exact_sum(p.value) AS value,
    count(*)::INTEGER AS agencies_reporting,
    count(*) FILTER (WHERE p.reported_combined) AS agencies_reporting_combined,
    count(*) FILTER (WHERE NOT p.reported_combined) AS agencies_reporting_by_subsystem,
    count(*) FILTER (WHERE p.is_partial)::INTEGER AS agencies_partial,
    list_sort(list_distinct(flatten(list(coalesce(p.subsystems, []::VARCHAR[]))))) AS subsystems_reported,
    any_value(e.agencies_expected) AS agencies_expected,
    count(*) = any_value(e.agencies_expected) AND NOT bool_or(p.is_partial) AS is_complete,
    coalesce(sum(p.population), 0)::BIGINT AS population_covered,
    CASE WHEN count(p.population) = count(*) AND sum(p.population) > 0
         THEN sum(p.value)::DOUBLE / sum(p.population) * 100000 END AS rate_per_100k
FROM judged AS p
LEFT JOIN expected AS e
  ON e.state_code = p.state_code AND e.base_metric_key = p.base_metric_key
 AND e.frequency = state_reporting_frequency(p.frequency, p.is_derived_annual)
 AND e.starting_month = state_reporting_starting_month(p.frequency, p.is_derived_annual, p.period_start)
GROUP BY
    p.state_code, p.base_metric_key, p.measurement_type, p.frequency, p.period_kind, p.is_derived_annual,
    p.period_start, p.period_end, p.dimension, p.category;

COMMENT ON VIEW state_supervision_totals IS 'Whole-state community supervision per base SUPERVISION_* metric: each agency contributes its combined value or the sum of its subsystem values (never both), so agencies reporting combined and by subsystem add up without double counting. An agency reporting only some of the subsystem keys its settings expect contributes a partial value: counted in agencies_partial, and the row is not complete.';
COMMENT ON COLUMN state_supervision_totals.state_code IS 'State.';
COMMENT ON COLUMN state_supervision_totals.sector IS 'Always SUPERVISION.';
COMMENT ON COLUMN state_supervision_totals.metric_key IS 'Base supervision metric (SUPERVISION_*), covering combined and subsystem reporting.';
COMMENT ON COLUMN state_supervision_totals.measurement_type IS 'DELTA or INSTANT.';
COMMENT ON COLUMN state_supervision_totals.frequency IS 'MONTHLY or ANNUAL length of the period.';
COMMENT ON COLUMN state_supervision_totals.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR.';
COMMENT ON COLUMN state_supervision_totals.is_derived_annual IS 'True for calendar years of monthly reporters.';
COMMENT ON COLUMN state_supervision_totals.period_start IS 'First day of the period.';
COMMENT ON COLUMN state_supervision_totals.period_end IS 'Day after the period.';
COMMENT ON COLUMN state_supervision_totals.dimension IS 'Breakdown dimension; NULL on the total.';
COMMENT ON COLUMN state_supervision_totals.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_supervision_totals.value IS 'Sum over agencies of (combined value, or sum of the agency''s subsystem values).';
COMMENT ON COLUMN state_supervision_totals.agencies_reporting IS 'Agencies contributing (each counted once).';
COMMENT ON COLUMN state_supervision_totals.agencies_reporting_combined IS 'Of which reporting the combined SUPERVISION_* key.';
COMMENT ON COLUMN state_supervision_totals.agencies_reporting_by_subsystem IS 'Of which reporting subsystem keys.';
COMMENT ON COLUMN state_supervision_totals.agencies_partial IS 'Of which reporting by subsystem but missing, in the period''s totals, a subsystem key their settings expect (their value is partial; is_complete is then false). Judged on the totals and carried to the breakdown rows: a subsystem without a row of one category is no missing subsystem.';
COMMENT ON COLUMN state_supervision_totals.subsystems_reported IS 'Subsystem sectors (PAROLE, PROBATION, ...) present in the sum.';
COMMENT ON COLUMN state_supervision_totals.agencies_expected IS 'Agencies expected to report this base metric (combined or by subsystem) at this cadence, from the current settings.';
COMMENT ON COLUMN state_supervision_totals.is_complete IS 'agencies_reporting = agencies_expected and no agency partial.';
COMMENT ON COLUMN state_supervision_totals.population_covered IS 'Sum of the populations of the contributing agencies, each agency once; agencies serving overlapping populations (a statewide department and county departments) are all counted, so this is not a count of distinct residents and the rate is a lower bound.';
COMMENT ON COLUMN state_supervision_totals.rate_per_100k IS 'value / population_covered * 100000; NULL when a contributing agency has no population.';
