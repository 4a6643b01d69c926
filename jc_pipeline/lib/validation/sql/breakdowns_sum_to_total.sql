-- breakdowns_sum_to_total: each breakdown's sum vs the total of the same agency, metric and period.
-- Staff-type dimensions with a vacancy member are left to staff_breakdown_matches_total. Other breakdowns of a
-- staff metric (race, sex) describe people, so they may add up to the total without the vacant positions.
-- Parameters: $months DATE[], $count_tolerance, $usd_relative_tolerance, $vacancy_dimensions VARCHAR[],
-- $vacancy_members VARCHAR[], $agencies VARCHAR[] (NULL: every agency).
-- Output (every SQL rule): one row per group checked, `failed` true for the failing ones.
-- NOT MATERIALIZED: each reader below scans agency_metrics with its own filters; DuckDB would otherwise copy
-- the year's rows, every column, to read them three times (a year at 3,000 agencies: 0.94-1.19 -> 0.69-0.75 s
-- of CPU for breakdowns_sum_to_total).
WITH dp AS NOT MATERIALIZED (
    SELECT * FROM agency_metrics
    WHERE list_contains($months, period_start) AND isfinite(value)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
),
totals AS (
    -- A duplicated total counts once, as its first row in the lineage order (sqlrules.py), the row reported.
    SELECT agency_id, metric_key, period_start, period_end, bool_or(is_inferred_total) AS inferred,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet, 'total': value}))
    FROM dp WHERE dimension IS NULL AND category IS NULL
    GROUP BY agency_id, metric_key, period_start, period_end
),
vacancies AS (
    SELECT agency_id, metric_key, period_start, period_end, sum(value) AS vacant
    FROM dp WHERE list_contains($vacancy_dimensions, dimension) AND list_contains($vacancy_members, category)
    GROUP BY ALL
),
parts AS (
    SELECT agency_id, metric_key, period_start, period_end, dimension,
           sum(value) AS parts_sum, unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet}))
    FROM dp WHERE dimension IS NOT NULL AND NOT list_contains($vacancy_dimensions, dimension)
    GROUP BY agency_id, metric_key, period_start, period_end, dimension
),
compared AS (
    SELECT p.*, t.total, t.inferred, coalesce(v.vacant, 0) AS vacant,
           t.file_id AS total_file_id, t.sheet AS total_sheet, t.row_number AS total_row_number,
           CASE WHEN d.unit = 'USD' THEN $usd_relative_tolerance * abs(t.total) ELSE $count_tolerance END AS tolerance
    FROM parts AS p
    JOIN totals AS t USING (agency_id, metric_key, period_start, period_end)
    LEFT JOIN vacancies AS v USING (agency_id, metric_key, period_start, period_end)
    LEFT JOIN metric_definitions AS d ON d.metric_key = p.metric_key
)
SELECT agency_id, metric_key, period_start, period_end, dimension, NULL AS category,
       parts_sum AS observed, total AS expected,
       CASE WHEN inferred THEN 'The total was not sent; it was taken from another breakdown.' END AS detail,
       coalesce(file_id, total_file_id) AS file_id, coalesce(sheet, total_sheet) AS sheet,
       coalesce(row_number, total_row_number) AS row_number,
       abs(parts_sum - total) > tolerance
           AND NOT (vacant > 0 AND abs(parts_sum - (total - vacant)) <= tolerance) AS failed
FROM compared
