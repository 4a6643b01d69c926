-- Partition replace, step 2: the agency values summed into state_metrics for the requested months, of the agencies
-- in $agencies (VARCHAR[]; NULL: every agency). Every value below reads only its own agency's datapoints, verdicts
-- and settings, so rebuilding some agencies writes their rows of a whole rebuild. (A nightly correction of one
-- agency's month at 3,000 agencies: the build 0.31-0.48 -> 0.13-0.21 s, the checkpoint after it 0.18-0.42 ->
-- 0.006-0.012 s: a whole month of rows deleted and written again made DuckDB rewrite their row groups.)
INSERT INTO state_metric_contributions BY NAME
-- Periods as the agencies reported them (months, calendar years, fiscal years): the counted datapoints, comparable
-- and not excluded. Only the slice of the requested months is read: see state_datapoints_of.
SELECT
    state_code, sector, metric_key, measurement_type, frequency, period_kind,
    FALSE AS is_derived_annual,
    period_start, period_end, dimension, category, agency_id, population, value,
    1 AS months_combined
FROM state_comparable_of($months::DATE[])
WHERE NOT is_excluded AND list_contains($months, period_start)
  AND ($agencies::VARCHAR[] IS NULL OR list_contains($agencies::VARCHAR[], agency_id))
UNION ALL
-- Calendar years of monthly reporters, for the years of the requested months ($year_starts), per agency, only
-- with all 12 months counted (an excluded or absent month means no derived value): the sum of the months, or for
-- levels (metric_definitions.is_level: INSTANT metrics other than money) the sum over twelve, their average. A
-- breakdown's category counts when the agency reported the dimension (any category) in all 12 months, a month
-- without the category adding nothing, as in that month's state row: the year's categories then sum the agencies
-- and months its month rows do. (Until 2026-12-07 a category needed all 12 months of its own: one left out of a
-- month dropped the agency's year from that category alone, and the categories summed different agencies.)
-- The year's datapoints are aggregated first and only the aggregates joined: an agency's months are counted
-- when not excluded and when the agency is expected for derived years (the same cadence as their coverage),
-- which is what is_counted says of a monthly datapoint.
SELECT
    e.state_code, e.sector, y.metric_key, e.measurement_type,
    'ANNUAL' AS frequency,
    'CALENDAR_YEAR' AS period_kind,
    TRUE AS is_derived_annual,
    y.period_start,
    make_date(year(y.period_start) + 1, 1, 1) AS period_end,
    y.dimension, y.category, y.agency_id, e.population,
    CASE WHEN e.is_level THEN y.total / 12 ELSE y.total END AS value,
    y.months_combined
FROM (
    SELECT
        agency_id, metric_key, make_date(year(period_start), 1, 1) AS period_start, dimension, category,
        state_exact_sum(value) AS total,
        -- One row per datapoint key (DESIGN §3.3) and a month's period_end follows from its start, so a group's
        -- rows are its distinct months: count(*) without the cost of a DISTINCT aggregate (three hash groupings).
        count(*) AS months_combined
    -- The slice of $year_starts is every period of those years.
    FROM state_datapoints_of($year_starts::DATE[])
    WHERE frequency = 'MONTHLY' AND NOT is_excluded
      AND ($agencies::VARCHAR[] IS NULL OR list_contains($agencies::VARCHAR[], agency_id))
    GROUP BY agency_id, metric_key, make_date(year(period_start), 1, 1), dimension, category
    -- The months of the agency's total (dimension NULL), or of its breakdown in any category, as bits: all 12 set.
    QUALIFY bit_or(bit_or(1 << (month(period_start) - 1)))
            OVER (PARTITION BY agency_id, metric_key, make_date(year(period_start), 1, 1), dimension) = 4095
) AS y
JOIN state_derived_year_agencies() AS e ON e.agency_id = y.agency_id AND e.metric_key = y.metric_key
-- Stored in period order: the partition filters of steps 1 and 4 then skip the row groups of other months
-- (zone maps), so their cost does not grow with the history this table keeps.
ORDER BY period_start;
