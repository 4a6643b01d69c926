-- Every datapoint of agency_metrics with the verdict of the roll-up: counted in state_metrics, or why not.
-- build_state_metrics reads the comparable rows through state_comparable_of, the same join without the explanations.
-- state_datapoints_of(months): the agency_metrics rows whose period starts in one of `months` (DATE[]) or in a year
-- whose January is one of them (the context of derived calendar years); NULL means all of them. Each carries
-- its exclusion (failed validation, or a value that cannot be summed); state_metric_inputs_of(months) adds the
-- roster, the settings and the verdict. The slice is taken on agency_metrics and validation_results BEFORE any
-- join, so a roll-up of a few months costs those months, not the whole history.
CREATE OR REPLACE MACRO state_datapoints_of(months) AS TABLE
WITH excluded AS (
    -- EXCLUSION CONTRACT: an ERROR that failed excludes that agency x metric x period, all of its datapoints
    -- (total and breakdowns). The period is matched on period_end too when the error names one, so an error on
    -- a January month does not also exclude the calendar year starting that day. NULL keys match nothing.
    SELECT DISTINCT agency_id, metric_key, period_start, period_end
    FROM validation_results
    WHERE severity = 'ERROR' AND NOT passed AND state_period_in_slice(months, period_start)
),
checked AS (
    SELECT
        m.*,
        state_reporting_starting_month(m.frequency, FALSE, m.period_start) AS period_starting_month,
        -- A semi-join, not a join: several error rows on one period must not duplicate its datapoints.
        EXISTS (
            SELECT 1 FROM excluded AS x
            WHERE x.agency_id = m.agency_id AND x.metric_key = m.metric_key AND x.period_start = m.period_start
              AND (x.period_end IS NULL OR x.period_end = m.period_end)
        ) AS failed_validation
    FROM agency_metrics AS m
    WHERE state_period_in_slice(months, m.period_start)
)
SELECT
    *,
    -- A non-finite value (NaN, infinity) cannot be summed; treated like a validation error so that one bad
    -- cell cannot poison (or abort) the state roll-up.
    failed_validation OR NOT isfinite(value) AS is_excluded
FROM checked;

-- The comparable datapoints of the slice: those whose agency is expected for the metric at the datapoint's cadence,
-- with what the roll-up sums them by. The build reads these; state_metric_inputs_of judges every datapoint by the
-- same join (is_comparable) and adds the explanation of the others. Only inner joins with the small tables: the
-- explanation's outer joins cost the build more than the scan itself, because DuckDB, estimating the filtered
-- slice far too small, builds some of their hash tables on the datapoints.
CREATE OR REPLACE MACRO state_comparable_of(months) AS TABLE
SELECT
    e.state_code,
    e.sector,
    m.agency_id,
    m.metric_key,
    d.measurement_type,
    m.frequency,
    state_period_kind(m.frequency, m.period_start) AS period_kind,
    m.period_start,
    m.period_end,
    m.dimension,
    m.category,
    m.value,
    e.population,
    m.is_excluded
FROM state_datapoints_of(months) AS m
JOIN state_expected_agencies AS e
    ON e.agency_id = m.agency_id
   AND e.metric_key = m.metric_key
   AND e.frequency = m.frequency
   AND e.starting_month = m.period_starting_month
JOIN metric_definitions AS d ON d.metric_key = m.metric_key;

CREATE OR REPLACE MACRO state_metric_inputs_of(months) AS TABLE
SELECT
    a.state_code,
    d.sector,
    m.agency_id,
    m.metric_key,
    d.measurement_type,
    m.frequency,
    state_period_kind(m.frequency, m.period_start) AS period_kind,
    m.period_start,
    m.period_end,
    m.dimension,
    m.category,
    m.value,
    a.population,
    e.agency_id IS NOT NULL AS is_comparable,
    m.is_excluded,
    e.agency_id IS NOT NULL AND NOT m.is_excluded AS is_counted,
    -- Explanations only; the verdict is the join on state_expected_agencies below (that of state_comparable_of).
    CASE
        WHEN e.agency_id IS NOT NULL THEN CASE
            WHEN m.failed_validation THEN 'VALIDATION_ERROR'
            WHEN NOT isfinite(m.value) THEN 'VALUE_NOT_FINITE'
        END
        WHEN a.agency_id IS NULL THEN 'AGENCY_NOT_IN_ROSTER'
        WHEN d.metric_key IS NULL THEN 'UNKNOWN_METRIC'
        WHEN s.agency_id IS NULL THEN 'NO_METRIC_SETTING'
        WHEN NOT s.enabled THEN 'METRIC_DISABLED'
        -- The supervision structure explains only a key the agency's setting rules out (state_expected_agencies);
        -- a key of the right structure sent at another cadence falls through to the cadence reasons.
        WHEN d.parent_sector = 'SUPERVISION' AND d.sector = 'SUPERVISION'
             AND s.disaggregated_by_supervision_subsystems THEN 'SUPERVISION_REPORTED_BY_SUBSYSTEM'
        WHEN d.parent_sector = 'SUPERVISION' AND d.sector <> 'SUPERVISION'
             AND NOT s.disaggregated_by_supervision_subsystems THEN 'SUPERVISION_REPORTED_COMBINED'
        WHEN m.frequency <> s.frequency THEN 'FREQUENCY_MISMATCH'
        WHEN m.period_starting_month <> s.starting_month THEN 'YEAR_START_MISMATCH'
        ELSE 'NOT_EXPECTED'
    END AS uncounted_reason
FROM state_datapoints_of(months) AS m
LEFT JOIN agencies AS a ON a.agency_id = m.agency_id
LEFT JOIN metric_definitions AS d ON d.metric_key = m.metric_key
LEFT JOIN agency_metric_settings AS s ON s.agency_id = m.agency_id AND s.metric_key = m.metric_key
-- The join of state_comparable_of, kept outer.
LEFT JOIN state_expected_agencies AS e
    ON e.agency_id = m.agency_id
   AND e.metric_key = m.metric_key
   AND e.frequency = m.frequency
   AND e.starting_month = m.period_starting_month;

CREATE OR REPLACE VIEW state_metric_inputs AS SELECT * FROM state_metric_inputs_of(NULL::DATE[]);

COMMENT ON MACRO TABLE state_datapoints_of IS 'The agency_metrics rows whose period starts in one of months (DATE[]) or in a year whose January is one of them (NULL: all), with period_starting_month, failed_validation (a failed ERROR names their agency, metric and period) and is_excluded (failed, or a value that is not finite).';
COMMENT ON MACRO TABLE state_comparable_of IS 'The comparable datapoints of state_datapoints_of(months) (their agency is expected for the metric at their frequency and year start) with state_code, sector, measurement_type, period_kind, population and is_excluded: the rows of state_metric_inputs_of(months) that are is_comparable, without the explanations.';
COMMENT ON MACRO TABLE state_metric_inputs_of IS 'state_metric_inputs restricted to the datapoints whose period starts in one of months (DATE[]) or in a year whose January is one of them; NULL: all.';
COMMENT ON VIEW state_metric_inputs IS 'Every agency_metrics datapoint with the state roll-up verdict: is_counted (summed into state_metrics) or uncounted_reason. Live view over the current agency_metrics and settings; state_metrics reflects them as of its last build.';
COMMENT ON COLUMN state_metric_inputs.state_code IS 'State of the agency from the roster (NULL when the agency is not in the roster).';
COMMENT ON COLUMN state_metric_inputs.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_metric_inputs.agency_id IS 'Agency of the datapoint.';
COMMENT ON COLUMN state_metric_inputs.metric_key IS 'Metric of the datapoint.';
COMMENT ON COLUMN state_metric_inputs.measurement_type IS 'DELTA or INSTANT.';
COMMENT ON COLUMN state_metric_inputs.frequency IS 'MONTHLY or ANNUAL period of the datapoint.';
COMMENT ON COLUMN state_metric_inputs.period_kind IS 'CALENDAR_MONTH, CALENDAR_YEAR or FISCAL_YEAR.';
COMMENT ON COLUMN state_metric_inputs.period_start IS 'First day of the period (inclusive).';
COMMENT ON COLUMN state_metric_inputs.period_end IS 'Day after the period (exclusive).';
COMMENT ON COLUMN state_metric_inputs.dimension IS 'Breakdown dimension; NULL on the total.';
COMMENT ON COLUMN state_metric_inputs.category IS 'Breakdown member NAME; NULL on the total.';
COMMENT ON COLUMN state_metric_inputs.value IS 'Datapoint value.';
COMMENT ON COLUMN state_metric_inputs.population IS 'Population the agency serves.';
COMMENT ON COLUMN state_metric_inputs.is_comparable IS 'The agency is expected for this metric at this cadence (enabled; frequency and year start match; supervision combined-or-subsystem rule). Only comparable datapoints are summed.';
COMMENT ON COLUMN state_metric_inputs.is_excluded IS 'A failed validation ERROR exists for this agency x metric x period_start (or the value is NaN/infinite).';
COMMENT ON COLUMN state_metric_inputs.is_counted IS 'is_comparable and not is_excluded: the datapoint is summed into state_metrics.';
COMMENT ON COLUMN state_metric_inputs.uncounted_reason IS 'NULL when counted, else VALIDATION_ERROR, VALUE_NOT_FINITE, AGENCY_NOT_IN_ROSTER, UNKNOWN_METRIC, NO_METRIC_SETTING, METRIC_DISABLED, SUPERVISION_REPORTED_BY_SUBSYSTEM (combined key of a disaggregated agency), SUPERVISION_REPORTED_COMBINED (subsystem key of an agency reporting combined), FREQUENCY_MISMATCH (e.g. monthly data from an annual reporter), YEAR_START_MISMATCH (annual data not starting in the agency''s year-start month) or NOT_EXPECTED.';
