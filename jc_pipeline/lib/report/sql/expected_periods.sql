-- Every period each agency is expected to report, with what became of it: one row per
-- (agency, metric, period) of state_expected_agencies' cadence inside the state's reporting window.
--
-- The window of a state runs from the first to the last period in state_metrics (what any of its agencies
-- reported), separately for months and for annual periods, so periods nobody has reported yet, or that have not
-- ended, are not listed. Annual periods start in the agency's starting month and must lie wholly inside the
-- annual window.
--
-- status: REPORTED (the agency's total is in the state sum: state_metric_contributions), FAILED_VALIDATION (it
-- delivered the period but an ERROR check excluded it), NOT_COUNTED (delivered, but not in the sum for another
-- reason, in `reason`), MISSING (nothing delivered).
--
-- Unordered: its readers (lib/report/data.py, expected_periods) order what they keep of it, a small part.
WITH window_ AS (
    SELECT state_code,
           min(period_start) FILTER (WHERE frequency = 'MONTHLY') AS first_month,
           max(period_start) FILTER (WHERE frequency = 'MONTHLY') AS last_month,
           min(period_start) FILTER (WHERE frequency = 'ANNUAL' AND NOT is_derived_annual) AS first_year,
           max(period_end) FILTER (WHERE frequency = 'ANNUAL' AND NOT is_derived_annual) AS last_year_end
    FROM state_metrics
    GROUP BY state_code
),
periods AS (
    SELECT e.state_code, e.sector, d.parent_sector, e.metric_key, e.agency_id, e.agency_name, e.frequency,
           e.starting_month, CAST(p.start_ts AS DATE) AS period_start
    FROM state_expected_agencies AS e
    JOIN metric_definitions AS d ON d.metric_key = e.metric_key
    JOIN window_ AS w ON w.state_code = e.state_code,
    unnest(CASE
        -- generate_series over NULL bounds yields nothing: a state without monthly (annual) rows lists none.
        WHEN e.frequency = 'MONTHLY' THEN
            generate_series(CAST(w.first_month AS TIMESTAMP), CAST(w.last_month AS TIMESTAMP), INTERVAL 1 MONTH)
        ELSE generate_series(CAST(make_date(year(w.first_year) - 1, e.starting_month, 1) AS TIMESTAMP),
                             CAST(w.last_year_end AS TIMESTAMP), INTERVAL 12 MONTH)
    END) AS p(start_ts)
),
bounded AS (
    SELECT *,
           CAST(period_start + CASE WHEN frequency = 'MONTHLY' THEN INTERVAL 1 MONTH ELSE INTERVAL 12 MONTH END
                AS DATE) AS period_end
    FROM periods
),
counted AS (
    SELECT DISTINCT agency_id, metric_key, period_start, period_end
    FROM state_metric_contributions
    WHERE dimension IS NULL AND NOT is_derived_annual
),
uncounted AS MATERIALIZED (
    SELECT agency_id, metric_key, period_start, period_end FROM bounded
    ANTI JOIN counted USING (agency_id, metric_key, period_start, period_end)
),
-- Only the status of a period not counted reads what was delivered: the verdicts of those periods alone (a few
-- percent of them on a usual night), judged on the slice of their start months (state_metric_inputs_of: the
-- same verdicts as the whole view's, for the datapoints it keeps) instead of on every datapoint.
delivered AS (
    SELECT agency_id, metric_key, period_start, period_end,
           bool_or(is_excluded) AS failed,
           min(uncounted_reason) FILTER (WHERE NOT is_excluded AND NOT is_counted) AS reason
    FROM state_metric_inputs_of((SELECT list(DISTINCT period_start) FROM uncounted))
    SEMI JOIN uncounted USING (agency_id, metric_key, period_start, period_end)
    GROUP BY ALL
)
SELECT b.state_code, b.sector, b.parent_sector, b.metric_key, b.agency_id, b.agency_name, b.frequency,
       b.starting_month, b.period_start, b.period_end,
       CASE
           WHEN b.frequency = 'MONTHLY' THEN 'CALENDAR_MONTH'
           WHEN b.starting_month = 1 THEN 'CALENDAR_YEAR'
           ELSE 'FISCAL_YEAR'
       END AS period_kind,
       CASE
           WHEN c.agency_id IS NOT NULL THEN 'REPORTED'
           WHEN x.failed THEN 'FAILED_VALIDATION'
           WHEN x.agency_id IS NOT NULL THEN 'NOT_COUNTED'
           ELSE 'MISSING'
       END AS status,
       CASE WHEN c.agency_id IS NULL AND NOT coalesce(x.failed, FALSE) THEN x.reason END AS reason
FROM bounded AS b
LEFT JOIN counted AS c USING (agency_id, metric_key, period_start, period_end)
LEFT JOIN delivered AS x USING (agency_id, metric_key, period_start, period_end)
JOIN window_ AS w ON w.state_code = b.state_code
WHERE b.frequency = 'MONTHLY' OR (b.period_start >= w.first_year AND b.period_end <= w.last_year_end)
