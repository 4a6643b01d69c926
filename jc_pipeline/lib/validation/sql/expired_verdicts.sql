-- Stored failures the calendar has since overturned: a period that had not ended when it was checked and has ended
-- by $today (period_end is exclusive); $rules are the rules with Rule.expires (period_not_in_future). No upload
-- changes them, so run.expired_verdicts hands their agency and month to the nightly roll-up to check again.
-- Parameters: $rules VARCHAR[], $today DATE, $months DATE[] (NULL: every month).
SELECT DISTINCT agency_id, CAST(date_trunc('month', period_start) AS DATE) AS month
FROM validation_results
WHERE list_contains($rules, check_name) AND NOT passed AND agency_id IS NOT NULL
  AND period_end <= $today::DATE
  AND ($months::DATE[] IS NULL OR list_contains($months, CAST(date_trunc('month', period_start) AS DATE)))
ORDER BY ALL
