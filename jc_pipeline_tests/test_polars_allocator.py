"""Polars' allocator settings (jc_pipeline/__init__.py): freed memory is reused, not faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

# A batch's worth of Polars memory freed, a pause longer than Polars' own decay (half a second, then one more for
# muzzy pages), the same again: the page faults of the second round.
_CHURN = """
import resource, time
import jc_pipeline, polars as pl
def churn():
    return (pl.int_range(0, 8_000_000, eager=True) * 3).sum()
churn()
time.sleep(2.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
# Polars' own settings (polars/__init__.py sets them, then appends any value found in the environment).
_POLARS_OWN = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def _faults(allocator: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if allocator is not None:
        env["_RJEM_MALLOC_CONF"] = allocator
    done = subprocess.run([sys.executable, "-c", _CHURN], capture_output=True, text=True, check=True, env=env,
                          timeout=120)
    return int(done.stdout)


def test_memory_polars_freed_is_reused_by_the_next_batch_not_faulted_in_again() -> None:
    kept = _faults(None)  # the package's setting
    returned = _faults(_POLARS_OWN)  # an operator's value wins over the package's
    # Two 64 MB columns a round: ~31,000 pages faulted in again when returned to the system.
    assert returned > 20_000
    assert kept < returned // 10
