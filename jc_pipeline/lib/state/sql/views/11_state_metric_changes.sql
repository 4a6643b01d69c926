-- Year-over-year change computed only over the agencies present in both periods (spec §7.2, DESIGN §5), so
-- that changing coverage does not masquerade as a trend.
CREATE OR REPLACE VIEW state_metric_changes AS
WITH pairs AS (
    SELECT
        cur.state_code, cur.sector, cur.metric_key, cur.measurement_type, cur.frequency, cur.period_kind,
        cur.is_derived_annual, cur.period_start, cur.period_end,
        prev.period_start AS previous_period_start,
        prev.period_end AS previous_period_end,
        cur.dimension, cur.category, cur.agency_id,
        cur.value AS current_value,
        prev.value AS previous_value
    FROM state_metric_contributions AS cur
    JOIN state_metric_contributions AS prev
      ON prev.state_code = cur.state_code
     AND prev.metric_key = cur.metric_key
     AND prev.agency_id = cur.agency_id
     AND prev.is_derived_annual = cur.is_derived_annual
     AND prev.period_start = CAST(cur.period_start - INTERVAL 12 MONTH AS DATE)
     AND prev.period_end = CAST(cur.period_end - INTERVAL 12 MONTH AS DATE)
     AND prev.dimension IS NOT DISTINCT FROM cur.dimension
     AND prev.category IS NOT DISTINCT FROM cur.category
),
compared AS (
    SELECT
        state_code, sector, metric_key, measurement_type, frequency, period_kind, is_derived_annual,
        period_start, period_end, previous_period_start, previous_period_end, dimension, category,
        count(*) AS agencies_compared,
        list(agency_id ORDER BY agency_id) AS agencies_compared_ids,
        state_exact_sum(previous_value) AS previous_value,
        state_exact_sum(current_value) AS current_value
    FROM pairs
    GROUP BY ALL
)
SELECT
    c.state_code, c.sector, c.metric_key, c.measurement_type, c.frequency, c.period_kind, c.is_derived_annual,
    c.period_start, c.period_end, cur.period_label,
    c.previous_period_start, c.previous_period_end, prev.period_label AS previous_period_label,
    c.dimension, c.category,
    c.agencies_compared,
    c.agencies_compared_ids,
    c.previous_value,
    c.current_value,
    c.current_value - c.previous_value AS value_change,
    100.0 * (c.current_value - c.previous_value) / nullif(c.previous_value, 0) AS pct_change,
    cur.agencies_reporting AS agencies_reporting_current,
    prev.agencies_reporting AS agencies_reporting_previous,
    cur.value AS state_value_current,
    prev.value AS state_value_previous
FROM compared AS c
LEFT JOIN state_metrics AS cur
  ON cur.state_code = c.state_code AND cur.metric_key = c.metric_key AND cur.is_derived_annual = c.is_derived_annual
 AND cur.period_start = c.period_start AND cur.period_end = c.period_end
 AND cur.dimension IS NOT DISTINCT FROM c.dimension AND cur.category IS NOT DISTINCT FROM c.category
LEFT JOIN state_metrics AS prev
  ON prev.state_code = c.state_code AND prev.metric_key = c.metric_key AND prev.is_derived_annual = c.is_derived_annual
 AND prev.period_start = c.previous_period_start AND prev.period_end = c.previous_period_end
 AND prev.dimension IS NOT DISTINCT FROM c.dimension AND prev.category IS NOT DISTINCT FROM c.category;

COMMENT ON VIEW state_metric_changes IS 'Change of every state_metrics row from the same period a year earlier, summed only over the agencies counted in both periods (agencies_compared). Compare value_change, not state_value_current - state_value_previous, whose agency sets may differ.';
COMMENT ON COLUMN state_metric_changes.state_code IS 'State.';
COMMENT ON COLUMN state_metric_changes.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_metric_changes.metric_key IS 'Metric.';
COMMENT ON COLUMN state_metric_changes.measurement_type IS 'DELTA or INSTANT.';
COMMENT ON COLUMN state_metric_changes.frequency IS 'MONTHLY or ANNUAL length of both periods.';
COMMENT ON COLUMN state_metric_changes.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR (the same in both periods).';
COMMENT ON COLUMN state_metric_changes.is_derived_annual IS 'True when both years are calendar-year roll-ups of monthly reporters.';
COMMENT ON COLUMN state_metric_changes.period_start IS 'First day of the current period.';
COMMENT ON COLUMN state_metric_changes.period_end IS 'Day after the current period.';
COMMENT ON COLUMN state_metric_changes.period_label IS 'Label of the current period.';
COMMENT ON COLUMN state_metric_changes.previous_period_start IS 'First day of the period a year earlier.';
COMMENT ON COLUMN state_metric_changes.previous_period_end IS 'Day after the period a year earlier.';
COMMENT ON COLUMN state_metric_changes.previous_period_label IS 'Label of the period a year earlier.';
COMMENT ON COLUMN state_metric_changes.dimension IS 'Breakdown dimension; NULL on the total.';
COMMENT ON COLUMN state_metric_changes.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_metric_changes.agencies_compared IS 'Agencies counted in both periods; the sums below are over these agencies only.';
COMMENT ON COLUMN state_metric_changes.agencies_compared_ids IS 'Their agency ids, sorted.';
COMMENT ON COLUMN state_metric_changes.previous_value IS 'Sum over the compared agencies, a year earlier.';
COMMENT ON COLUMN state_metric_changes.current_value IS 'Sum over the compared agencies, current period.';
COMMENT ON COLUMN state_metric_changes.value_change IS 'current_value - previous_value.';
COMMENT ON COLUMN state_metric_changes.pct_change IS '100 * value_change / previous_value; NULL when previous_value is 0.';
COMMENT ON COLUMN state_metric_changes.agencies_reporting_current IS 'All agencies in the current state row (context: compared may be fewer).';
COMMENT ON COLUMN state_metric_changes.agencies_reporting_previous IS 'All agencies in the state row a year earlier.';
COMMENT ON COLUMN state_metric_changes.state_value_current IS 'Full state value of the current period (all its reporting agencies).';
COMMENT ON COLUMN state_metric_changes.state_value_previous IS 'Full state value a year earlier (all its reporting agencies).';
