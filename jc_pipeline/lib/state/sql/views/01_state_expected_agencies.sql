-- Who is expected to report what, and at which cadence. The single definition of "expected" used by the
-- comparability gate (state_metric_inputs) and by agencies_expected / agencies_missing in state_metrics.
CREATE OR REPLACE VIEW state_expected_agencies AS
SELECT
    a.state_code,
    d.sector,
    s.metric_key,
    s.agency_id,
    a.agency_name,
    a.population,
    s.frequency,
    -- Monthly metrics have no year start; normalise to 1 so that joins on (frequency, starting_month) work.
    CASE WHEN s.frequency = 'MONTHLY' THEN 1 ELSE s.starting_month END AS starting_month,
    CASE
        WHEN d.parent_sector <> 'SUPERVISION' THEN NULL
        WHEN d.sector = 'SUPERVISION' THEN 'COMBINED'
        ELSE 'SUBSYSTEM'
    END AS supervision_reporting
FROM agency_metric_settings AS s
JOIN agencies AS a ON a.agency_id = s.agency_id
JOIN metric_definitions AS d ON d.metric_key = s.metric_key
WHERE s.enabled
  -- Supervision, per agency and base metric: the combined key only when not disaggregated by subsystem,
  -- the subsystem keys only when disaggregated - never both (spec §2.7, §7.3).
  AND CASE
        WHEN d.parent_sector <> 'SUPERVISION' THEN TRUE
        WHEN d.sector = 'SUPERVISION' THEN NOT s.disaggregated_by_supervision_subsystems
        ELSE s.disaggregated_by_supervision_subsystems
      END;

COMMENT ON VIEW state_expected_agencies IS 'One row per roster agency x metric it is expected to report (effective setting enabled; for supervision the combined key or the subsystem keys, never both), with the cadence that decides which state rows expect it.';
COMMENT ON COLUMN state_expected_agencies.state_code IS 'State of the agency.';
COMMENT ON COLUMN state_expected_agencies.sector IS 'System code of the metric.';
COMMENT ON COLUMN state_expected_agencies.metric_key IS 'Metric expected from the agency.';
COMMENT ON COLUMN state_expected_agencies.agency_id IS 'Expected agency.';
COMMENT ON COLUMN state_expected_agencies.agency_name IS 'Agency name from the roster.';
COMMENT ON COLUMN state_expected_agencies.population IS 'Resident population the agency serves.';
COMMENT ON COLUMN state_expected_agencies.frequency IS 'Effective frequency: MONTHLY agencies are expected in month rows and derived calendar-year rows, ANNUAL agencies in the annual rows starting in starting_month.';
COMMENT ON COLUMN state_expected_agencies.starting_month IS 'First month of the agency''s annual period (1 = calendar year, 7 = July fiscal year); always 1 for MONTHLY.';
COMMENT ON COLUMN state_expected_agencies.supervision_reporting IS 'Supervision metrics only: COMBINED (agency reports the SUPERVISION_* key) or SUBSYSTEM (it reports PAROLE_*/PROBATION_*/... keys instead); NULL for other sectors.';

-- The agencies expected for the derived calendar years of a metric (the cadence of derived rows: monthly
-- reporters), with the metric's measurement type and whether it is a level (its year averages the months): what
-- both build steps join a year's aggregates to.
CREATE OR REPLACE MACRO state_derived_year_agencies() AS TABLE
    SELECT e.*, d.measurement_type, d.is_level
    FROM state_expected_agencies AS e
    JOIN metric_definitions AS d ON d.metric_key = e.metric_key
    WHERE e.frequency = state_reporting_frequency('ANNUAL', TRUE)
      AND e.starting_month = state_reporting_starting_month('ANNUAL', TRUE, NULL::DATE);
COMMENT ON MACRO TABLE state_derived_year_agencies IS 'state_expected_agencies at the cadence of derived calendar-year rows (agencies reporting the metric monthly), with metric_definitions.measurement_type and is_level.';
