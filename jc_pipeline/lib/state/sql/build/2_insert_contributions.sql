-- Partition replace, step 2: the agency values summed into state_metrics for the requested months.
INSERT INTO state_metric_contributions BY NAME
WITH counted AS (
    -- Only the slice of the requested months (and their years) is read: see state_metric_inputs_of.
    SELECT * FROM state_metric_inputs_of($months::DATE[]) WHERE is_counted
)
-- Periods as the agencies reported them (months, calendar years, fiscal years).
SELECT
    state_code, sector, metric_key, measurement_type, frequency, period_kind,
    FALSE AS is_derived_annual,
    period_start, period_end, dimension, category, agency_id, population, value,
    1 AS months_combined
FROM counted
WHERE list_contains($months, period_start)
UNION ALL
-- Calendar years of monthly reporters, per agency, only with all 12 months counted (an excluded or absent
-- month means no derived value). DELTA: sum of the months. INSTANT: average of the months.
-- Sums go through DECIMAL so that the result does not depend on the order of parallel aggregation.
SELECT
    state_code, sector, metric_key, measurement_type,
    'ANNUAL' AS frequency,
    'CALENDAR_YEAR' AS period_kind,
    TRUE AS is_derived_annual,
    make_date(year(period_start), 1, 1) AS period_start,
    make_date(year(period_start) + 1, 1, 1) AS period_end,
    dimension, category, agency_id, population,
    CASE
        WHEN measurement_type = 'INSTANT' THEN avg(value::DECIMAL(38, 6))
        ELSE sum(value::DECIMAL(38, 6))::DOUBLE
    END AS value,
    count(DISTINCT period_start) AS months_combined
FROM counted
WHERE frequency = 'MONTHLY'
  AND list_contains($months, make_date(year(period_start), 1, 1))
GROUP BY state_code, sector, metric_key, measurement_type, year(period_start), dimension, category, agency_id, population
HAVING count(DISTINCT period_start) = 12;
