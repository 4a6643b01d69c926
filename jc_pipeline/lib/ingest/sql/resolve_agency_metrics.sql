-- Rebuild agency_metrics for the month starts in _resolve_months (by period_start) from every staged datapoint,
-- for the agencies in $agencies (VARCHAR[]; NULL: every agency). Both steps below are per agency, so rebuilding
-- some agencies gives their rows of a whole rebuild and leaves the others' rows as they are.
-- Inputs registered by resolve.py: _resolve_months(month DATE), _resolve_agencies(agency_id, state_code: the current
-- roster's; an agency it no longer lists keeps its last recorded state, ingest_agency_states),
-- _resolve_dimension_order(metric_key, dimension, sheet); $withdrawn (BIGINT[]: the upload_seqs withdrawn, or NULL);
-- $first and $end (DATE) bound the months, a plain range
-- DuckDB filters in the scan before the month list is joined (one month at 3,000 agencies: 0.16-0.23 -> 0.12 s).
-- 1. Latest upload wins per datapoint key: highest upload_seq, then the later sheet and row of that file; a version
--    withdrawn (ingest_withdrawals) loads nothing.
-- 2. A period with breakdown values but no total gets an inferred total: the sum of the breakdown whose sheet
--    comes first alphabetically (spec §5.5), flagged is_inferred_total with no lineage.
-- Rows are written sorted by frequency and period (resolve.py runs this once per calendar year, in order): DuckDB
-- keeps insertion order, so each row group then holds a few consecutive months and the month filters of the checks
-- and the roll-up skip the rest (zone maps). The frequency is sorted on as a boolean (ANNUAL, then MONTHLY: the only
-- two), which DuckDB sorts by fixed-width keys instead of comparing strings: a year's insert at 3,000 agencies
-- 0.83 -> 0.80 s (best of six each, alternated; docs/benchmarks-history.md). Not sorting at all saves ~0.3 s a
-- year, but a nightly run's months then read whole years: the bench's increment took ~0.7 s longer.
DELETE FROM agency_metrics
WHERE period_start >= $first AND period_start < $end
  AND CAST(date_trunc('month', period_start) AS DATE) IN (SELECT month FROM _resolve_months)
  AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])));

INSERT INTO agency_metrics (state_code, agency_id, sector, metric_key, frequency, period_start, period_end,
                            dimension, category, value, is_inferred_total, file_id, sheet, row_number)
WITH scoped AS (
    SELECT *, hash(agency_id, metric_key, period_start, period_end, dimension, category) AS key_hash
    FROM ingest_datapoints
    WHERE period_start >= $first AND period_start < $end
      AND CAST(date_trunc('month', period_start) AS DATE) IN (SELECT month FROM _resolve_months)
      AND ($agencies::VARCHAR[] IS NULL OR agency_id IN (SELECT unnest($agencies::VARCHAR[])))
      -- withdrawals.csv (withdrawals.py): $withdrawn, their upload_seqs, NULL when none. A list, not a subquery of
      -- ingest_withdrawals: that anti-join cost a full build's resolve 3.3 s (8.3 -> 11.7 s), even with no row.
      AND ($withdrawn::BIGINT[] IS NULL OR NOT list_contains($withdrawn::BIGINT[], upload_seq))
),
-- The keys sent more than once: only their rows are ordered. Nearly every key is sent once (97 of 851,554 staged
-- rows of a year at 3,000 agencies repeat one), and the window over every row was most of the resolve: a year
-- 1.22-1.25 -> 0.85-0.90 s (docs/benchmarks-history.md). Keys are routed by their hash (key_hash; NULL dimension and
-- category included); two keys sharing one only send both through the window, which orders each key on its own.
repeated AS MATERIALIZED (
    SELECT key_hash
    FROM scoped
    GROUP BY ALL
    HAVING count(*) > 1
),
-- MATERIALIZED: the winners are read three times below; without it they are computed three times.
staged AS MATERIALIZED (
    SELECT *
    FROM scoped
    WHERE key_hash NOT IN (SELECT key_hash FROM repeated)
    UNION ALL
    SELECT *
    FROM scoped
    WHERE key_hash IN (SELECT key_hash FROM repeated)
    QUALIFY row_number() OVER (
        PARTITION BY agency_id, metric_key, period_start, period_end, dimension, category
        ORDER BY upload_seq DESC, sheet_order DESC, row_number DESC) = 1
),
-- Only the breakdown rows of periods without a total are summed: the anti-join first, then the sum of the few left
-- (4 inferred totals in ten years at 3,000 agencies, where summing every breakdown made 1.5M groups): a year's
-- SELECT 0.49 -> 0.39 s of CPU (best of eight each, alternated).
breakdown_sums AS (
    SELECT s.agency_id, s.metric_key, s.period_start, s.period_end, s.dimension,
           any_value(s.sector) AS sector,
           any_value(s.frequency) AS frequency, sum(s.value) AS value, min(o.sheet) AS sheet,
           bool_or(o.counts_vacancies) AS counts_vacancies
    FROM staged AS s
    JOIN _resolve_dimension_order AS o ON o.metric_key = s.metric_key AND o.dimension = s.dimension
    WHERE NOT EXISTS (
        SELECT 1 FROM staged AS t
        WHERE t.dimension IS NULL AND t.agency_id = s.agency_id AND t.metric_key = s.metric_key
          AND t.period_start = s.period_start AND t.period_end = s.period_end)
    GROUP BY ALL
),
-- The staff breakdown with the vacant positions, when the period has one: the staff total counts them (spec §3.11),
-- where staff by sex or race count people only. Otherwise the sheet that sorts first (the reference: the sheet it
-- processed first; docs/rules.md).
inferred AS (
    SELECT *
    FROM breakdown_sums AS b
    QUALIFY row_number() OVER (
        PARTITION BY agency_id, metric_key, period_start, period_end ORDER BY counts_vacancies DESC, sheet, dimension
    ) = 1
),
-- The current roster's state; an agency it no longer lists keeps the state last recorded for it.
agency_states AS (
    SELECT agency_id, coalesce(a.state_code, k.state_code) AS state_code
    FROM _resolve_agencies AS a FULL JOIN ingest_agency_states AS k USING (agency_id)
)
SELECT a.state_code, s.agency_id, s.sector, s.metric_key, s.frequency, s.period_start,
       s.period_end, s.dimension, s.category, s.value, false, f.file_id, s.sheet, s.row_number
FROM staged AS s
LEFT JOIN agency_states AS a USING (agency_id)
LEFT JOIN source_files AS f ON f.upload_seq = s.upload_seq
UNION ALL
SELECT a.state_code, i.agency_id, i.sector, i.metric_key, i.frequency, i.period_start,
       i.period_end, NULL, NULL, i.value, true, NULL, NULL, NULL
FROM inferred AS i LEFT JOIN agency_states AS a USING (agency_id)
ORDER BY frequency = 'MONTHLY', period_start;
