"""Peak resident memory of this process, as the benchmarks report it."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident set (MiB): ``VmHWM`` of /proc/self/status, else ``ru_maxrss``.

    ``ru_maxrss`` survives exec on Linux: a child started by a parent that holds 4 GiB (the benchmark after
    generating its state) reports the parent's 4 GiB as its own peak. ``VmHWM`` belongs to the address space exec
    created, so it is the child's own."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:  # no procfs (macOS): ru_maxrss is in bytes there
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM line")
