-- Caseload = open cases / staff with caseload (prosecution, defense, supervision and its subsystems), from
-- sums and never averaged. Only agencies that reported BOTH for the period are summed, so an agency reporting
-- open cases without staff cannot inflate the ratio. Pairs come from metric_definitions.ratio_role/partner.
CREATE OR REPLACE VIEW state_caseloads AS
WITH pairs AS (
    SELECT
        n.state_code, n.sector,
        n.metric_key AS open_cases_metric_key,
        d.metric_key AS staff_metric_key,
        n.frequency, n.period_kind, n.is_derived_annual, n.period_start, n.period_end,
        n.dimension, n.category, n.agency_id,
        n.value AS open_cases,
        d.value AS staff_with_caseload
    FROM state_metric_contributions AS n
    JOIN metric_definitions AS md
      ON md.metric_key = n.metric_key AND lower(md.ratio_role) = 'numerator'
    JOIN state_metric_contributions AS d
      ON d.metric_key = md.ratio_partner
     AND d.state_code = n.state_code
     AND d.agency_id = n.agency_id
     AND d.is_derived_annual = n.is_derived_annual
     AND d.period_start = n.period_start
     AND d.period_end = n.period_end
     AND d.dimension IS NOT DISTINCT FROM n.dimension
     AND d.category IS NOT DISTINCT FROM n.category
),
sums AS (
    SELECT
        state_code, sector, open_cases_metric_key, staff_metric_key, frequency, period_kind, is_derived_annual,
        period_start, period_end, dimension, category,
        count(*) AS agencies_reporting_both,
        state_exact_sum(open_cases) AS open_cases,
        state_exact_sum(staff_with_caseload) AS staff_with_caseload
    FROM pairs
    GROUP BY ALL
)
SELECT
    s.state_code, s.sector, s.open_cases_metric_key, s.staff_metric_key, s.frequency, s.period_kind,
    s.is_derived_annual, s.period_start, s.period_end, num.period_label, s.dimension, s.category,
    s.agencies_reporting_both,
    s.open_cases,
    s.staff_with_caseload,
    s.open_cases / nullif(s.staff_with_caseload, 0) AS caseload,
    num.agencies_reporting AS open_cases_agencies_reporting,
    den.agencies_reporting AS staff_agencies_reporting,
    num.agencies_expected AS agencies_expected,
    s.agencies_reporting_both = num.agencies_expected AS is_complete
FROM sums AS s
LEFT JOIN state_metrics AS num
  ON num.state_code = s.state_code AND num.metric_key = s.open_cases_metric_key
 AND num.is_derived_annual = s.is_derived_annual
 AND num.period_start = s.period_start AND num.period_end = s.period_end
 AND num.dimension IS NOT DISTINCT FROM s.dimension AND num.category IS NOT DISTINCT FROM s.category
LEFT JOIN state_metrics AS den
  ON den.state_code = s.state_code AND den.metric_key = s.staff_metric_key
 AND den.is_derived_annual = s.is_derived_annual
 AND den.period_start = s.period_start AND den.period_end = s.period_end
 AND den.dimension IS NOT DISTINCT FROM s.dimension AND den.category IS NOT DISTINCT FROM s.category;

COMMENT ON VIEW state_caseloads IS 'Derived caseload ratio per state, sector, period and category: sum of open cases / sum of staff with caseload over the agencies that reported both (ratio of sums, never an average of agency ratios).';
COMMENT ON COLUMN state_caseloads.state_code IS 'State.';
COMMENT ON COLUMN state_caseloads.sector IS 'System code (PROSECUTION, DEFENSE, SUPERVISION or a supervision subsystem).';
COMMENT ON COLUMN state_caseloads.open_cases_metric_key IS 'Numerator metric (…_CASELOADS_PEOPLE, open cases).';
COMMENT ON COLUMN state_caseloads.staff_metric_key IS 'Denominator metric (…_CASELOADS_STAFF, staff with caseload).';
COMMENT ON COLUMN state_caseloads.frequency IS 'MONTHLY or ANNUAL length of the period.';
COMMENT ON COLUMN state_caseloads.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR.';
COMMENT ON COLUMN state_caseloads.is_derived_annual IS 'True for calendar years of monthly reporters (both metrics averaged over the 12 months per agency).';
COMMENT ON COLUMN state_caseloads.period_start IS 'First day of the period.';
COMMENT ON COLUMN state_caseloads.period_end IS 'Day after the period.';
COMMENT ON COLUMN state_caseloads.period_label IS 'Human label of the period.';
COMMENT ON COLUMN state_caseloads.dimension IS 'Breakdown dimension shared by both metrics (case severity); NULL on the total.';
COMMENT ON COLUMN state_caseloads.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_caseloads.agencies_reporting_both IS 'Agencies that reported both open cases and staff with caseload; the sums are over these agencies only.';
COMMENT ON COLUMN state_caseloads.open_cases IS 'Sum of open cases over those agencies.';
COMMENT ON COLUMN state_caseloads.staff_with_caseload IS 'Sum of staff with caseload (FTE) over those agencies.';
COMMENT ON COLUMN state_caseloads.caseload IS 'open_cases / staff_with_caseload (open cases per staff member with a caseload); NULL when staff is 0.';
COMMENT ON COLUMN state_caseloads.open_cases_agencies_reporting IS 'Agencies in the state open-cases row (some may lack staff and are not in the ratio).';
COMMENT ON COLUMN state_caseloads.staff_agencies_reporting IS 'Agencies in the state staff-with-caseload row.';
COMMENT ON COLUMN state_caseloads.agencies_expected IS 'Agencies expected to report open cases for the period.';
COMMENT ON COLUMN state_caseloads.is_complete IS 'Every expected agency is in the ratio.';
