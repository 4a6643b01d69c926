-- The condition on validation_results rows (stored, or incoming with the same columns) that a validation of $months
-- owns: those of the rules that ran, rules of scope "months" by the month their group starts, rules of scope "years"
-- by its calendar year (Rule.scope), of the agencies in $agencies (NULL: every agency). run.py deletes the stored
-- rows it holds and inserts the incoming ones.
-- Parameters: $month_rules VARCHAR[], $months DATE[], $year_rules VARCHAR[], $years INTEGER[], $agencies VARCHAR[].
((list_contains($month_rules, check_name) AND list_contains($months, period_start))
 OR (list_contains($year_rules, check_name) AND list_contains($years, year(period_start))))
AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
