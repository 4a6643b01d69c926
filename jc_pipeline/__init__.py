"""jc_pipeline: Justice Counts Tier 1 metrics from agencies' uploads to a state warehouse, through Dagster."""

import os

#: Polars' allocator (jemalloc) settings for every process that imports the pipeline: freed memory is kept ten
#: seconds for reuse (Polars sets half a second for dirty pages, one for muzzy ones, to keep its memory small).
#: docs/decisions.md, "Polars keeps freed memory ten seconds".
POLARS_ALLOCATOR = "dirty_decay_ms:10000,muzzy_decay_ms:10000"

# Polars appends the environment's value to its own settings when it is imported, and jemalloc reads them once: so
# here, before any module of the package can import Polars. A value already in the environment wins (an
# operator's, or a test's).
os.environ.setdefault("_RJEM_MALLOC_CONF", POLARS_ALLOCATOR)
