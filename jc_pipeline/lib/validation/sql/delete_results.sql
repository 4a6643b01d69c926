-- The stored results that a validation of $months replaces: those of the rules that ran, rules of scope "months"
-- by the month their group starts, rules of scope "years" by its calendar year (Rule.scope), of the agencies in
-- $agencies (NULL: every agency).
-- Parameters: $month_rules VARCHAR[], $months DATE[], $year_rules VARCHAR[], $years INTEGER[], $agencies VARCHAR[].
DELETE FROM validation_results
WHERE ((list_contains($month_rules, check_name) AND list_contains($months, period_start))
       OR (list_contains($year_rules, check_name) AND list_contains($years, year(period_start))))
  AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
