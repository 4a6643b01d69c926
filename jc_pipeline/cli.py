"""`jc-pipeline`: run the Justice Counts pipeline on a state's data directory (README.md, "The contracts in brief").
Errors name the file and the fix, without a traceback."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import shlex
import sys
from datetime import date
from pathlib import Path

from jc_pipeline.lib.paths import DataLayout


def _month(text: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}") from None


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), got {text!r}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jc-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-data", help="write a realistic fictional state into the data directory")
    demo.add_argument("--data-dir", help="data directory (default: $JC_DATA_DIR or ./data)")
    demo.add_argument("--agencies", type=int, default=64, help="agencies across the seven sectors, at least 20 "
                      "(default: 64)")
    demo.add_argument("--years", type=int, default=6, help="years of history (default: 6)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed writes the same files (default: 7)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing roster and inbox")

    run = commands.add_parser("run", help="ingest new files, validate, roll up and publish")
    run.add_argument("--data-dir")
    run.add_argument("--from", dest="first", type=_month,
                     help="backfill from this month (YYYY-MM); alone: through the current month")
    run.add_argument("--to", dest="last", type=_month,
                     help="backfill up to this month (YYYY-MM); alone: from the first month with data")
    run.add_argument("--settle", type=_seconds, default=0, metavar="SECONDS",
                     help="leave files modified in the last SECONDS for the next run, as the nightly schedule does: "
                          "they may still be arriving (for a run cron starts; docs/operations.md)")

    status = commands.add_parser("status", help="files, rejects, failing checks and coverage at a glance")
    status.add_argument("--data-dir")

    report = commands.add_parser("report", help="write the state report and the agency feedback it links to")
    report.add_argument("--data-dir")
    report.add_argument("--out", help="reports folder (default: <data-dir>/reports)")

    feedback = commands.add_parser("feedback", help="write each agency's feedback workbook and page")
    feedback.add_argument("--data-dir")
    feedback.add_argument("--agency", action="append", dest="agencies", metavar="ID",
                          help="only this agency (repeatable; default: every agency on the roster)")
    feedback.add_argument("--out", help="folder (default: <data-dir>/reports/agencies)")

    template = commands.add_parser("template", help="write an agency's bulk-upload template workbooks")
    template.add_argument("--data-dir")
    template.add_argument("--agency", required=True, metavar="ID", help="agency_id from agencies.csv")
    template.add_argument("--out", help="folder for the workbooks (default: <data-dir>/templates/<agency_id>)")

    export = commands.add_parser("export", help="export warehouse tables and views to CSV, Parquet or XLSX")
    export.add_argument("--data-dir")
    export.add_argument("--format", choices=("csv", "parquet", "xlsx"), default="csv")
    export.add_argument("--out", help="folder (default: <data-dir>/exports)")
    export.add_argument("--tables", nargs="+", metavar="NAME",
                        help="tables or views to export, e.g. agency_metrics (default: state_metrics, state_coverage, "
                             "state_metric_changes, state_caseloads, state_supervision_totals, "
                             "state_calendar_years)")
    return parser


def _demo_data(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.lib.demo import write_demo_state

    manifest = write_demo_state(
        layout.root, agencies=args.agencies, years=args.years, seed=args.seed, overwrite=args.overwrite
    )
    exports = sum(1 for path in manifest.native if Path(path).parts[0] == "inbox")  # the rest: their mappings
    print(f"wrote a demo state to {layout.root}: {len(manifest.files) + exports} files in {layout.inbox} "
          f"({len(manifest.files)} bulk uploads, {exports} native exports read through mappings/)")


def _run(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.defs.partitions import period_months
    from jc_pipeline.runner import run_pipeline, ui_command

    # Months without a partition: Dagster failed the run on an invariant (before 2000) or recorded months that do
    # not exist yet (after the current one).
    first, last = (date.fromisoformat(key) for key in (period_months.get_first_partition_key(),
                                                        period_months.get_last_partition_key()))
    if args.first and args.first > last:
        raise SystemExit(f"jc-pipeline run: --from {args.first:%Y-%m} is after the current month, {last:%Y-%m}: no "
                         f"period has started there")
    if args.first and not args.last:  # to the current month; --to alone reaches back to the first with data
        args.last = last
    if args.first and args.first > args.last:
        raise SystemExit("jc-pipeline run: --from must not be after --to")
    if args.first and args.first < first:
        raise SystemExit(f"jc-pipeline run: --from {args.first:%Y-%m} is before {first:%Y-%m}, the first month the "
                         f"pipeline keeps")
    if args.last and args.last > last:
        raise SystemExit(f"jc-pipeline run: --to {args.last:%Y-%m} is after the current month, {last:%Y-%m}: no "
                         f"period has started there")
    if args.last and args.last < first:  # --to alone: Dagster failed the run on an invariant after the ingest
        raise SystemExit(f"jc-pipeline run: --to {args.last:%Y-%m} is before {first:%Y-%m}, the first month the "
                         f"pipeline keeps")
    if not layout.roster.exists():
        raise SystemExit(
            f"no roster at {layout.roster}: create agencies.csv there (its columns: README.md, 'The contracts in "
            f"brief') or run `jc-pipeline demo-data`"
        )
    summary = run_pipeline(layout, first=args.first, last=args.last, settle_seconds=args.settle,
                           echo=lambda line: print(line, flush=True))
    print(f"\n{len(summary.run_ids)} Dagster run(s) recorded; {len(summary.months)} period month(s) recomputed.")
    print(f"warehouse:           {layout.warehouse}   (duckdb -readonly {shlex.quote(str(layout.warehouse))})")
    print(f"state report:        {layout.reports / 'state' / 'index.html'}")
    print(f"data-quality report: {layout.reports / 'data_quality' / 'index.html'}")
    print(f"agency feedback:     {layout.reports / 'agencies'}/<agency_id>.xlsx")
    print(f"Dagster UI:          {ui_command(layout)}, then http://127.0.0.1:3000")


def _status(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.status import print_status

    print_status(layout)


def _report(args: argparse.Namespace, layout: DataLayout) -> None:
    from datetime import UTC, datetime

    from jc_pipeline.lib import feedback, report
    from jc_pipeline.lib.paths import folder_lock
    from jc_pipeline.lib.warehouse import open_published

    out = Path(args.out).resolve() if args.out else layout.reports
    now = datetime.now(UTC)
    # The folders' locks before the warehouse (paths.folder_lock): written from the latest, never over it.
    with folder_lock(out / "agencies"), folder_lock(out / "state"), open_published(layout) as con:
        expected = report.expected_periods(con)  # both products read it: asked once
        written = feedback.write_agency_feedback(con, out / "agencies", generated_at=now, expected=expected)
        links = feedback.existing_links(con, out / "agencies", "../agencies")
        index = report.write_state_report(con, out / "state", generated_at=now, agency_links=links,
                                          expected=expected)
    print(f"state report:    {index}")
    print(f"agency feedback: {out / 'agencies'} ({len(written)} agencies)")


def _feedback(args: argparse.Namespace, layout: DataLayout) -> None:
    from datetime import UTC, datetime

    from jc_pipeline.lib import feedback
    from jc_pipeline.lib.paths import folder_lock
    from jc_pipeline.lib.warehouse import open_published

    out = Path(args.out).resolve() if args.out else layout.reports / "agencies"
    with folder_lock(out), open_published(layout) as con:
        written = feedback.write_agency_feedback(con, out, generated_at=datetime.now(UTC), agency_ids=args.agencies)
    for item in written.values():
        print(f"{item.agency_id}: {item.xlsx.name} + {item.html.name} ({item.findings} findings, "
              f"{item.periods_missing} periods missing)")
    print(f"written to {out}")


def _template(args: argparse.Namespace, layout: DataLayout) -> None:

    from jc_pipeline.lib.roster import load_roster
    from jc_pipeline.lib.state_clock import state_today
    from jc_pipeline.lib.templates import filling_notes, plan_templates, write_workbooks

    roster = load_roster(layout.root)
    if args.agency not in roster.agencies:
        raise ValueError(f"'{args.agency}' is not an agency_id in {layout.roster}")
    out = Path(args.out).resolve() if args.out else layout.root / "templates" / args.agency
    workbooks = plan_templates(roster, args.agency, today=state_today())
    if not workbooks:
        print(f"{args.agency} has no enabled metric to report: no template written")
    for path, workbook in zip(write_workbooks(workbooks, out), workbooks, strict=True):
        print(f"{path}   -> fill in, then deliver to {layout.inbox / args.agency / workbook.sector}/")
    for note in filling_notes(workbooks):
        print(note)


def _export(args: argparse.Namespace, layout: DataLayout) -> None:

    from jc_pipeline.lib import export
    from jc_pipeline.lib.paths import folder_lock
    from jc_pipeline.lib.warehouse import open_published

    out = Path(args.out).resolve() if args.out else layout.root / "exports"
    tables = tuple(args.tables) if args.tables else export.DEFAULT_TABLES
    export.check_tables(tables)
    # Two exports into one folder take turns (each file's ".tmp" is one name) and the later writes the newer.
    with folder_lock(out), open_published(layout) as con:
        for path in export.export_tables(con, out, tables=tables, fmt=args.format):
            print(path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jc-pipeline` console script."""
    args = _parser().parse_args(argv)
    layout = DataLayout.from_env(args.data_dir)
    commands = {"demo-data": _demo_data, "run": _run, "status": _status, "report": _report, "feedback": _feedback,
                "template": _template, "export": _export}
    with contextlib.redirect_stdout(_Printable(sys.stdout)), contextlib.redirect_stderr(_Printable(sys.stderr)):
        try:
            commands[args.command](args, layout)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # the CLI's promise: a message that names the problem, not a traceback
            print(_message(args, error), file=sys.stderr)
            return 1
    return 0


class _Printable:
    """A text stream writing control characters as escapes (``\\x1b``): names an agency chose (its inbox folders
    and files) reach the terminal, where an escape sequence could retitle it or erase the lines above (helper-63)."""

    def __init__(self, stream: object) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(_CONTROL.sub(lambda found: repr(found[0])[1:-1], text))

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


#: C0 and C1 control characters but newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _message(args: argparse.Namespace, error: Exception) -> str:
    """What the command says of an error: its words, without the statement and parameters SQLAlchemy appends to an
    error of Dagster's instance (helper-49: a full DAGSTER_HOME quoted the INSERT of the run's events), and the way
    out (:func:`_way_out`)."""
    words = str(error).split("\n[SQL:", 1)[0]
    way_out = _way_out(args, error)
    return f"jc-pipeline {args.command}: {words.rstrip().rstrip('.') if way_out else words}{way_out}"


def _way_out(args: argparse.Namespace, error: Exception) -> str:
    """What to do about a folder this user may not write (a read-only share, another user's data directory) or a
    full disk, whether the command met it itself or a step of its Dagster run did (the step's error is in the
    message: ``[Errno 30] Read-only file system``; SQLite's "database or disk is full" from the instance, DuckDB's
    "No space left on device" from the store or the warehouse), or about the database of a team install's instance."""
    text = str(error)
    code = error.errno if isinstance(error, OSError) else None
    if code is None:
        found = _ERRNO_IN_TEXT.search(text)
        code = (int(found[1]) if found else
                errno.ENOSPC if "disk is full" in text or "No space left on device" in text else None)
    if code == errno.ENOSPC:
        return ("; the disk is full: free space on the disk of the data directory and of DAGSTER_HOME, then run the "
                "command again (nothing already loaded is lost)")
    if any(words in text for words in _DATABASE_DOWN):  # helper-61: psycopg2's words alone named no way out
        return ("; the Dagster instance's database cannot be reached (a team install: the PostgreSQL server of "
                "DAGSTER_PG_HOST and DAGSTER_PG_PORT): run the command again once it is up (nothing already loaded "
                "is lost)")
    if "too many retries for DB connection" in text or "FATAL:" in text:  # why: in the warnings above, or here
        return ("; the Dagster instance's database could not be opened: the server down says 'Connection refused', "
                "a wrong database, user or password 'FATAL: …' (check DAGSTER_PG_*); run the command again once it "
                "is fixed (nothing already loaded is lost)")
    if code not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ""
    home, path = os.environ.get("DAGSTER_HOME"), _path_of(error)  # the run's instance: runner.use_instance sets it
    if home and path and Path(path).is_relative_to(home):
        # helper-49: a DAGSTER_HOME of its own, read-only, was blamed on the data directory.
        return f"; run it as a user who may write to DAGSTER_HOME ({home}), or point DAGSTER_HOME at such a folder"
    if "out" in args:
        return "; give --out a folder you may write to, or run it as a user who may write there"
    return "; run it as a user who may write to the data directory"


def _path_of(error: Exception) -> str | None:
    """The path an OSError names, or a step's error quotes (``[Errno 13] Permission denied: '/x'``)."""
    if isinstance(error, OSError):
        return error.filename if isinstance(error.filename, str) else None
    found = _PATH_IN_TEXT.search(str(error))
    return found[1] if found else None


#: What psycopg2 says when the instance's PostgreSQL is down or goes away (not a setting it refused: "FATAL:").
_DATABASE_DOWN = ("server closed the connection unexpectedly", "Connection refused", "timeout expired")
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")
_PATH_IN_TEXT = re.compile(r"\[Errno \d+\] [^:]*: '([^']+)'")


if __name__ == "__main__":
    sys.exit(main())

