-- Partition replace, step 1: forget the agency values of every period starting in the requested months.
-- Derived calendar-year values start on January 1, so they go when January is requested.
DELETE FROM state_metric_contributions WHERE list_contains($months, period_start);
