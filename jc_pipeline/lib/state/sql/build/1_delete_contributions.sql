-- Partition replace, step 1: forget the agency values of every period starting in the requested months and the
-- derived calendar years of their years ($year_starts).
DELETE FROM state_metric_contributions
WHERE state_row_in_build($months::DATE[], $year_starts::DATE[], is_derived_annual, period_start);
