"""A large state for the benchmark: seeded, written once and cached, plus the nightly increment on top of it.

The state is the demo state (:func:`jc_pipeline.lib.demo.write_demo_state`: every bulk-upload layout, formats,
superagencies, subsystems, fiscal years, quirks, a few native exports) scaled to ``agencies`` and ``years``, topped
up with record-level jail booking exports (:func:`bench.bench_native.write_booking_export`) until the delivered
data rows reach ``rows``. The nightly increment is what a state receives on an ordinary night: one new month from
every agency that still reports, and five late corrections of old months. A cached state records the digest of
the code that wrote it (the demo generator, the registry and the library modules it reads them through, this module
and the booking exports); a change to that code writes the state again, so the benchmark never measures files the
generator no longer writes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import fastexcel

import jc_pipeline.lib.csv_text
import jc_pipeline.lib.demo
import jc_pipeline.lib.export
import jc_pipeline.lib.periods
import jc_pipeline.lib.registry
import jc_pipeline.lib.roster
import jc_pipeline.registry
from bench.bench_native import write_booking_export
from jc_pipeline.lib.demo import write_demo_state
from jc_pipeline.lib.demo.agencies import build_state
from jc_pipeline.lib.demo.deliveries import Planner
from jc_pipeline.lib.demo.generate import LAST_YEAR
from jc_pipeline.lib.demo.values import observations
from jc_pipeline.lib.demo.writers import write_delivery
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import load_roster

CACHE = Path(__file__).parent / "cache"
#: The month the increment delivers: the first after the generated history.
NEW_MONTH = date(LAST_YEAR + 1, 1, 1)
LATE_CORRECTIONS = 5
_DONE = "bench_state.json"  # written last: a state without it was interrupted and is written again


@dataclass(frozen=True)
class StateSize:
    """What was generated: files by kind and data rows (bulk-upload rows below headers + native records)."""

    csv_files: int
    workbooks: int
    bulk_rows: int
    native_rows: int
    booking_exports: int

    @property
    def rows(self) -> int:
        return self.bulk_rows + self.native_rows


def large_state(agencies: int, years: int, rows: int, seed: int) -> tuple[Path, StateSize]:
    """The cached state for these parameters, written on first use or when the code that writes it changed
    (minutes at the default 3,000 x 10 years)."""
    root = CACHE / f"state_a{agencies}_y{years}_r{rows}_s{seed}"
    done = root / _DONE
    generator = generator_digest()
    recorded = json.loads(done.read_text(encoding="utf-8")) if done.exists() else {}
    if recorded.pop("generator", None) != generator:
        shutil.rmtree(root, ignore_errors=True)
        recorded = _write(root, agencies, years, rows, seed).__dict__
        done.write_text(json.dumps({**recorded, "generator": generator}), encoding="utf-8")
    return root, StateSize(**recorded)


def generator_digest() -> str:
    """SHA-256 of the sources that decide the state's files: the demo generator, the metric registry, the library
    modules the generator reads them through (periods, registry, roster and its CSV decoding, the workbook writer),
    this module and the booking exports' writer."""
    folders = (Path(jc_pipeline.lib.demo.__file__).parent, Path(jc_pipeline.registry.__file__).parent)
    sources = sorted(p for folder in folders for p in folder.iterdir() if p.suffix in {".py", ".yaml"})
    modules = (jc_pipeline.lib.export, jc_pipeline.lib.periods, jc_pipeline.lib.registry, jc_pipeline.lib.roster,
               jc_pipeline.lib.csv_text)
    digest = hashlib.sha256()
    for path in [*sources, *(Path(m.__file__) for m in modules), Path(__file__),
                 Path(__file__).with_name("bench_native.py")]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _write(root: Path, agencies: int, years: int, rows: int, seed: int) -> StateSize:
    manifest = write_demo_state(root, agencies=agencies, years=years, seed=seed)
    bulk_rows = sum(record.data_rows for record in manifest.files)
    # The manifest's native list holds the mappings too: the exports are the inbox's files.
    native_rows = sum(_records(root / path) for path in map(str, manifest.native) if path.startswith("inbox/"))
    return top_up(root, bulk_rows, native_rows, rows, seed)


def top_up(root: Path, bulk_rows: int, native_rows: int, rows: int, seed: int) -> StateSize:
    """Add booking exports until the state holds ``rows`` data rows; what the state then holds."""
    wanted = max(0, rows - bulk_rows - native_rows)
    if not wanted:
        print(f"bench: the demo's own deliveries hold {bulk_rows + native_rows:,} data rows, more than the {rows:,} "
              f"asked for; no booking export is added", file=sys.stderr)
    # Jails without a mapping of their own get the booking exports: about a million records each, like the
    # jail management systems of large counties.
    mapped = {path.stem for path in (root / "mappings").glob("*.yaml")}
    jails = [a for a in _roster_jails(root) if a not in mapped][: max(1, min(8, wanted // 1_000_000))]
    exports = 0
    if wanted:
        for index, agency_id in enumerate(jails):
            share = wanted // len(jails) + (1 if index < wanted % len(jails) else 0)
            write_booking_export(root, agency_id, share, seed + index)
            exports += 1
        native_rows += wanted
    files = [p for p in (root / "inbox").rglob("*") if p.is_file()]
    return StateSize(
        csv_files=sum(p.suffix == ".csv" for p in files),
        workbooks=sum(p.suffix in (".xlsx", ".xls") for p in files),
        bulk_rows=bulk_rows,
        native_rows=native_rows,
        booking_exports=exports,
    )


def _records(path: Path) -> int:
    """The records of a native export: a CSV's lines below its header, a workbook's rows below each sheet's."""
    if path.suffix.lower() != ".csv":
        reader = fastexcel.read_excel(str(path))
        return sum(reader.load_sheet(name, dtypes="string", eager=True).num_rows for name in reader.sheet_names)
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _roster_jails(root: Path) -> list[str]:
    with (root / "agencies.csv").open(newline="", encoding="utf-8") as handle:
        return sorted(row["agency_id"] for row in csv.DictReader(handle) if "JAILS" in row["sectors"].split(";"))


def write_nightly_increment(data_dir: Path, agencies: int, years: int, seed: int) -> list[Path]:
    """One new month (:data:`NEW_MONTH`) from every agency still reporting, as one single-page CSV per uploader
    and sector, and :data:`LATE_CORRECTIONS` corrections of old months. Returns the files written."""
    rng = random.Random(seed)
    history = tuple(range(LAST_YEAR - years + 1, LAST_YEAR + 1))
    state = build_state(rng, agencies, history)  # the same agencies write_demo_state drew for this seed
    registry = load_registry()
    roster = load_roster(data_dir, registry)
    planner = Planner(state, set())
    groups: dict[tuple[str, str], list] = {}
    for observation in observations(random.Random(seed + 1), roster, registry, (NEW_MONTH.year,)):
        if observation.month != NEW_MONTH.month or observation.year != NEW_MONTH.year:
            continue  # annual periods and the rest of the year are not due yet
        uploader = planner.uploader(observation.agency_id)
        if uploader.last_month is None:
            groups.setdefault((uploader.agency_id, observation.metric.parent_sector), []).append(observation)
    written = []
    for (uploader_id, sector), group in sorted(groups.items(), key=lambda item: item[0]):
        path = f"inbox/{uploader_id}/{sector}/bulk_upload_{NEW_MONTH:%Y_%m}.csv"
        delivery = planner.single_page(planner.agencies[uploader_id], sector, path, group, "csv")
        write_delivery(data_dir, delivery)
        written.append(data_dir / path)
    return written + _late_corrections(data_dir, random.Random(seed + 2))


def _late_corrections(data_dir: Path, rng: random.Random) -> list[Path]:
    """:data:`LATE_CORRECTIONS` old single-page CSV uploads re-sent with one total corrected by one (the row alone,
    as agencies do); a small state with fewer such uploads re-sends some of them again, another row each time."""
    candidates = sorted(p for p in (data_dir / "inbox").glob("*/*/bulk_upload_*.csv")
                        if p.stem.removeprefix("bulk_upload_").isdigit())
    if not candidates:
        raise ValueError(f"no single-page CSV upload in {data_dir} to correct: the state is too small")
    chosen = rng.sample(candidates, min(LATE_CORRECTIONS, len(candidates)))
    written: list[Path] = []
    used: dict[Path, set[int]] = {}
    for number in range(LATE_CORRECTIONS):
        original = chosen[number % len(chosen)]
        with original.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            totals = [r for r in reader if not r.get("breakdown") and (r.get("value") or "").isdigit()]
        left = [index for index in range(len(totals)) if index not in used.setdefault(original, set())]
        if not left:
            raise ValueError(f"{original} has no total left to correct: the state is too small")
        index = rng.choice(left)
        used[original].add(index)
        row = totals[index]
        row["value"] = str(int(row["value"]) + 1)
        again = f"_{number // len(chosen) + 1}" if number >= len(chosen) else ""
        corrected = original.with_name(f"{original.stem}_correction{again}.csv")
        with corrected.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, header, lineterminator="\n")
            writer.writeheader()
            writer.writerow(row)
        written.append(corrected)
    return written
