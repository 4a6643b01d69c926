-- no_missing_months: in each calendar year touched by $months, for every (agency, monthly metric) with at least
-- one monthly total that year, the months expected are all twelve when the year is over by $today, else the
-- months up to the latest one reported. One group per expected month; it fails when the month is absent.
-- Metrics the agency disabled, and combined supervision keys it reports by subsystem, are skipped (metric_enabled
-- reports them: the agency is asked to stop sending them, not to send more); so are metrics it reports annually,
-- whose months it sent at the wrong cadence (ingest's F6m asks it to send years; the roll-up does not count them).
-- Parameters: $months DATE[], $today DATE, $agencies VARCHAR[] (NULL: every agency).
WITH years AS (
    SELECT DISTINCT year(m) AS y FROM (SELECT unnest($months) AS m)
),
monthly AS (
    SELECT DISTINCT m.agency_id, m.metric_key, m.period_start
    FROM agency_metrics AS m
    LEFT JOIN agency_metric_settings AS s ON s.agency_id = m.agency_id AND s.metric_key = m.metric_key
    LEFT JOIN metric_definitions AS d ON d.metric_key = m.metric_key
    WHERE m.frequency = 'MONTHLY' AND m.dimension IS NULL AND m.category IS NULL
      AND year(m.period_start) IN (SELECT y FROM years)
      -- The same years as a range, which lets DuckDB skip the row groups of other years.
      AND m.period_start >= make_date(year(list_min($months)), 1, 1)
      AND m.period_start < make_date(year(list_max($months)) + 1, 1, 1)
      AND coalesce(s.enabled, TRUE) AND coalesce(s.frequency, 'MONTHLY') = 'MONTHLY'
      AND NOT (d.sector = 'SUPERVISION' AND coalesce(s.disaggregated_by_supervision_subsystems, FALSE))
      AND ($agencies::VARCHAR[] IS NULL OR m.agency_id IN (SELECT unnest($agencies::VARCHAR[])))
),
series AS (
    SELECT agency_id, metric_key, year(period_start) AS y, max(period_start) AS last_reported
    FROM monthly GROUP BY ALL
),
expected AS (
    SELECT agency_id, metric_key, y, unnest(generate_series(
               make_date(y, 1, 1)::TIMESTAMP,
               (CASE WHEN make_date(y + 1, 1, 1) <= $today::DATE THEN make_date(y, 12, 1)
                     ELSE last_reported END)::TIMESTAMP,
               INTERVAL 1 MONTH))::DATE AS month
    FROM series
)
SELECT e.agency_id, e.metric_key, e.month AS period_start, (e.month + INTERVAL 1 MONTH)::DATE AS period_end,
       NULL AS dimension, NULL AS category, 'missing' AS observed, 'reported' AS expected, NULL AS detail,
       NULL AS file_id, NULL AS sheet, NULL::BIGINT AS row_number,
       r.period_start IS NULL AS failed
FROM expected AS e
LEFT JOIN monthly AS r ON r.agency_id = e.agency_id AND r.metric_key = e.metric_key AND r.period_start = e.month
