-- Partition replace, step 3: forget the state rows of every period starting in the requested months and the
-- derived calendar years of their years ($year_starts).
DELETE FROM state_metrics
WHERE state_row_in_build($months::DATE[], $year_starts::DATE[], is_derived_annual, period_start);
