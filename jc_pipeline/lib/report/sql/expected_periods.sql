-- Every period each agency is expected to report, with what became of it: one row per
-- (agency, metric, period) of state_expected_agencies' cadence inside the state's reporting window.
--
-- The window of a state runs from the first to the last period in state_metrics (what any of its agencies
-- reported) that has ended by $today (DATE, the state's), separately for months and for annual periods, so periods
-- nobody has reported yet, or that have not ended (which an agency may have sent too early: period_not_in_future),
-- are not listed. Annual periods start in the agency's starting month and must lie wholly inside the
-- annual window.
--
-- status: REPORTED (the agency's total is in the state sum: state_metric_contributions), FAILED_VALIDATION (it
-- delivered the period but an ERROR check excluded it), NOT_COUNTED (delivered, but not in the sum for another
-- reason, in `reason`), MISSING (nothing delivered).
--
-- $recent_months, $recent_years (INTEGER; NULL: every period): REPORTED periods are listed only when recent, that
-- is among the state's latest $recent_months months, or for annual periods starting on or after January 1 of the
-- year $recent_years + 1 years before the annual window ends; the other statuses are listed throughout. That is
-- what the readers need (lib/report/data.py: the periods not reported, and all statuses in the coverage grid's
-- latest columns only): a quarter of the rows at 3,000 agencies and ten years (1.26M -> 0.32M).
--
-- Unordered: its readers (lib/report/data.py, expected_periods) order what they keep of it, a small part.
WITH window_ AS (
    SELECT state_code,
           min(period_start) FILTER (WHERE frequency = 'MONTHLY') AS first_month,
           max(period_start) FILTER (WHERE frequency = 'MONTHLY') AS last_month,
           min(period_start) FILTER (WHERE frequency = 'ANNUAL' AND NOT is_derived_annual) AS first_year,
           max(period_end) FILTER (WHERE frequency = 'ANNUAL' AND NOT is_derived_annual) AS last_year_end
    FROM state_metrics
    WHERE period_end <= $today
    GROUP BY state_code
),
-- Where each state's recent periods begin, by frequency (no bound given: the first day there is).
bounds AS (
    SELECT *,
           coalesce(CAST(last_month - to_months($recent_months::INTEGER - 1) AS DATE), DATE '0001-01-01')
               AS monthly_from,
           coalesce(make_date(year(last_year_end) - $recent_years::INTEGER - 1, 1, 1), DATE '0001-01-01')
               AS annual_from
    FROM window_
),
periods AS (
    SELECT e.state_code, e.sector, d.parent_sector, e.metric_key, e.agency_id, e.agency_name, e.frequency,
           e.starting_month, CAST(p.start_ts AS DATE) AS period_start, w.first_year, w.last_year_end,
           CASE WHEN e.frequency = 'MONTHLY' THEN w.monthly_from ELSE w.annual_from END AS recent_from
    FROM state_expected_agencies AS e
    JOIN metric_definitions AS d ON d.metric_key = e.metric_key
    JOIN bounds AS w ON w.state_code = e.state_code,
    unnest(CASE
        -- generate_series over NULL bounds yields nothing: a state without monthly (annual) rows lists none.
        WHEN e.frequency = 'MONTHLY' THEN
            generate_series(CAST(w.first_month AS TIMESTAMP), CAST(w.last_month AS TIMESTAMP), INTERVAL 1 MONTH)
        ELSE generate_series(CAST(make_date(year(w.first_year) - 1, e.starting_month, 1) AS TIMESTAMP),
                             CAST(w.last_year_end AS TIMESTAMP), INTERVAL 12 MONTH)
    END) AS p(start_ts)
),
-- Annual periods wholly inside the annual window only, filtered before any join: the periods outside it are
-- never listed, and those not counted would otherwise all be looked up below.
bounded AS (
    SELECT * EXCLUDE (first_year, last_year_end)
    FROM (SELECT *,
                 CAST(period_start + CASE WHEN frequency = 'MONTHLY' THEN INTERVAL 1 MONTH ELSE INTERVAL 12 MONTH END
                      AS DATE) AS period_end
          FROM periods)
    WHERE frequency = 'MONTHLY' OR (period_start >= first_year AND period_end <= last_year_end)
),
-- Counted: the period's total is in the state sum. EXISTS is a mark join on the contributions (no DISTINCT of
-- them, no duplicates), evaluated once for every expected period.
judged AS MATERIALIZED (
    SELECT b.*,
           EXISTS (SELECT 1 FROM state_metric_contributions AS c
                   WHERE c.agency_id = b.agency_id AND c.metric_key = b.metric_key
                     AND c.period_start = b.period_start AND c.period_end = b.period_end
                     AND c.dimension IS NULL AND NOT c.is_derived_annual) AS counted
    FROM bounded AS b
),
-- The periods not counted that delivered something: the only ones whose status reads verdicts. Usually a few, if
-- any: their verdicts are judged on the slice of their start months alone (state_metric_inputs_of: the same
-- verdicts as the whole view's, for the datapoints it keeps), and an empty list reads no month (NULL would read
-- every month).
delivered_keys AS MATERIALIZED (
    SELECT DISTINCT agency_id, metric_key, period_start, period_end
    FROM agency_metrics
    SEMI JOIN (SELECT * FROM judged WHERE NOT counted) USING (agency_id, metric_key, period_start, period_end)
),
delivered AS (
    SELECT agency_id, metric_key, period_start, period_end,
           bool_or(is_excluded) AS failed,
           min(uncounted_reason) FILTER (WHERE NOT is_excluded AND NOT is_counted) AS reason
    FROM state_metric_inputs_of((SELECT coalesce(list(DISTINCT period_start), []) FROM delivered_keys))
    SEMI JOIN delivered_keys USING (agency_id, metric_key, period_start, period_end)
    GROUP BY ALL
),
-- The counted periods need no look-up: only the others are joined to what they delivered (a join of every
-- expected period built a hash table of all of them: 1.25M at 3,000 agencies, 0.57-0.61 -> 0.50 s).
statuses AS (
    SELECT b.*, 'REPORTED' AS status, NULL::VARCHAR AS reason
    FROM judged AS b
    WHERE b.counted AND b.period_start >= b.recent_from
    UNION ALL
    SELECT b.*,
           CASE
               WHEN x.failed THEN 'FAILED_VALIDATION'
               WHEN x.agency_id IS NOT NULL THEN 'NOT_COUNTED'
               ELSE 'MISSING'
           END,
           CASE WHEN NOT coalesce(x.failed, FALSE) THEN x.reason END
    FROM judged AS b
    LEFT JOIN delivered AS x USING (agency_id, metric_key, period_start, period_end)
    WHERE NOT b.counted
)
SELECT state_code, sector, parent_sector, metric_key, agency_id, agency_name, frequency, starting_month,
       period_start, period_end, state_period_kind(frequency, period_start) AS period_kind, status, reason
FROM statuses
