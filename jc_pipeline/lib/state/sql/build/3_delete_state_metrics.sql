-- Partition replace, step 3: forget the state rows of every period starting in the requested months.
DELETE FROM state_metrics WHERE list_contains($months, period_start);
