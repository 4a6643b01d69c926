-- required_breakdowns_present: every breakdown the registry flags as required, for each reported
-- (agency, metric, period), judged per calendar year: one group per agency x metric x required dimension x year
-- (the year of period_start) in which the metric was reported, failing when the dimension is missing from at
-- least one of that year's periods. A failing group covers the calendar year (period_start = January 1,
-- period_end = the next January 1); observed counts the periods without the breakdown, expected the periods
-- reported, detail lists the periods; the lineage is the total of the first period without it.
-- One finding per year instead of one per month: an agency that never sends a required breakdown would
-- otherwise get twelve identical findings a year (docs/decisions.md).
-- Parameters: $months DATE[] (their calendar years are judged whole: Rule.scope = "years"), $agencies VARCHAR[]
-- (NULL: every agency).
WITH required AS (
    SELECT DISTINCT metric_key, dimension FROM metric_categories WHERE required
),
dp AS (
    -- The rows of the metrics that have required breakdowns, in the judged years. The range lets DuckDB skip the
    -- row groups of other years (agency_metrics is written sorted by period).
    SELECT agency_id, metric_key, period_start, period_end, dimension, file_id, sheet, row_number
    FROM agency_metrics
    WHERE period_start >= make_date(year(list_min($months)), 1, 1)
      AND period_start < make_date(year(list_max($months)) + 1, 1, 1)
      AND list_contains(list_transform($months, lambda x: year(x)), year(period_start))
      AND metric_key IN (SELECT metric_key FROM required)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
),
reported AS (
    SELECT agency_id, metric_key, period_start, period_end,
           -- The lineage of the period's total; a duplicated one: its first row in the lineage order (sqlrules.py).
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet}) FILTER (WHERE dimension IS NULL))
    FROM dp GROUP BY agency_id, metric_key, period_start, period_end
),
present AS (
    SELECT DISTINCT agency_id, metric_key, period_start, period_end, dimension FROM dp WHERE dimension IS NOT NULL
),
periods AS (
    SELECT r.*, q.dimension, p.dimension IS NULL AS missing
    FROM reported AS r
    JOIN required AS q ON q.metric_key = r.metric_key
    LEFT JOIN present AS p ON p.agency_id = r.agency_id AND p.metric_key = r.metric_key
        AND p.period_start = r.period_start AND p.period_end = r.period_end AND p.dimension = q.dimension
)
SELECT agency_id, metric_key, make_date(year(period_start), 1, 1) AS period_start,
       make_date(year(period_start) + 1, 1, 1) AS period_end, dimension, NULL AS category,
       count(*) FILTER (WHERE missing)::VARCHAR AS observed, count(*)::VARCHAR AS expected,
       'Periods without it: ' || string_agg(
           CASE WHEN period_end = period_start + INTERVAL 1 MONTH THEN strftime(period_start, '%Y-%m')
                ELSE strftime(period_start, '%Y-%m') || ' to ' || strftime(period_end - INTERVAL 1 DAY, '%Y-%m') END,
           ', ' ORDER BY period_start, period_end) FILTER (WHERE missing) || '.' AS detail,
       arg_min(file_id, (period_start, period_end)) FILTER (WHERE missing) AS file_id,
       arg_min(sheet, (period_start, period_end)) FILTER (WHERE missing) AS sheet,
       arg_min(row_number, (period_start, period_end)) FILTER (WHERE missing) AS row_number,
       bool_or(missing) AS failed
FROM periods
GROUP BY agency_id, metric_key, dimension, year(period_start)
