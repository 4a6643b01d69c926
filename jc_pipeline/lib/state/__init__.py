"""State roll-up stage: ``state_metrics``, its agency-level contributions and the analyst views.

Public API (called by the Dagster layer)::

    state.ensure_schema(con)
    n = state.build_state_metrics(con, months, breakdown_coverage_threshold=0.8)
    n = state.rebuild_state_metrics(con, [(months, agencies), ...])   # a nightly roll-up's rebuilds at once
    state.apply_views(con)          # state.VIEW_SQL_FILES lists the view files it runs
    state.PUBLISHED_TABLES          # tables the published warehouse must copy for the views to answer
"""

from jc_pipeline.lib.state.rollup import (
    BUILD_SQL_FILES,
    DEFAULT_BREAKDOWN_COVERAGE_THRESHOLD,
    PUBLISHED_TABLES,
    SCHEMA_SQL_FILE,
    VIEW_SQL_FILES,
    apply_views,
    build_state_metrics,
    ensure_schema,
    rebuild_state_metrics,
)

__all__ = [
    "BUILD_SQL_FILES",
    "DEFAULT_BREAKDOWN_COVERAGE_THRESHOLD",
    "PUBLISHED_TABLES",
    "SCHEMA_SQL_FILE",
    "VIEW_SQL_FILES",
    "apply_views",
    "build_state_metrics",
    "ensure_schema",
    "rebuild_state_metrics",
]
