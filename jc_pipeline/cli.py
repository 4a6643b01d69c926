"""`jc-pipeline`: the command line of DESIGN.md §3.2. Errors name the file and the fix, without a traceback."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from jc_pipeline.lib.paths import DataLayout


def _month(text: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jc-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-data", help="write a realistic fictional state into the data directory")
    demo.add_argument("--data-dir", help="data directory (default: $JC_DATA_DIR or ./data)")
    demo.add_argument("--agencies", type=int, default=64)
    demo.add_argument("--years", type=int, default=6)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--overwrite", action="store_true", help="replace an existing roster and inbox")

    run = commands.add_parser("run", help="ingest new files, validate, roll up and publish")
    run.add_argument("--data-dir")
    run.add_argument("--from", dest="first", type=_month, help="backfill from this month (YYYY-MM)")
    run.add_argument("--to", dest="last", type=_month, help="backfill up to this month (YYYY-MM)")

    status = commands.add_parser("status", help="files, rejects, failing checks and coverage at a glance")
    status.add_argument("--data-dir")
    return parser


def _demo_data(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.lib.demo import write_demo_state

    manifest = write_demo_state(
        layout.root, agencies=args.agencies, years=args.years, seed=args.seed, overwrite=args.overwrite
    )
    print(f"wrote a demo state to {layout.root}: {len(manifest.files)} files in {layout.inbox}")


def _run(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.runner import run_pipeline

    if (args.first is None) != (args.last is None):
        raise SystemExit("jc-pipeline run: give both --from and --to (YYYY-MM), or neither")
    if args.first and args.first > args.last:
        raise SystemExit("jc-pipeline run: --from must not be after --to")
    if not layout.roster.exists():
        raise SystemExit(
            f"no roster at {layout.roster}: create agencies.csv there (DESIGN §3.1) or run `jc-pipeline demo-data`"
        )
    summary = run_pipeline(layout, first=args.first, last=args.last, echo=lambda line: print(line, flush=True))
    print(f"\n{len(summary.run_ids)} Dagster run(s) recorded; {len(summary.months)} period month(s) recomputed.")
    print(f"warehouse:           {layout.warehouse}   (duckdb -readonly {layout.warehouse})")
    print(f"data-quality report: {layout.reports / 'data_quality' / 'index.html'}")
    print("Dagster UI:          make dev, then http://127.0.0.1:3000")


def _status(args: argparse.Namespace, layout: DataLayout) -> None:
    from jc_pipeline.status import print_status

    print_status(layout)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jc-pipeline` console script."""
    args = _parser().parse_args(argv)
    layout = DataLayout.from_env(args.data_dir)
    commands = {"demo-data": _demo_data, "run": _run, "status": _status}
    try:
        commands[args.command](args, layout)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the CLI's promise: a message that names the problem, not a traceback
        print(f"jc-pipeline {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

