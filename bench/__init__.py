"""The benchmark (docs/benchmarks.md). The pipeline package first: its allocator settings (jc_pipeline/__init__.py)
apply to the floor's Polars reads as to the pipeline's own."""

import jc_pipeline  # noqa: F401 - imported for its settings
