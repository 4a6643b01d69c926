"""The one code location: every definition under `jc_pipeline/defs/`, loaded lazily."""

from pathlib import Path

import dagster as dg

from jc_pipeline.instance import tune_sqlite_storage

# Runs of this code location write their events to the instance's SQLite storage (see jc_pipeline.instance).
tune_sqlite_storage()


@dg.definitions
def defs() -> dg.Definitions:
    """Autoload `defs/`; steps run in one process because they share one single-writer DuckDB store."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
