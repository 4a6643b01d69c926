"""A realistic fictional state ("US_XX") of Justice Counts Tier 1 uploads, with the quirks real uploads have.

Modules: ``agencies`` (the roster and delivery habits), ``values`` (simulated metric values), ``deliveries``
(which file and cell every value lands in), ``quirks`` (planted irregularities), ``writers`` (xlsx/xls/csv),
``manifest`` (what was written, for tests), ``generate`` (the entry point).
"""

from jc_pipeline.lib.demo.generate import write_demo_state
from jc_pipeline.lib.demo.manifest import DemoManifest, FileRecord, QuirkLocation, SheetRecord

__all__ = ["DemoManifest", "FileRecord", "QuirkLocation", "SheetRecord", "write_demo_state"]
