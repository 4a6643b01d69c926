-- Calendar-year state totals combining the two kinds of calendar-year state_metrics rows: agencies that report
-- the year themselves (ANNUAL, starting in January) and monthly reporters rolled up from 12 months. The two
-- agency sets are disjoint (one effective frequency per agency and metric), so adding them double counts
-- nothing. Fiscal-year reporters are not in here: their years are other periods (period_kind FISCAL_YEAR).
CREATE OR REPLACE VIEW state_calendar_years AS
WITH combined AS (
    SELECT
        state_code, sector, metric_key, measurement_type, period_start, period_end, period_label,
        dimension, category,
        state_exact_sum(value) AS value,
        sum(agencies_reporting)::INTEGER AS agencies_reporting,
        coalesce(sum(agencies_reporting) FILTER (WHERE NOT is_derived_annual), 0)::INTEGER AS agencies_reporting_annual,
        coalesce(sum(agencies_reporting) FILTER (WHERE is_derived_annual), 0)::INTEGER AS agencies_reporting_monthly,
        sum(population_covered)::BIGINT AS population_covered,
        bool_and(rate_per_100k IS NOT NULL OR agencies_reporting = 0) AS all_populations_known,
        max(breakdown_threshold_pct) AS breakdown_threshold_pct
    FROM state_metrics
    WHERE period_kind = 'CALENDAR_YEAR'
    GROUP BY state_code, sector, metric_key, measurement_type, period_start, period_end, period_label, dimension, category
),
-- Breakdown gate numerator per dimension, not per category: each kind's covered value (the totals of its agencies
-- that reported the dimension in any category; the same on each of its categories' rows), added over the two
-- kinds, so that agencies of one kind count for a category only the other kind reported.
dimension_coverage AS (
    SELECT state_code, metric_key, period_start, dimension, sum(covered) AS breakdown_covered_value
    FROM (
        SELECT state_code, metric_key, period_start, is_derived_annual, dimension,
               max(breakdown_covered_value) AS covered
        FROM state_metrics
        WHERE period_kind = 'CALENDAR_YEAR' AND dimension IS NOT NULL
        GROUP BY state_code, metric_key, period_start, is_derived_annual, dimension
    )
    GROUP BY state_code, metric_key, period_start, dimension
),
-- Expected: monthly reporters and January-start annual reporters, whether or not a row of their kind exists; and
-- the fiscal-year reporters, whose years are not in here (state_expected_agencies gives monthly reporters
-- starting_month 1).
expected AS (
    SELECT state_code, metric_key,
           count(*) FILTER (WHERE starting_month = 1)::INTEGER AS agencies_expected,
           -- Unknown when an expected agency has no population, as in state_metrics.
           CASE WHEN count(population) FILTER (WHERE starting_month = 1) = count(*) FILTER (WHERE starting_month = 1)
                THEN sum(population) FILTER (WHERE starting_month = 1) END::BIGINT AS expected_population,
           count(*) FILTER (WHERE starting_month <> 1)::INTEGER AS agencies_expected_fiscal_year
    FROM state_expected_agencies
    GROUP BY state_code, metric_key
),
with_totals AS (
    SELECT
        c.*,
        max(c.value) FILTER (WHERE c.dimension IS NULL)
            OVER (PARTITION BY c.state_code, c.metric_key, c.period_start) AS state_total
    FROM combined AS c
)
SELECT
    t.state_code, t.sector, t.metric_key, t.measurement_type, t.period_start, t.period_end, t.period_label,
    t.dimension, t.category,
    t.value,
    t.agencies_reporting,
    t.agencies_reporting_annual,
    t.agencies_reporting_monthly,
    coalesce(e.agencies_expected, 0) AS agencies_expected,
    t.population_covered,
    100.0 * t.population_covered / nullif(e.expected_population, 0) AS coverage_population_pct,
    CASE WHEN t.all_populations_known AND t.population_covered > 0
         THEN t.value / t.population_covered * 100000 END AS rate_per_100k,
    t.agencies_reporting = coalesce(e.agencies_expected, 0) AS is_complete,
    CASE WHEN t.dimension IS NULL THEN coalesce(e.agencies_expected_fiscal_year, 0) END AS agencies_expected_fiscal_year,
    CASE WHEN t.dimension IS NOT NULL THEN 100.0 * dc.breakdown_covered_value / nullif(t.state_total, 0) END
        AS breakdown_share_pct,
    CASE WHEN t.dimension IS NOT NULL
         THEN coalesce(100.0 * dc.breakdown_covered_value / nullif(t.state_total, 0) >= t.breakdown_threshold_pct, FALSE)
    END AS is_breakdown_published
FROM with_totals AS t
LEFT JOIN expected AS e ON e.state_code = t.state_code AND e.metric_key = t.metric_key
LEFT JOIN dimension_coverage AS dc
  ON dc.state_code = t.state_code AND dc.metric_key = t.metric_key AND dc.period_start = t.period_start
 AND dc.dimension = t.dimension;

COMMENT ON VIEW state_calendar_years IS 'Calendar-year state values adding ANNUAL (January-start) reporters and MONTHLY reporters with all 12 months (sum of the months for DELTA metrics and money, average for other INSTANT metrics). Disjoint agency sets, no double counting. Fiscal-year reporters are excluded (see state_metrics rows with period_kind FISCAL_YEAR). agencies_expected comes from the current settings.';
COMMENT ON COLUMN state_calendar_years.state_code IS 'State.';
COMMENT ON COLUMN state_calendar_years.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_calendar_years.metric_key IS 'Metric.';
COMMENT ON COLUMN state_calendar_years.measurement_type IS 'DELTA or INSTANT.';
COMMENT ON COLUMN state_calendar_years.period_start IS 'January 1 of the year.';
COMMENT ON COLUMN state_calendar_years.period_end IS 'January 1 of the next year.';
COMMENT ON COLUMN state_calendar_years.period_label IS 'CY<year>.';
COMMENT ON COLUMN state_calendar_years.dimension IS 'Breakdown dimension; NULL on the total.';
COMMENT ON COLUMN state_calendar_years.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_calendar_years.value IS 'Annual reporters'' values plus monthly reporters'' 12-month sums (DELTA, money) or 12-month averages (other INSTANT); NULL when nobody is counted.';
COMMENT ON COLUMN state_calendar_years.agencies_reporting IS 'agencies_reporting_annual + agencies_reporting_monthly.';
COMMENT ON COLUMN state_calendar_years.agencies_reporting_annual IS 'Agencies that reported the calendar year itself.';
COMMENT ON COLUMN state_calendar_years.agencies_reporting_monthly IS 'Monthly reporters with all 12 months counted.';
COMMENT ON COLUMN state_calendar_years.agencies_expected IS 'Agencies expected for the metric as MONTHLY or as ANNUAL from January (fiscal-year reporters are not expected here).';
COMMENT ON COLUMN state_calendar_years.population_covered IS 'Sum of the populations of the reporting agencies (overlaps counted twice, see state_metrics).';
COMMENT ON COLUMN state_calendar_years.coverage_population_pct IS '100 * population_covered / population of the expected agencies; NULL when an expected agency has no population.';
COMMENT ON COLUMN state_calendar_years.rate_per_100k IS 'value / population_covered * 100000; NULL when a reporting agency has no population.';
COMMENT ON COLUMN state_calendar_years.is_complete IS 'agencies_reporting = agencies_expected.';
COMMENT ON COLUMN state_calendar_years.agencies_expected_fiscal_year IS 'Agencies expected to report this metric for fiscal years (a year starting in another month than January): their years are other periods, not in this calendar year, so is_complete speaks of the other agencies only. NULL on breakdown rows, as state_metrics.agencies_expected_other_cadence.';
COMMENT ON COLUMN state_calendar_years.breakdown_share_pct IS 'Breakdown rows: share of the combined state total held by agencies that reported this breakdown dimension.';
COMMENT ON COLUMN state_calendar_years.is_breakdown_published IS 'Breakdown rows: breakdown_share_pct >= the threshold of the build; false = flagged. NULL on totals.';
