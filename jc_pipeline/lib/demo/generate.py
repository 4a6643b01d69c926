"""``write_demo_state``: a deterministic, realistic fictional state for demos and end-to-end tests."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from jc_pipeline.lib.demo.agencies import STATE_CODE, build_state, write_roster_files
from jc_pipeline.lib.demo.deliveries import Planner
from jc_pipeline.lib.demo.manifest import LATE_CORRECTION, DemoManifest
from jc_pipeline.lib.demo.native import choose, write_native
from jc_pipeline.lib.demo.quirks import plant_quirks
from jc_pipeline.lib.demo.values import observations
from jc_pipeline.lib.demo.writers import write_delivery
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.roster import AGENCIES_FILE, BREAKDOWN_SETTINGS_FILE, SETTINGS_FILE, load_roster

LAST_YEAR = 2025  # history ends here whatever today's date, so the same seed always gives the same files
_OWNED = ("inbox", "mappings", AGENCIES_FILE, SETTINGS_FILE, BREAKDOWN_SETTINGS_FILE)


def write_demo_state(
    data_dir: Path, *, agencies: int = 64, years: int = 6, seed: int = 7, overwrite: bool = False
) -> DemoManifest:
    """Write the roster (agencies.csv, metric_settings.csv, breakdown_settings.csv) and a few hundred bulk-upload
    files under ``data_dir/inbox``.

    ``years`` calendar years of history ending in 2025. Raises FileExistsError when ``data_dir`` already holds a
    roster, unless ``overwrite`` (which removes only ``inbox/``, ``mappings/`` and the three roster files). A few
    agencies also deliver native exports with a mapping (see :mod:`native`).
    """
    data_dir = Path(data_dir)
    if years < 1:
        raise ValueError(f"years must be at least 1, got {years}")
    if (data_dir / AGENCIES_FILE).exists():
        if not overwrite:
            raise FileExistsError(
                f"{data_dir / AGENCIES_FILE} already exists; refusing to overwrite a data directory "
                "(`jc-pipeline demo-data --overwrite`, or overwrite=True, replaces its inbox/, mappings/ and roster "
                "files)"
            )
        _remove_owned(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    rng = random.Random(seed)
    history = tuple(range(LAST_YEAR - years + 1, LAST_YEAR + 1))
    state = build_state(rng, agencies, history)
    write_roster_files(state, data_dir)
    registry = load_registry()
    roster = load_roster(data_dir, registry)  # the demo must be valid input: fail here, not in the pipeline
    observed = list(observations(rng, roster, registry, history))
    # A few agencies deliver some metrics only as native exports (CAD, RMS, jail, court, probation; see native.py).
    native = choose(state, roster, observed)
    observed = [o for o in observed if not native.covers(o)]
    overrides = {(row[0], row[1]) for row in state.settings if row[3]}
    planner = Planner(state, overrides)
    deliveries = planner.plan(observed)
    plant_quirks(rng, deliveries, state, planner, observed, history)

    manifest = DemoManifest(data_dir, STATE_CODE, history, tuple(a.agency_id for a in state.agencies))
    for delivery in deliveries:
        record, quirks = write_delivery(data_dir, delivery)
        manifest.files.append(record)
        for name, location in quirks:
            manifest.add_quirk(name, location)
    _make_correction_latest(data_dir, manifest)
    manifest.native = write_native(data_dir, native, registry, seed, history)
    return manifest


def _remove_owned(data_dir: Path) -> None:
    """Remove only what the demo writes; outputs (warehouse, Dagster storage) beside it are left alone."""
    for name in _OWNED:
        target = data_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _make_correction_latest(data_dir: Path, manifest: DemoManifest) -> None:
    """The correction is written last; also give it a strictly later mtime than its folder's other files."""
    for location in manifest.quirks[LATE_CORRECTION][:1]:
        path = data_dir / location.path
        newest = max(p.stat().st_mtime_ns for p in path.parent.iterdir())
        os.utime(path, ns=(newest + 60 * 10**9, newest + 60 * 10**9))
