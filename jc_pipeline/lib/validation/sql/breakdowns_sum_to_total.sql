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
SELECT c.agency_id, c.metric_key, c.period_start, c.period_end, c.dimension, NULL AS category,
       c.parts_sum AS observed, c.total AS expected,
       -- The row named is the breakdown's; a total sent in another file is named too, or the agency finds a total
       -- in the named file that agrees with the breakdown (helper-60: a later file corrected only the total).
       CASE WHEN c.inferred THEN 'The total was not sent; it was taken from another breakdown.'
            WHEN f.path IS NOT NULL
            THEN 'The total is on row ' || c.total_row_number
                 -- A CSV's sheet is its file name: the path says it.
                 || CASE WHEN NOT ends_with(f.path, '/' || c.total_sheet) THEN ' of sheet ''' || c.total_sheet || ''''
                         ELSE '' END
                 || ' of ' || f.path || '.' END AS detail,
       coalesce(c.file_id, c.total_file_id) AS file_id, coalesce(c.sheet, c.total_sheet) AS sheet,
       coalesce(c.row_number, c.total_row_number) AS row_number,
       abs(c.parts_sum - c.total) > c.tolerance
           AND NOT (c.vacant > 0 AND abs(c.parts_sum - (c.total - c.vacant)) <= c.tolerance) AS failed
FROM compared AS c
LEFT JOIN source_files AS f ON f.file_id = c.total_file_id AND c.file_id <> c.total_file_id
