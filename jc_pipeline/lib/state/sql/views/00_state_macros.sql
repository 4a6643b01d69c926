-- Which agencies a state row sums, by cadence: the one rule shared by the build and the views.
-- Month rows and derived calendar years sum MONTHLY reporters; annual rows sum ANNUAL reporters whose year
-- starts in the row's first month (so calendar and fiscal years never mix).
CREATE OR REPLACE MACRO state_reporting_frequency(frequency, is_derived_annual) AS
    CASE WHEN frequency = 'MONTHLY' OR is_derived_annual THEN 'MONTHLY' ELSE 'ANNUAL' END;
CREATE OR REPLACE MACRO state_reporting_starting_month(frequency, is_derived_annual, period_start) AS
    CASE WHEN frequency = 'MONTHLY' OR is_derived_annual THEN 1 ELSE month(period_start) END;

COMMENT ON MACRO state_reporting_frequency IS 'Effective frequency (agency_metric_settings.frequency) of the agencies a state row sums: MONTHLY for month rows and derived calendar-year rows, else ANNUAL.';
COMMENT ON MACRO state_reporting_starting_month IS 'Effective starting_month of the agencies a state row sums: 1 for month rows and derived calendar years, else the month the annual period starts.';
