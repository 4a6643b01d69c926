"""Peak resident memory and CPU time of this process and of its child processes (calamine's and Great
Expectations' workers), as the benchmarks report them."""

from __future__ import annotations

import bisect
import os
import resource
import threading
import time
from pathlib import Path


def cpu_seconds() -> float:
    """CPU seconds of every thread of this process and of its child processes that have ended (calamine's worker
    ends with each ingest)."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


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


class ProcessSampler:
    """Samples this process plus its child processes (calamine's and Great Expectations' workers) every
    ``interval`` seconds on a thread, with wall-clock timestamps (``time.time()``, as Dagster stamps its events),
    while the ``with`` block runs: their resident set (MiB), to tell which step of a run holds the peak, and the
    CPU seconds they have used, to tell how many cores a step kept busy. A peak shorter than one interval can fall
    between samples (``peak_rss_mib`` has this process's exact one); a child's CPU after its last sample (at most
    one interval of it) is not counted."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (time.time(), resident MiB, CPU seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="process-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        """The largest sample (this process and its children together)."""
        return max((rss for _, rss, _ in self.samples), default=0.0)

    def _sample(self) -> None:
        page_mib = resource.getpagesize() / 2**20
        tick = os.sysconf("SC_CLK_TCK")
        used: dict[str, float] = {}  # pid -> its CPU seconds when last seen; an ended child keeps its last value
        while True:
            pids = ["self", *_children()]
            pages = sum(_resident_pages(pid) for pid in pids)
            for pid in pids:
                ticks = _cpu_ticks(pid)
                if ticks is not None:
                    used[pid] = ticks / tick
            self.samples.append((time.time(), pages * page_mib, sum(used.values())))
            if self._stop.wait(self.interval):
                return

    def peak_between(self, start: float, end: float) -> float:
        """The largest sample from the last one taken at or before ``start`` to the first at or after ``end``: a
        window shorter than the interval still gets the samples around it."""
        times = [at for at, _, _ in self.samples]
        first = max(bisect.bisect_right(times, start) - 1, 0)
        last = bisect.bisect_left(times, end) + 1
        return max((rss for _, rss, _ in self.samples[first:last]), default=0.0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the processes used from ``start`` to ``end``, read between the samples around each."""
        return self._cpu_at(end) - self._cpu_at(start)

    def _cpu_at(self, moment: float) -> float:
        times = [at for at, _, _ in self.samples]
        after = bisect.bisect_left(times, moment)
        if after == 0 or after == len(times):
            return self.samples[min(after, len(times) - 1)][2] if self.samples else 0.0
        (t0, _, c0), (t1, _, c1) = self.samples[after - 1], self.samples[after]
        return c1 if t1 == t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)


def _resident_pages(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1])
    except (OSError, IndexError, ValueError):  # a child that has just ended
        return 0


def _cpu_ticks(pid: str) -> int | None:
    """User + system clock ticks of every thread of the process so far; None when it has just ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


def _children() -> list[str]:
    """Process ids of this process's children (started by any of its threads)."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            found += (task / "children").read_text(encoding="ascii").split()
        except OSError:  # a thread that has just ended
            continue
    return found
