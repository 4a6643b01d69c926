-- Partition replace, step 4: state rows for the requested months and the derived calendar years of their years
-- ($year_starts), aggregated from the contributions just written, with coverage from state_expected_agencies and
-- the breakdown publication gate ($threshold, 0..1).
INSERT INTO state_metrics BY NAME
WITH
-- The comparable datapoints of the requested months (state_comparable_of). NOT MATERIALIZED, like contributions
-- below: a full build holds millions of them, whose materialized copy spills past DuckDB's memory limit; each
-- reader filters and projects its own scan instead (at 3,000 agencies, ten years: 20 -> 7 s of CPU).
inputs AS NOT MATERIALIZED (
    SELECT * FROM state_comparable_of($months::DATE[])
    WHERE list_contains($months, period_start)
),
-- The derived years of $year_starts (all their months: state_datapoints_of) per agency expected for them (the
-- cadence of derived rows, what is_comparable says of a monthly datapoint) and metric: whether the agency
-- has a monthly datapoint there and whether one is excluded, all that derived row keys and exclusions need.
-- Aggregated before the joins: a year of datapoints is far more rows than its agencies x metrics.
year_reporters AS (
    SELECT
        e.state_code, e.sector, y.metric_key, e.measurement_type, y.period_start,
        make_date(year(y.period_start) + 1, 1, 1) AS period_end, y.agency_id, y.any_excluded
    FROM (
        SELECT agency_id, metric_key, make_date(year(period_start), 1, 1) AS period_start,
               bool_or(is_excluded) AS any_excluded
        FROM state_datapoints_of($year_starts::DATE[])
        WHERE frequency = 'MONTHLY'
        GROUP BY agency_id, metric_key, make_date(year(period_start), 1, 1)
    ) AS y
    JOIN state_derived_year_agencies() AS e ON e.agency_id = y.agency_id AND e.metric_key = y.metric_key
),
contributions AS NOT MATERIALIZED (
    SELECT * FROM state_metric_contributions
    WHERE state_row_in_build($months::DATE[], $year_starts::DATE[], is_derived_annual, period_start)
),
-- Rows to write. Total rows: every metric x period with a comparable datapoint, counted or excluded by
-- validation (so that a period whose data all failed shows as value NULL with 0 reporting instead of
-- vanishing), and every calendar year in which a monthly reporter has one (value NULL while no agency has all
-- 12 months). Breakdown rows: only where at least one agency is counted.
row_keys AS (
    SELECT DISTINCT
        state_code, sector, metric_key, measurement_type, frequency, period_kind,
        FALSE AS is_derived_annual, period_start, period_end,
        NULL::VARCHAR AS dimension, NULL::VARCHAR AS category
    FROM inputs
    UNION
    SELECT DISTINCT
        state_code, sector, metric_key, measurement_type, 'ANNUAL' AS frequency, 'CALENDAR_YEAR' AS period_kind,
        TRUE AS is_derived_annual, period_start, period_end,
        NULL::VARCHAR AS dimension, NULL::VARCHAR AS category
    FROM year_reporters
    UNION
    SELECT DISTINCT
        state_code, sector, metric_key, measurement_type, frequency, period_kind,
        is_derived_annual, period_start, period_end, dimension, category
    FROM contributions
),
-- One row per state x metric x period, with the cadence of the agencies expected in it (00_state_macros.sql).
periods AS (
    SELECT DISTINCT
        state_code, metric_key, is_derived_annual, period_start, period_end,
        state_reporting_frequency(frequency, is_derived_annual) AS expected_frequency,
        state_reporting_starting_month(frequency, is_derived_annual, period_start) AS expected_starting_month
    FROM row_keys
),
period_expected AS (
    SELECT p.state_code, p.metric_key, p.is_derived_annual, p.period_start, p.period_end, e.agency_id, e.population
    FROM periods AS p
    JOIN state_expected_agencies AS e
      ON e.state_code = p.state_code
     AND e.metric_key = p.metric_key
     AND e.frequency = p.expected_frequency
     AND e.starting_month = p.expected_starting_month
),
period_totals AS (
    SELECT * FROM contributions WHERE dimension IS NULL
),
-- Agencies expected for a metric at any cadence: those of the other cadences are in other rows, not in this one.
metric_expected AS (
    SELECT state_code, metric_key, count(*) AS agencies_expected
    FROM state_expected_agencies
    GROUP BY state_code, metric_key
),
-- Agencies expected to report a combined SUPERVISION_* metric by subsystem instead (any cadence): their numbers are
-- in the subsystem rows and state_supervision_totals, not in the combined key's rows.
by_subsystem AS (
    SELECT state_code, state_supervision_base_key(metric_key, sector) AS metric_key,
           count(DISTINCT agency_id) AS agencies_expected
    FROM state_expected_agencies
    WHERE supervision_reporting = 'SUBSYSTEM'
    GROUP BY ALL
),
-- Agencies whose comparable data for the metric failed a validation ERROR in the period (for a derived
-- calendar year: in any of its months).
period_excluded AS (
    SELECT DISTINCT state_code, metric_key, FALSE AS is_derived_annual, period_start, period_end, agency_id
    FROM inputs
    WHERE is_excluded
    UNION
    SELECT state_code, metric_key, TRUE AS is_derived_annual, period_start, period_end, agency_id
    FROM year_reporters
    WHERE any_excluded
),
period_coverage AS (
    SELECT
        x.state_code, x.metric_key, x.is_derived_annual, x.period_start, x.period_end,
        count(*) AS agencies_expected,
        -- Unknown when an expected agency has no population: a share of the known ones alone said 100% covered
        -- while that agency was missing (helper-62).
        CASE WHEN count(x.population) = count(*) THEN sum(x.population) END AS expected_population,
        coalesce(list(x.agency_id ORDER BY x.agency_id) FILTER (WHERE t.agency_id IS NULL), []::VARCHAR[])
            AS agencies_missing,
        coalesce(
            list(x.agency_id ORDER BY x.agency_id) FILTER (WHERE t.agency_id IS NULL AND ex.agency_id IS NOT NULL),
            []::VARCHAR[]
        ) AS agencies_excluded
    FROM period_expected AS x
    LEFT JOIN period_totals AS t
      ON t.state_code = x.state_code AND t.metric_key = x.metric_key AND t.is_derived_annual = x.is_derived_annual
     AND t.period_start = x.period_start AND t.period_end = x.period_end AND t.agency_id = x.agency_id
    LEFT JOIN period_excluded AS ex
      ON ex.state_code = x.state_code AND ex.metric_key = x.metric_key AND ex.is_derived_annual = x.is_derived_annual
     AND ex.period_start = x.period_start AND ex.period_end = x.period_end AND ex.agency_id = x.agency_id
    GROUP BY x.state_code, x.metric_key, x.is_derived_annual, x.period_start, x.period_end
),
-- Sums by state_exact_sum: the same input must give an identical table, whatever the order of parallel
-- aggregation.
row_values AS (
    SELECT
        state_code, metric_key, is_derived_annual, period_start, period_end, dimension, category,
        state_exact_sum(value) AS value,
        count(*) AS agencies_reporting,
        coalesce(sum(population), 0) AS population_covered,
        count(population) = count(*) AS all_populations_known
    FROM contributions
    GROUP BY state_code, metric_key, is_derived_annual, period_start, period_end, dimension, category
),
-- Breakdown gate numerator: the totals of the agencies that reported the dimension (any category).
dimension_coverage AS (
    SELECT
        b.state_code, b.metric_key, b.is_derived_annual, b.period_start, b.period_end, b.dimension,
        state_exact_sum(t.value) AS breakdown_covered_value
    FROM (
        SELECT DISTINCT state_code, metric_key, is_derived_annual, period_start, period_end, dimension, agency_id
        FROM contributions
        WHERE dimension IS NOT NULL
    ) AS b
    JOIN period_totals AS t
      ON t.state_code = b.state_code AND t.metric_key = b.metric_key AND t.is_derived_annual = b.is_derived_annual
     AND t.period_start = b.period_start AND t.period_end = b.period_end AND t.agency_id = b.agency_id
    GROUP BY b.state_code, b.metric_key, b.is_derived_annual, b.period_start, b.period_end, b.dimension
)
SELECT
    k.state_code,
    k.sector,
    k.metric_key,
    k.frequency,
    k.period_start,
    k.period_end,
    k.dimension,
    k.category,
    v.value,
    coalesce(v.agencies_reporting, 0) AS agencies_reporting,
    coalesce(c.agencies_expected, 0) AS agencies_expected,
    coalesce(v.population_covered, 0) AS population_covered,
    100.0 * coalesce(v.population_covered, 0) / nullif(c.expected_population, 0) AS coverage_population_pct,
    CASE WHEN v.all_populations_known AND v.population_covered > 0
         THEN v.value / v.population_covered * 100000 END AS rate_per_100k,
    coalesce(v.agencies_reporting, 0) = coalesce(c.agencies_expected, 0) AS is_complete,
    k.period_kind,
    CASE k.period_kind
        WHEN 'CALENDAR_MONTH' THEN strftime(k.period_start, '%Y-%m')
        WHEN 'CALENDAR_YEAR' THEN 'CY' || year(k.period_start)
        ELSE 'FY' || year(k.period_end - INTERVAL 1 DAY)
             || ' (' || strftime(k.period_start, '%b') || '-' || strftime(k.period_end - INTERVAL 1 DAY, '%b') || ')'
    END AS period_label,
    k.is_derived_annual,
    k.measurement_type,
    CASE
        WHEN k.is_derived_annual AND d.is_level THEN 'SUM_OF_12_MONTH_MEANS'
        WHEN k.is_derived_annual THEN 'SUM_OF_12_MONTHS'
        WHEN d.is_level THEN 'SUM_OF_SNAPSHOTS'
        ELSE 'SUM'
    END AS aggregation_rule,
    c.expected_population,
    CASE WHEN k.dimension IS NULL THEN c.agencies_missing END AS agencies_missing,
    CASE WHEN k.dimension IS NULL THEN c.agencies_excluded END AS agencies_excluded,
    CASE WHEN k.dimension IS NULL THEN coalesce(m.agencies_expected, 0) - coalesce(c.agencies_expected, 0) END
        AS agencies_expected_other_cadence,
    CASE WHEN k.dimension IS NULL AND k.sector = 'SUPERVISION' THEN coalesce(s.agencies_expected, 0) END
        AS agencies_expected_by_subsystem,
    CASE WHEN k.dimension IS NOT NULL THEN coalesce(dc.breakdown_covered_value, 0) END AS breakdown_covered_value,
    CASE WHEN k.dimension IS NOT NULL
         THEN 100.0 * coalesce(dc.breakdown_covered_value, 0) / nullif(total.value, 0) END AS breakdown_share_pct,
    CASE WHEN k.dimension IS NOT NULL THEN 100.0 * $threshold END AS breakdown_threshold_pct,
    CASE WHEN k.dimension IS NOT NULL
         THEN coalesce(coalesce(dc.breakdown_covered_value, 0) / nullif(total.value, 0) >= $threshold, FALSE)
    END AS is_breakdown_published
FROM row_keys AS k
JOIN metric_definitions AS d ON d.metric_key = k.metric_key
LEFT JOIN row_values AS v
  ON v.state_code = k.state_code AND v.metric_key = k.metric_key AND v.is_derived_annual = k.is_derived_annual
 AND v.period_start = k.period_start AND v.period_end = k.period_end
 AND v.dimension IS NOT DISTINCT FROM k.dimension AND v.category IS NOT DISTINCT FROM k.category
LEFT JOIN period_coverage AS c
  ON c.state_code = k.state_code AND c.metric_key = k.metric_key AND c.is_derived_annual = k.is_derived_annual
 AND c.period_start = k.period_start AND c.period_end = k.period_end
LEFT JOIN metric_expected AS m ON m.state_code = k.state_code AND m.metric_key = k.metric_key
LEFT JOIN by_subsystem AS s ON s.state_code = k.state_code AND s.metric_key = k.metric_key
LEFT JOIN row_values AS total
  ON total.state_code = k.state_code AND total.metric_key = k.metric_key
 AND total.is_derived_annual = k.is_derived_annual
 AND total.period_start = k.period_start AND total.period_end = k.period_end AND total.dimension IS NULL
LEFT JOIN dimension_coverage AS dc
  ON dc.state_code = k.state_code AND dc.metric_key = k.metric_key AND dc.is_derived_annual = k.is_derived_annual
 AND dc.period_start = k.period_start AND dc.period_end = k.period_end AND dc.dimension = k.dimension;
