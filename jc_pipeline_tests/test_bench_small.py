"""The benchmark at a small scale, so it never breaks (its numbers are reported by `make bench`, not asserted)."""

import pytest

from bench import run as bench

pytestmark = pytest.mark.slow


def test_small_benchmark_measures_floor_pipeline_and_ratios(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "CACHE", tmp_path / "cache")
    results = bench.measure(agencies=20, years=1, seed=3)
    assert results["csv files"] > 0 and results["workbooks"] > 0
    assert results["floor total"] > 0
    assert results["pipeline whole run"] > results["pipeline ingest_job"] > 0
    assert results["whole run / floor"] > 1  # the pipeline does more than read the bytes
    assert set(bench.TARGETS) <= set(results)
