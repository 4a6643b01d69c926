-- Partition replace, step 1: forget the agency values of every period starting in the requested months and the
-- derived calendar years of their years ($year_starts), of the agencies in $agencies (VARCHAR[]; NULL: every
-- agency). An agency's values depend on its own datapoints, verdicts and settings only (step 2).
DELETE FROM state_metric_contributions
WHERE state_row_in_build($months::DATE[], $year_starts::DATE[], is_derived_annual, period_start)
  AND ($agencies::VARCHAR[] IS NULL OR list_contains($agencies::VARCHAR[], agency_id));
