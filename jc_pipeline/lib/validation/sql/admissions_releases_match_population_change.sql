-- admissions_releases_match_population_change: for each monthly population total in $months that has the
-- previous month's population and the same month's admissions and releases, compare admissions - releases
-- with the population change. Triples come from the registry (jails, prisons, supervision + subsystems).
-- Parameters: $months DATE[], $admissions, $releases, $population VARCHAR[] (parallel lists),
-- $absolute_tolerance, $relative_tolerance, $agencies VARCHAR[] (NULL: every agency).
WITH ids AS (
    SELECT unnest($admissions) AS admissions, unnest($releases) AS releases, unnest($population) AS population
),
totals AS (
    -- A duplicated total counts once, as its first row in the lineage order (sqlrules.py), the row reported.
    SELECT agency_id, metric_key, period_start,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet, 'value': value}))
    FROM agency_metrics
    WHERE frequency = 'MONTHLY' AND dimension IS NULL AND category IS NULL AND isfinite(value)
      -- The range lets DuckDB skip the row groups of other months; the list says which months exactly.
      AND period_start BETWEEN (list_min($months) - INTERVAL 1 MONTH)::DATE AND list_max($months)
      AND (list_contains($months, period_start)
           OR list_contains($months, (period_start + INTERVAL 1 MONTH)::DATE))
      AND list_contains(list_concat($admissions, $releases, $population), metric_key)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
    GROUP BY agency_id, metric_key, period_start
)
SELECT p.agency_id, p.metric_key, p.period_start, (p.period_start + INTERVAL 1 MONTH)::DATE AS period_end,
       NULL AS dimension, NULL AS category,
       a.value - r.value AS observed, p.value - p0.value AS expected,
       format('Admissions: {:.10g}; releases: {:.10g}; population: {:.10g} in the previous month, '
              || '{:.10g} in this month.', a.value, r.value, p0.value, p.value) AS detail,
       p.file_id, p.sheet, p.row_number,
       abs((a.value - r.value) - (p.value - p0.value))
           > greatest($absolute_tolerance, $relative_tolerance * abs(p.value)) AS failed
FROM ids
JOIN totals AS p ON p.metric_key = ids.population AND list_contains($months, p.period_start)
JOIN totals AS p0 ON p0.metric_key = ids.population AND p0.agency_id = p.agency_id
    AND p0.period_start = (p.period_start - INTERVAL 1 MONTH)::DATE
JOIN totals AS a ON a.metric_key = ids.admissions AND a.agency_id = p.agency_id AND a.period_start = p.period_start
JOIN totals AS r ON r.metric_key = ids.releases AND r.agency_id = p.agency_id AND r.period_start = p.period_start
