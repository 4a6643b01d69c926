-- parts_match_total (the rules jail_population_parts_match_total and jail_flow_parts_match_total): part A + part B
-- vs the whole, for the (A, B, whole) metric triples the registry has (pre- + post-adjudication vs total jail
-- population, admissions, releases), same agency and period, totals only.
-- Parameters: $months DATE[], $part_a, $part_b, $whole VARCHAR[] (parallel lists), $absolute_tolerance,
-- $relative_tolerance, $agencies VARCHAR[] (NULL: every agency).
WITH ids AS (
    SELECT unnest($part_a) AS part_a, unnest($part_b) AS part_b, unnest($whole) AS whole
),
totals AS (
    -- A duplicated total counts once, as its first row in the lineage order (sqlrules.py), the row reported.
    SELECT agency_id, metric_key, period_start, period_end,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet, 'value': value}))
    FROM agency_metrics
    WHERE list_contains($months, period_start) AND dimension IS NULL AND category IS NULL AND isfinite(value)
      AND list_contains(list_concat($part_a, $part_b, $whole), metric_key)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
    GROUP BY agency_id, metric_key, period_start, period_end
)
SELECT w.agency_id, w.metric_key, w.period_start, w.period_end, NULL AS dimension, NULL AS category,
       a.value + b.value AS observed, w.value AS expected,
       format('Pre-adjudication: {:.10g}; post-adjudication: {:.10g}.', a.value, b.value) AS detail,
       w.file_id, w.sheet, w.row_number,
       abs(a.value + b.value - w.value) > greatest($absolute_tolerance, $relative_tolerance * abs(w.value)) AS failed
FROM ids
JOIN totals AS w ON w.metric_key = ids.whole
JOIN totals AS a ON a.metric_key = ids.part_a AND a.agency_id = w.agency_id
    AND a.period_start = w.period_start AND a.period_end = w.period_end
JOIN totals AS b ON b.metric_key = ids.part_b AND b.agency_id = w.agency_id
    AND b.period_start = w.period_start AND b.period_end = w.period_end
