"""The demo state's native exports: four sectors, clean, the only source of their metrics, counted as written."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import date, datetime

import polars as pl
import pytest

from jc_pipeline.lib import ingest
from jc_pipeline.lib.demo import write_demo_state
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster

NOW = datetime(2026, 6, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("native_demo")
    manifest = write_demo_state(root / "data", agencies=28, years=2, seed=5)
    # Only the native agencies' folders (native exports and their other, bulk-upload files) are ingested: fast.
    subset = root / "subset"
    subset.mkdir()
    for name in ("agencies.csv", "metric_settings.csv", "mappings"):
        source = root / "data" / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, subset / name)
    for agency in {p.split("/")[1] for p in manifest.native if p.startswith("inbox/")}:
        shutil.copytree(root / "data" / "inbox" / agency, subset / "inbox" / agency)
    registry = load_registry()
    roster = load_roster(subset, registry)
    batch = ingest.parse_inbox(subset, {}, roster, registry, now=NOW)
    return manifest, batch


def test_four_sectors_deliver_native_exports_that_ingest_cleanly(demo):
    manifest, batch = demo
    exports = [p for p in manifest.native if p.startswith("inbox/")]
    assert {p.split("/")[2] for p in exports} == {"LAW_ENFORCEMENT", "JAILS", "COURTS_AND_PRETRIAL", "SUPERVISION"}
    files = batch.files.filter(pl.col("path").is_in(exports))
    assert files.height == len(exports)
    assert files["status"].to_list() == ["INGESTED"] * len(exports)
    assert (files["rows_rejected"] == 0).all() and (files["rows_total"] > 0).all()
    assert batch.findings.filter(pl.col("path").is_in(exports)).height == 0


def test_native_metrics_come_only_from_the_native_exports(demo):
    manifest, batch = demo
    exports = [p for p in manifest.native if p.startswith("inbox/")]
    native = batch.datapoints.filter(pl.col("path").is_in(exports))
    pairs = native.select("agency_id", "metric_key").unique()
    assert pairs.height >= 8
    bulk = batch.datapoints.filter(~pl.col("path").is_in(exports)).join(pairs, on=["agency_id", "metric_key"])
    assert bulk.height == 0
    assert set(native["frequency"]) == {"MONTHLY", "ANNUAL"}  # the jail's funding comes by fiscal year
    monthly = native.filter(pl.col("frequency") == "MONTHLY")
    assert monthly["period_start"].min() == date(2024, 1, 1) and monthly["period_start"].max() == date(2025, 12, 1)


def test_cad_calls_per_month_equal_a_hand_count_of_the_export(demo):
    manifest, batch = demo
    paths = [p for p in manifest.native if "/cad_calls_" in p]
    expected: Counter = Counter()
    for path in paths:
        with (manifest.data_dir / path).open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["Priority"] != "TEST":  # the mapping leaves test calls out
                    expected[date(int(row["Call Received"][:4]), int(row["Call Received"][5:7]), 1)] += 1
    totals = batch.datapoints.filter(pl.col("path").is_in(paths) & pl.col("dimension").is_null())
    assert dict(zip(totals["period_start"], totals["value"], strict=True)) == expected


def test_jail_funding_per_fiscal_year_equals_the_budget_exports_rows(demo):
    manifest, batch = demo
    (path,) = [p for p in manifest.native if p.endswith("/jail_budget.csv")]
    agency = path.split("/")[1]
    roster = load_roster(manifest.data_dir, load_registry())
    first_month = roster.effective(agency, "JAILS_FUNDING").starting_month
    expected: Counter = Counter()
    with (manifest.data_dir / path).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            end_year = int(row["Fiscal Year"])  # labelled by the year the fiscal year ends
            start = date(end_year - (first_month != 1), first_month, 1)
            expected[start] += int(row["Amount"].replace(",", ""))
    totals = batch.datapoints.filter((pl.col("path") == path) & pl.col("dimension").is_null())
    assert set(totals["frequency"]) == {"ANNUAL"} and len(expected) == 2
    assert dict(zip(totals["period_start"], totals["value"], strict=True)) == expected
    assert all(end.month == first_month for end in totals["period_end"])
