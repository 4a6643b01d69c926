-- no_implausible_jumps: each total in $months against the median of the same series' previous $history periods
-- (same agency, metric and frequency). Flag when at least $min_history earlier periods exist and
--   |value - median| >= greatest($min_difference, relative * median, $robust_z * 1.4826 * MAD)
-- with relative = $relative_instant for INSTANT metrics (populations, staff, open cases) and $relative_delta for
-- event counts. 1.4826 * MAD estimates the standard deviation robustly (one earlier outlier does not move it).
-- Parameters: $months DATE[], $history, $min_history, $min_difference, $relative_delta, $relative_instant,
-- $robust_z.
WITH series AS (
    SELECT agency_id, metric_key, frequency, period_start, period_end, any_value(value) AS value,
           any_value(file_id) AS file_id, any_value(sheet) AS sheet, min(row_number) AS row_number
    FROM agency_metrics
    WHERE dimension IS NULL AND category IS NULL AND isfinite(value)
      AND period_start <= list_max($months)
    GROUP BY ALL
),
windowed AS (
    SELECT *, list(value) OVER (
                  PARTITION BY agency_id, metric_key, frequency ORDER BY period_start
                  ROWS BETWEEN $history::INTEGER PRECEDING AND 1 PRECEDING) AS prior
    FROM series
    QUALIFY list_contains($months, period_start)
),
stats AS (
    SELECT *, coalesce(len(prior), 0) AS n_prior, list_aggregate(prior, 'median') AS median
    FROM windowed
),
robust AS (
    SELECT *, 1.4826 * coalesce(list_aggregate(list_transform(prior, lambda x: abs(x - median)), 'median'), 0) AS sigma
    FROM stats
)
SELECT r.agency_id, r.metric_key, r.period_start, r.period_end, NULL AS dimension, NULL AS category,
       r.value AS observed, r.median AS expected,
       format('Median of the {} earlier periods: {:.10g}.', r.n_prior, r.median) AS detail,
       r.file_id, r.sheet, r.row_number,
       r.n_prior >= $min_history
           AND abs(r.value - r.median) >= greatest(
                   $min_difference,
                   CASE WHEN d.measurement_type = 'INSTANT' THEN $relative_instant ELSE $relative_delta END
                       * abs(r.median),
                   $robust_z * r.sigma) AS failed
FROM robust AS r
LEFT JOIN metric_definitions AS d ON d.metric_key = r.metric_key
