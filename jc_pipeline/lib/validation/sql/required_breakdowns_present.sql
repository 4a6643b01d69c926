-- required_breakdowns_present: every breakdown the registry flags as required, for each reported
-- (agency, metric, period). Parameters: $months DATE[].
WITH dp AS (
    SELECT * FROM agency_metrics WHERE list_contains($months, period_start)
),
reported AS (
    SELECT agency_id, metric_key, period_start, period_end,
           any_value(file_id) FILTER (WHERE dimension IS NULL) AS file_id,
           any_value(sheet) FILTER (WHERE dimension IS NULL) AS sheet,
           min(row_number) FILTER (WHERE dimension IS NULL) AS row_number
    FROM dp GROUP BY ALL
),
required AS (
    SELECT DISTINCT metric_key, dimension FROM metric_categories WHERE required
),
present AS (
    SELECT DISTINCT agency_id, metric_key, period_start, period_end, dimension FROM dp WHERE dimension IS NOT NULL
)
SELECT r.agency_id, r.metric_key, r.period_start, r.period_end, q.dimension, NULL AS category,
       'missing' AS observed, 'reported' AS expected, NULL AS detail,
       r.file_id, r.sheet, r.row_number,
       p.dimension IS NULL AS failed
FROM reported AS r
JOIN required AS q ON q.metric_key = r.metric_key
LEFT JOIN present AS p ON p.agency_id = r.agency_id AND p.metric_key = r.metric_key
    AND p.period_start = r.period_start AND p.period_end = r.period_end AND p.dimension = q.dimension
