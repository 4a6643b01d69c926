-- The months a rule that reads back $reads_back periods (Rule.reads_back) judged with rows of $months as context:
-- period starts after one of $months by at most $reads_back periods of their series' frequency (months for
-- monthly series, years for the others), not themselves in $months, of the agencies in $agencies (NULL: every
-- agency). Sorted.
-- Parameters: $months DATE[], $reads_back INTEGER, $agencies VARCHAR[].
SELECT DISTINCT period_start
FROM (
    -- The range lets DuckDB skip the row groups of other years; the starts are few, so the list test runs on them.
    SELECT DISTINCT period_start, frequency = 'MONTHLY' AS monthly
    FROM agency_metrics
    WHERE period_start > list_min($months)
      AND period_start <= (list_max($months) + to_years($reads_back::INTEGER))::DATE
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
)
WHERE NOT list_contains($months, period_start)
  AND len(list_filter($months, lambda m: m < period_start AND period_start <= (
          CASE WHEN monthly THEN m + to_months($reads_back::INTEGER) ELSE m + to_years($reads_back::INTEGER) END
      )::DATE)) > 0
ORDER BY period_start
