-- The datapoint slice Great Expectations validates: agency_metrics rows whose period starts in $months, with the
-- roster and settings joined in and one pre-computed column per rule that needs context (so every expectation
-- is a plain single-column expectation on the pandas path).
-- Parameters: $months DATE[], $today DATE, $timezone VARCHAR (the state's), $agencies VARCHAR[] (NULL: every
-- agency), $row_ids BIGINT[] (NULL: every row; else only these rows, the failing ones, read back whole).
SELECT
    -- Identifies a row within this result (failing rows come back from GX as row_ids): the datapoint's rowid,
    -- unique because every join below is on its table's primary key. Numbering the rows instead (row_number()
    -- OVER (), a window over the whole slice) cost 0.4-0.6 s CPU a year at 3,000 agencies.
    m.rowid AS row_id,
    m.agency_id, m.metric_key, m.frequency, m.period_start, m.period_end, m.dimension, m.category, m.value,
    m.file_id, m.sheet, m.row_number,
    -- category_is_member: "metric|dimension" must be a breakdown of the metric and "dimension|category" a member
    -- of the dimension (both from the registry); NULL on totals.
    CASE WHEN m.dimension IS NOT NULL OR m.category IS NOT NULL
         THEN m.metric_key || '|' || coalesce(m.dimension, '') END AS breakdown_of_metric,
    CASE WHEN m.dimension IS NOT NULL OR m.category IS NOT NULL
         THEN coalesce(m.dimension, '') || '|' || coalesce(m.category, '') END AS category_of_dimension,
    -- value_is_numeric / value_not_negative: NaN and +-infinity become NULL here.
    CASE WHEN isfinite(m.value) THEN m.value END AS finite_value,
    -- no_duplicate_datapoints: NULL-free key parts (totals have no dimension/category).
    coalesce(m.dimension, '') AS dimension_key,
    coalesce(m.category, '') AS category_key,
    -- period_aligned
    CASE
        WHEN m.frequency NOT IN ('MONTHLY', 'ANNUAL')
            THEN 'unknown frequency ' || m.frequency
        WHEN day(m.period_start) <> 1 OR day(m.period_end) <> 1
            THEN 'it does not start and end on the first day of a month'
        WHEN m.frequency = 'MONTHLY' AND m.period_end <> m.period_start + INTERVAL 1 MONTH
            THEN 'a monthly value must cover exactly one calendar month'
        WHEN m.frequency = 'ANNUAL' AND m.period_end <> m.period_start + INTERVAL 12 MONTH
            THEN 'an annual value must cover exactly twelve months'
        WHEN m.frequency = 'ANNUAL' AND NOT list_contains(
                 CASE WHEN s.frequency = 'ANNUAL' THEN [s.starting_month]
                      -- metric set up as monthly but sent as a year: the agency's fiscal or the calendar year
                      ELSE [coalesce(a.fiscal_year_start_month, 1), 1] END,
                 month(m.period_start))
            THEN format('the year starts in {} but this agency''s year for the metric starts in {}',
                        strftime(m.period_start, '%B'),
                        strftime(make_date(2000, CASE WHEN s.frequency = 'ANNUAL' THEN s.starting_month
                                                      ELSE coalesce(a.fiscal_year_start_month, 1) END, 1), '%B'))
        ELSE 'ok'
    END AS period_problem,
    -- period_not_in_future: > 0 when the period had not ended on the day its file was sent, the state's date of
    -- the file's received_at (its modification time, UTC, or when it was read if that is earlier; today for a row
    -- without a file); period_end is exclusive. Judged on the file, not on today, the verdict never changes with
    -- the calendar: a month sent while it ran counts part of it, and stays out until a file sent after its end
    -- replaces it.
    f.sent_on,
    date_diff('day', coalesce(f.sent_on, $today::DATE), m.period_end) AS days_after_sent,
    -- agency_in_roster
    CASE
        WHEN a.agency_id IS NULL THEN 'agency ' || m.agency_id || ' is not on the state roster'
        WHEN d.metric_key IS NULL THEN m.metric_key || ' is not a Justice Counts metric'
        WHEN NOT (list_contains(a.sectors, d.sector) OR s.agency_id IS NOT NULL)
            THEN 'the roster does not list sector ' || d.sector || ' for this agency'
        ELSE 'ok'
    END AS roster_problem,
    -- counts_are_whole_numbers: distance to the nearest whole number, for count metrics only.
    CASE WHEN d.unit = 'count' AND isfinite(m.value) THEN abs(m.value - round(m.value)) ELSE 0 END
        AS count_fraction,
    -- metric_enabled: no settings row (not on the roster) is agency_in_roster's business, not this rule's.
    CASE
        -- A subsystem key (PAROLE_*, ...) of an agency reporting supervision combined is off for that reason.
        WHEN NOT s.enabled AND d.parent_sector = 'SUPERVISION' AND d.sector <> 'SUPERVISION'
             AND NOT s.disaggregated_by_supervision_subsystems
            THEN 'your settings report this metric for supervision as a whole (combined), not by subsystem'
        WHEN NOT s.enabled THEN 'the metric is disabled in your settings'
        WHEN d.sector = 'SUPERVISION' AND s.disaggregated_by_supervision_subsystems
            THEN 'your settings report this metric by supervision subsystem (parole, probation, ...), not combined'
        ELSE 'ok'
    END AS setting_problem,
    -- category_enabled: a breakdown category the agency turned off (agency_breakdown_settings; totals never match
    -- a row). Refers to setting_problem above (a DuckDB lateral alias): a metric that metric_enabled already
    -- flags is not flagged again, category by category.
    CASE
        WHEN setting_problem = 'ok' AND NOT b.enabled AND b.is_inherited
            THEN 'your settings turn this category off for the combined supervision metric, which applies to '
                 || 'each subsystem'
        WHEN setting_problem = 'ok' AND NOT b.enabled
            THEN 'your settings turn this category off'
        ELSE 'ok'
    END AS category_setting_problem
FROM agency_metrics AS m
LEFT JOIN agencies AS a ON a.agency_id = m.agency_id
LEFT JOIN metric_definitions AS d ON d.metric_key = m.metric_key
LEFT JOIN agency_metric_settings AS s ON s.agency_id = m.agency_id AND s.metric_key = m.metric_key
LEFT JOIN agency_breakdown_settings AS b ON b.agency_id = m.agency_id AND b.metric_key = m.metric_key
    AND b.dimension = m.dimension AND b.category = m.category
-- least(): a store from before 2026-12-07 kept a file dated ahead of the clock at its mtime (helper-51).
LEFT JOIN (SELECT file_id,
                  CAST(timezone($timezone, timezone('UTC', least(received_at, ingested_at))) AS DATE) AS sent_on
           FROM source_files) AS f ON f.file_id = m.file_id
WHERE list_contains($months, m.period_start)
  AND ($agencies::VARCHAR[] IS NULL OR m.agency_id IN (SELECT unnest($agencies::VARCHAR[])))
  AND ($row_ids::BIGINT[] IS NULL OR m.rowid IN (SELECT unnest($row_ids::BIGINT[])))
