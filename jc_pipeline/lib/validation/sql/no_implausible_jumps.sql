-- no_implausible_jumps: each total in $months against the median of the same series' previous $history periods
-- (same agency, metric and frequency). Flag when at least $min_history earlier periods exist and
--   |value - median| >= greatest($min_difference, relative * median, $robust_z * 1.4826 * MAD)
-- with relative = $relative_instant for levels (metric_definitions.is_level: populations, staff, open cases) and
-- $relative_delta for event counts and money (funding and expenses are sums of money whatever their upstream type,
-- spec §9.3). 1.4826 * MAD estimates the standard deviation robustly
-- (one earlier outlier does not move it).
-- Parameters: $months DATE[], $history, $min_history, $min_difference, $relative_delta, $relative_instant,
-- $robust_z, $agencies VARCHAR[] (NULL: every agency).
--
-- Cost grows with the months checked, not with the history: the earlier periods are first looked for in the
-- $history months (years, for annual series) before the first checked month; only the series that have fewer
-- than $history periods there (a gap, or the start of their history) are read further back. Either way each
-- checked total gets exactly the $history periods before it in its series.
WITH series_keys AS (
    -- The series of $agencies that have a total in $months (only those need history).
    SELECT DISTINCT agency_id, metric_key, frequency
    FROM agency_metrics
    WHERE list_contains($months, period_start) AND dimension IS NULL AND category IS NULL AND isfinite(value)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
),
recent AS (
    -- The $history months (years, for annual series) before the first checked month, and the checked months.
    -- Plain range filters on period_start, so DuckDB skips the row groups of other years.
    SELECT m.agency_id, m.metric_key, m.frequency, m.period_start, m.period_end, m.value, m.file_id, m.sheet,
           m.row_number
    FROM agency_metrics AS m SEMI JOIN series_keys USING (agency_id, metric_key, frequency)
    WHERE m.frequency = 'MONTHLY' AND m.dimension IS NULL AND m.category IS NULL AND isfinite(m.value)
      AND m.period_start BETWEEN (list_min($months) - to_months($history::INTEGER))::DATE AND list_max($months)
    UNION ALL
    SELECT m.agency_id, m.metric_key, m.frequency, m.period_start, m.period_end, m.value, m.file_id, m.sheet,
           m.row_number
    FROM agency_metrics AS m SEMI JOIN series_keys USING (agency_id, metric_key, frequency)
    WHERE m.frequency <> 'MONTHLY' AND m.dimension IS NULL AND m.category IS NULL AND isfinite(m.value)
      AND m.period_start BETWEEN (list_min($months) - to_years($history::INTEGER))::DATE AND list_max($months)
),
short_series AS (
    -- Series with a checked total that has fewer than $history earlier periods in the recent window (a gap, or
    -- the start of its history): their whole history is read.
    SELECT DISTINCT agency_id, metric_key, frequency
    FROM (
        SELECT agency_id, metric_key, frequency, period_start,
               row_number() OVER (PARTITION BY agency_id, metric_key, frequency ORDER BY period_start, period_end)
                   - 1 AS n_before
        FROM (SELECT DISTINCT agency_id, metric_key, frequency, period_start, period_end FROM recent)
    )
    WHERE list_contains($months, period_start) AND n_before < $history::INTEGER
),
totals AS (
    -- Again one plain range filter per frequency (a CASE over the frequency would read every row group).
    SELECT * FROM recent
    UNION ALL
    SELECT m.agency_id, m.metric_key, m.frequency, m.period_start, m.period_end, m.value, m.file_id, m.sheet,
           m.row_number
    FROM agency_metrics AS m SEMI JOIN short_series USING (agency_id, metric_key, frequency)
    WHERE m.frequency = 'MONTHLY' AND m.dimension IS NULL AND m.category IS NULL AND isfinite(m.value)
      AND m.period_start < (list_min($months) - to_months($history::INTEGER))::DATE
    UNION ALL
    SELECT m.agency_id, m.metric_key, m.frequency, m.period_start, m.period_end, m.value, m.file_id, m.sheet,
           m.row_number
    FROM agency_metrics AS m SEMI JOIN short_series USING (agency_id, metric_key, frequency)
    WHERE m.frequency <> 'MONTHLY' AND m.dimension IS NULL AND m.category IS NULL AND isfinite(m.value)
      AND m.period_start < (list_min($months) - to_years($history::INTEGER))::DATE
),
series AS (
    -- One row per period, numbered within its series. A duplicated datapoint counts once, as its first row in the
    -- lineage order (sqlrules.py): the value checked is that of the row reported.
    SELECT agency_id, metric_key, frequency, period_start, period_end,
           unnest(min({'row_number': row_number, 'file_id': file_id, 'sheet': sheet, 'value': value})),
           row_number() OVER (PARTITION BY agency_id, metric_key, frequency ORDER BY period_start, period_end) AS n
    FROM totals
    GROUP BY agency_id, metric_key, frequency, period_start, period_end
),
robust AS (
    -- Each checked total with the median and the MAD of the $history periods before it in its series: window
    -- aggregates over the numbered periods, which build no list per row (a join on the numbers collecting them in
    -- lists cost the same for one year, and 3.3 against 2.5 s for ten).
    SELECT *, count(value) OVER prior AS n_prior, median(value) OVER prior AS median,
           1.4826 * coalesce(mad(value) OVER prior, 0) AS sigma
    FROM series
    WINDOW prior AS (PARTITION BY agency_id, metric_key, frequency ORDER BY n
                     ROWS BETWEEN $history::INTEGER PRECEDING AND 1 PRECEDING)
    QUALIFY list_contains($months, period_start)
)
SELECT r.agency_id, r.metric_key, r.period_start, r.period_end, NULL AS dimension, NULL AS category,
       r.value AS observed, r.median AS expected,
       format('Median of the {} earlier periods: {:.10g}.', r.n_prior, r.median) AS detail,
       r.file_id, r.sheet, r.row_number,
       r.n_prior >= $min_history
           AND abs(r.value - r.median) >= greatest(
                   $min_difference,
                   CASE WHEN d.is_level THEN $relative_instant
                        ELSE $relative_delta END
                       * abs(r.median),
                   $robust_z * r.sigma) AS failed
FROM robust AS r
LEFT JOIN metric_definitions AS d ON d.metric_key = r.metric_key
