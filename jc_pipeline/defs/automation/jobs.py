"""Jobs: ingest (unpartitioned), roll-up (by period month), publish. The CLI, the sensor and the schedule
launch these, so every run shows in the UI the same way."""

from typing import Any

import dagster as dg

from jc_pipeline.lib.ingest.inbox import SETTLE_SECONDS

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups("reference", "ingest"),
    description="Load the registry and roster, then ingest every new or changed inbox file.",
)

rollup_job = dg.define_asset_job(
    "rollup_job",
    selection=dg.AssetSelection.groups("normalize", "state"),
    description="Resolve, validate and roll up the period months of the run (one month or a range).",
)

publish_job = dg.define_asset_job(
    "publish_job",
    selection=dg.AssetSelection.groups("publish"),
    description="Swap in a new analyst warehouse, then write the agency feedback, the data-quality report and the "
                "state report, and record the publish.",
)


def ingest_run_config(settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """Run config of an `ingest_job` that leaves files modified in the last `settle_seconds` for the next run (they
    may still be arriving): the schedule, the inbox sensor and `jc-pipeline run --settle` use it."""
    return {"ops": {"inbox_files": {"config": {"settle_seconds": settle_seconds}}}}


#: Tag on every run `jc-pipeline run` starts. That command rolls up and publishes by itself, so the sensors leave
#: its runs alone (no second roll-up of the same months when `make dev` runs beside the command line).
LAUNCHED_BY_TAG = "jc/launched_by"
LAUNCHED_BY_CLI = "jc-pipeline"
