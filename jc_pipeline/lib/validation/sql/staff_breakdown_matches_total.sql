-- staff_breakdown_matches_total: staff-type breakdowns that have a vacancy member (registry: VACANT, or
-- VACANT_POSITIONS for prosecution), summed with the vacancies, vs total staff. The detail says when the total looks
-- like it leaves the vacancies out.
-- Parameters: $months DATE[], $vacancy_dimensions VARCHAR[], $vacancy_members VARCHAR[], $absolute_tolerance,
-- $agencies VARCHAR[] (NULL: every agency).
-- NOT MATERIALIZED, as in breakdowns_sum_to_total: both readers scan agency_metrics with their own filters rather
-- than a copy of the year's rows (a year at 3,000 agencies: 0.15 -> 0.14 s of CPU).
WITH dp AS NOT MATERIALIZED (
    SELECT * FROM agency_metrics
    WHERE list_contains($months, period_start) AND isfinite(value)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
),
totals AS (
    -- A duplicated total counts once, as its first row in the lineage order (sqlrules.py), the row reported.
    SELECT agency_id, metric_key, period_start, period_end,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet, 'total': value}))
    FROM dp WHERE dimension IS NULL AND category IS NULL
    GROUP BY agency_id, metric_key, period_start, period_end
),
parts AS (
    SELECT agency_id, metric_key, period_start, period_end, dimension,
           sum(value) AS parts_sum,
           coalesce(sum(value) FILTER (WHERE list_contains($vacancy_members, category)), 0) AS vacant,
           count(*) FILTER (WHERE list_contains($vacancy_members, category)) AS vacant_rows,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet}))
    FROM dp WHERE list_contains($vacancy_dimensions, dimension)
    GROUP BY agency_id, metric_key, period_start, period_end, dimension
)
SELECT p.agency_id, p.metric_key, p.period_start, p.period_end, p.dimension, NULL AS category,
       p.parts_sum AS observed, t.total AS expected,
       CASE
           WHEN p.vacant > 0 AND abs(p.parts_sum - p.vacant - t.total) <= $absolute_tolerance
               THEN format('The total seems to leave out the {:.10g} vacant positions.', p.vacant)
           WHEN p.vacant_rows = 0
               THEN 'No vacant positions were reported; if the total includes vacancies, '
                    || 'report them as Vacant Positions.'
       END AS detail,
       coalesce(p.file_id, t.file_id) AS file_id, coalesce(p.sheet, t.sheet) AS sheet,
       coalesce(p.row_number, t.row_number) AS row_number,
       abs(p.parts_sum - t.total) > $absolute_tolerance AS failed
FROM parts AS p
JOIN totals AS t USING (agency_id, metric_key, period_start, period_end)
