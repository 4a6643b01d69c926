"""The native-export benchmark at a small scale: it runs and reports, and the pipeline's counts of its export
equal an independent DuckDB computation on the same file (speed is the benchmark's to report, not asserted)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bench import bench_native
from jc_pipeline.lib import ingest
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster

pytestmark = pytest.mark.slow

ROWS = 20_000
FIRST = date(bench_native.FIRST_YEAR + 1, 1, 1)  # the mapping's period.from


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return bench_native.measure(ROWS, seed=5, repeats=1, cache=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def datapoints(measured):
    folder = Path(measured["data_dir"])
    registry = load_registry()
    batch = ingest.parse_inbox(folder, {}, load_roster(folder, registry), registry, now=bench_native.NOW)
    return batch.datapoints


@pytest.fixture(scope="module")
def con(measured):
    export = Path(measured["data_dir"]) / "inbox" / bench_native.AGENCY_ID / "JAILS" / \
        bench_native.EXPORT_NAME
    with duckdb.connect() as con:
        con.execute("""
            CREATE TABLE bookings AS
            SELECT CAST("Admission Date" AS TIMESTAMP)::DATE AS admitted, CAST("Release Date" AS TIMESTAMP)::DATE
                   AS released, "Admission Type" AS type, "Top Charge" AS charge
            FROM read_csv($path, header = true, all_varchar = true)""", {"path": str(export)})
        yield con


def test_the_benchmark_reports_floor_ingest_ratio_and_memory(measured):
    assert measured["records"] == ROWS and measured["rejected"] == 0 and measured["datapoints"] > 0
    assert measured["floor_seconds"] > 0 and measured["ingest_seconds"] > 0
    assert measured["ratio"] == pytest.approx(measured["ingest_seconds"] / measured["floor_seconds"])
    assert measured["peak_rss_mib"] >= measured["baseline_rss_mib"] > 0  # small exports may not raise the peak
    assert "ratio" in bench_native.report(measured) and f"{ROWS:,} bookings" in bench_native.report(measured)


def _pipeline(datapoints: pl.DataFrame, metric: str, dimension: str | None = None) -> dict:
    frame = datapoints.filter(pl.col("metric_key") == metric)
    frame = frame.filter(pl.col("dimension").is_null() if dimension is None else pl.col("dimension") == dimension)
    return {(r["period_start"], r["category"]): r["value"] for r in frame.iter_rows(named=True) if r["value"]}


def test_admissions_and_releases_equal_a_duckdb_count_of_the_same_file(datapoints, con):
    admissions = dict(con.execute("""
        SELECT date_trunc('month', admitted)::DATE, count(*) FROM bookings WHERE admitted >= $first GROUP BY 1""",
                                  {"first": FIRST}).fetchall())
    assert len(admissions) == 12 * (bench_native.LAST_YEAR - FIRST.year + 1)
    assert _pipeline(datapoints, "JAILS_TOTAL_ADMISSIONS") == {(m, None): n for m, n in admissions.items()}
    pretrial = dict(con.execute("""
        SELECT date_trunc('month', admitted)::DATE, count(*) FROM bookings WHERE admitted >= $first AND type = 'PRE'
        GROUP BY 1""", {"first": FIRST}).fetchall())
    assert _pipeline(datapoints, "JAILS_PRE_ADJUDICATION_ADMISSIONS") == {(m, None): n for m, n in pretrial.items()}
    releases = dict(con.execute("""
        SELECT date_trunc('month', released)::DATE, count(*) FROM bookings WHERE released >= $first GROUP BY 1""",
                                {"first": FIRST}).fetchall())
    assert _pipeline(datapoints, "JAILS_TOTAL_RELEASES") == {(m, None): n for m, n in releases.items()}
    codes = {code.casefold(): member for code, member in bench_native.OFFENSE_TYPES.items()}
    by_offense = con.execute("""
        SELECT date_trunc('month', admitted)::DATE, charge, count(*) FROM bookings WHERE admitted >= $first
        GROUP BY ALL""", {"first": FIRST}).fetchall()
    expected: dict = {}
    for month, charge, n in by_offense:
        member = codes.get((charge or "").casefold(), "UNKNOWN")
        expected[(month, member)] = expected.get((month, member), 0) + n
    assert _pipeline(datapoints, "JAILS_TOTAL_ADMISSIONS", "metric/offense/type") == expected


def test_average_daily_population_equals_a_duckdb_day_count_per_stay_and_month(datapoints, con):
    """Every stay expanded to its months (generate_series), its days in each summed and divided by the month's
    days: the textbook computation the pipeline's grouped one must equal."""
    query = """
        WITH bound AS (SELECT date_trunc('month', max(greatest(admitted, coalesce(released, admitted))))::DATE
                              + INTERVAL 1 MONTH AS as_of FROM bookings),
        stays AS (SELECT greatest(admitted, $first) AS lo, least(coalesce(released, as_of), as_of)::DATE AS hi,
                         type FROM bookings, bound),
        months AS (SELECT lo, hi, type, unnest(generate_series(date_trunc('month', lo),
                                                               date_trunc('month', hi - 1), INTERVAL 1 MONTH))::DATE AS m
                   FROM stays WHERE hi > lo)
        SELECT m, sum(least(hi, (m + INTERVAL 1 MONTH)::DATE) - greatest(lo, m))
                  / (((m + INTERVAL 1 MONTH)::DATE) - m) FROM months WHERE NOT $pretrial OR type = 'PRE' GROUP BY m"""
    total = dict(con.execute(query, {"first": FIRST, "pretrial": False}).fetchall())
    pretrial = dict(con.execute(query, {"first": FIRST, "pretrial": True}).fetchall())
    assert len(total) == 12 * (bench_native.LAST_YEAR - FIRST.year + 1)  # every month of the export's window
    pipeline = _pipeline(datapoints, "JAILS_TOTAL_POPULATION")
    assert pipeline.keys() == {(m, None) for m in total}
    assert pipeline == {(m, None): pytest.approx(v, rel=1e-12) for m, v in total.items()}
    assert _pipeline(datapoints, "JAILS_PRE_ADJUDICATION_POPULATION") == {
        (m, None): pytest.approx(v, rel=1e-12) for m, v in pretrial.items()}
