"""Great Expectations in a worker process of its own, shared by the validations of this process.

GX costs ~2.4-3 s of CPU to import, all of it holding the GIL, and validates in pandas and Python. In the run's
own process the import stalled what ran beside it (a nightly increment at 3,000 agencies: the checks waited
1.8 s for it, the resolve beside it slowed). In a worker it imports on the other core: :func:`preload` starts the
worker, which imports GX at once, so a caller that has other work first (the command line's ingest) gets it for
free; and a year's validation no longer competes for this process's GIL. A worker that dies (GX crashing, the
machine out of memory) or takes longer than :data:`VALIDATION_SECONDS` costs the GX rules of that validation,
reported as their errors, never the run; the next validation starts a new one.

The worker is ``python -m jc_pipeline.lib.validation.gx_worker`` (:mod:`jc_pipeline.lib.child_process`): a
request is the suite of each part of a slice (:func:`.expectations.parts`; as data, a pickle) followed by each
part's table as an Arrow IPC stream, its text dictionary-encoded; the reply is :func:`.expectations.validate`'s
findings for each part.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import threading

import pyarrow as pa

from jc_pipeline.lib.child_process import receive, reply, send, serving_pipes, start, stop
from jc_pipeline.lib.validation import expectations
from jc_pipeline.lib.validation.expectations import GX_RULES, ExpectationOutcome

#: The longest one validation may take in the worker before it is stopped (a year at 3,000 agencies takes ~1 s;
#: the import, when the worker has just started, ~3 s): a hung GX must not hold a nightly run, and with it the
#: store's single writer slot, forever.
VALIDATION_SECONDS = 600.0

_lock = threading.Lock()  # one validation at a time per worker
_worker: subprocess.Popen | None = None


def preload() -> None:
    """Start the worker (it imports Great Expectations at once), unless it runs already. Safe to call again."""
    with _lock:
        _running()


def run_expectations(parts: list[expectations.Part], rows: int) -> list[ExpectationOutcome]:
    """Validate the ``parts`` of a slice of ``rows`` rows (:func:`.expectations.parts`) in the worker; one outcome
    per gx rule, in catalogue order (see :func:`.expectations.validate`), its failing rows and rows checked the
    slice's."""
    if rows == 0:
        return [ExpectationOutcome(rule, (), 0, None) for rule in GX_RULES]
    try:
        sent = [expectations.encoded(part.table) for part in parts]
    except Exception as exc:  # noqa: BLE001 - a broken slice is an error of every gx rule
        return _failed(f"Great Expectations failed: {type(exc).__name__}: {exc}")
    with _lock:
        worker = _running()
        try:
            send(worker.stdin, [part.specs for part in parts])
            # Arrow writes the tables' buffers straight into the pipe (no copy of them here), and an IPC stream
            # ends with its own marker, where the worker's read stops.
            for part in sent:
                with pa.ipc.new_stream(worker.stdin, part.schema) as stream:
                    stream.write_table(part)
            worker.stdin.flush()
            found = reply(worker, VALIDATION_SECONDS, late=f"it took longer than {VALIDATION_SECONDS:g} s",
                          ended="it exited without answering")
        except (OSError, EOFError) as exc:  # TimeoutError is an OSError
            _stop()
            return _failed(f"Great Expectations failed: its worker process was lost ({exc}); the next validation "
                           f"starts a new one")
    failing: dict[str, set[int]] = {rule.name: set() for rule in GX_RULES}
    errors: dict[str, list[str]] = {rule.name: [] for rule in GX_RULES}
    for part, part_found in zip(parts, found, strict=True):
        for name, ids, _, error in part_found:
            failing[name].update(part.slice_row_ids(ids))
            errors[name] += [error] if error is not None else []
    return [ExpectationOutcome(rule, (), 0, "; ".join(errors[rule.name])) if errors[rule.name]
            else ExpectationOutcome(rule, tuple(sorted(failing[rule.name])), rows, None)
            for rule in GX_RULES]


def _failed(message: str) -> list[ExpectationOutcome]:
    return [ExpectationOutcome(rule, (), 0, message) for rule in GX_RULES]


def _running() -> subprocess.Popen:
    global _worker
    if _worker is None or _worker.poll() is not None:
        _stop()
        _worker = start(__name__)
    return _worker


def _stop() -> None:
    global _worker
    if _worker is not None:
        stop(_worker)
        _worker = None


# Stopped with this process: a run with nothing new leaves no worker behind, still importing GX.
atexit.register(_stop)


def _serve() -> None:
    """The worker: imports GX and builds its context at once, then validates the parts of one slice per request
    until its stdin ends (the parent closed it, or exited)."""
    requests, replies = serving_pipes()
    # A GX that cannot be imported (a broken install) is reported by every validation, with its error, as each
    # rule's: a worker dying here would only say that it died.
    with contextlib.suppress(Exception):
        expectations.gx_context()
    while True:
        try:
            specs = receive(requests)
        except EOFError:
            return
        send(replies, [expectations.validate(suite, pa.ipc.open_stream(requests).read_all()) for suite in specs])


if __name__ == "__main__":
    _serve()
