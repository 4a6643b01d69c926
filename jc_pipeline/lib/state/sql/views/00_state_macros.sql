-- Which agencies a state row sums, by cadence: the one rule shared by the build and the views.
-- Month rows and derived calendar years sum MONTHLY reporters; annual rows sum ANNUAL reporters whose year
-- starts in the row's first month (so calendar and fiscal years never mix).
CREATE OR REPLACE MACRO state_reporting_frequency(frequency, is_derived_annual) AS
    CASE WHEN frequency = 'MONTHLY' OR is_derived_annual THEN 'MONTHLY' ELSE 'ANNUAL' END;
CREATE OR REPLACE MACRO state_reporting_starting_month(frequency, is_derived_annual, period_start) AS
    CASE WHEN frequency = 'MONTHLY' OR is_derived_annual THEN 1 ELSE month(period_start) END;
-- How a derived calendar year builds from an agency's 12 months is metric_definitions.is_level (written from the
-- registry's Metric.is_level, the one place that rule is stated); this macro of older stores said it again.
DROP MACRO IF EXISTS state_year_averages_months;
-- A sum of agency values that does not depend on the order of parallel aggregation and is exact to six decimals.
-- Summed at twelve decimals and rounded once: an agency's year of a level is the average of its twelve months, a
-- DOUBLE with more than six decimals, and rounding each agency's to six before summing made 27 come out 26.999999.
CREATE OR REPLACE MACRO state_exact_sum(value) AS round(sum(value::DECIMAL(38, 12)), 6)::DOUBLE;
-- The combined supervision key a key of a supervision sector belongs to: PAROLE_POPULATION -> SUPERVISION_POPULATION
-- (subsystem keys are the base key with another prefix; a SUPERVISION_* key is its own).
CREATE OR REPLACE MACRO state_supervision_base_key(metric_key, sector) AS
    'SUPERVISION_' || substr(metric_key, length(sector) + 2);
-- The kind of a reported period: a month, a calendar year, or an annual period starting in another month.
CREATE OR REPLACE MACRO state_period_kind(frequency, period_start) AS
    CASE
        WHEN frequency = 'MONTHLY' THEN 'CALENDAR_MONTH'
        WHEN month(period_start) = 1 THEN 'CALENDAR_YEAR'
        ELSE 'FISCAL_YEAR'
    END;
-- The slice a roll-up of `months` (DATE[]; NULL = everything) reads: periods starting in those months, plus every
-- period of a year whose January is among them (a derived calendar year needs all twelve months).
CREATE OR REPLACE MACRO state_period_in_slice(months, period_start) AS
    months IS NULL OR list_contains(months, period_start) OR list_contains(months, make_date(year(period_start), 1, 1));
-- The state rows (and contributions) a build of `months` replaces: the rows of periods starting in those months,
-- and the derived calendar years of their years (`year_starts`: January 1 of each), which any of their months
-- changes. The first condition is the same test in a form DuckDB prunes row groups with (zone maps).
CREATE OR REPLACE MACRO state_row_in_build(months, year_starts, is_derived_annual, period_start) AS
    list_contains(list_concat(months, year_starts), period_start)
    AND CASE WHEN is_derived_annual THEN list_contains(year_starts, period_start)
             ELSE list_contains(months, period_start) END;

COMMENT ON MACRO state_reporting_frequency IS 'Effective frequency (agency_metric_settings.frequency) of the agencies a state row sums: MONTHLY for month rows and derived calendar-year rows, else ANNUAL.';
COMMENT ON MACRO state_exact_sum IS 'Sum of agency values (an aggregate), exact to six decimals and the same whatever the order of parallel aggregation: summed as DECIMAL(38, 12), rounded to six decimals, returned as DOUBLE.';
COMMENT ON MACRO state_reporting_starting_month IS 'Effective starting_month of the agencies a state row sums: 1 for month rows and derived calendar years, else the month the annual period starts.';
COMMENT ON MACRO state_supervision_base_key IS 'The combined SUPERVISION_* key of a supervision metric key and its sector (metric_definitions.sector): PAROLE_POPULATION, PAROLE -> SUPERVISION_POPULATION.';
COMMENT ON MACRO state_period_kind IS 'period_kind of a datapoint''s period: CALENDAR_MONTH (MONTHLY), CALENDAR_YEAR (annual, starting in January) or FISCAL_YEAR (annual, starting in another month).';
COMMENT ON MACRO state_row_in_build IS 'True when a state_metrics or state_metric_contributions row belongs to a build of months (DATE[]): a period starting in one of them, or a derived calendar year starting on one of year_starts (January 1 of their years).';
COMMENT ON MACRO state_period_in_slice IS 'True when a period starting on period_start belongs to the roll-up slice of months (DATE[], NULL = all): it starts in one of them or in a year whose January is one of them.';
