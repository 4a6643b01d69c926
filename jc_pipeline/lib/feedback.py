"""Agency feedback: per agency a workbook (``<agency_id>.xlsx``) and an HTML page (``<agency_id>.html``).

Both list every row ingest rejected or warned about and every failed check, with file, sheet, row, column, value,
the rule and what to do, plus the periods the agency is still expected to send. The HTML page is the agency's
page of the data-quality report too (its index links here): the findings as
:func:`jc_pipeline.lib.validation.report.agency_body` lays them out, then the missing periods. The workbook holds
the complete lists (the page shows at most 200 rows per rule) so an agency can filter and tick them off.
Workbook cells are written by type, text as string cells (never evaluated), quote-prefixed where it looks like a
formula (:class:`jc_pipeline.lib.export.XlsxWorkbook`): file names and values come from agencies' files, and the
workbook shows them exactly as the agency wrote them.

File names: the agency id when it is a plain id (letters, digits, ``_``, ``-``) other than ``index``, else a slug
plus a hash of the id, so an id never becomes a path nor takes the index's name (see :func:`agency_file_stem`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from jc_pipeline.lib.child_process import ready, receive, reply, send, serving_pipes, start, stop
from jc_pipeline.lib.export import XlsxWorkbook
from jc_pipeline.lib.ingest.rules import RULES as INGEST_RULES
from jc_pipeline.lib.page_digests import PageDigests
from jc_pipeline.lib.paths import FileWriter, replace_file
from jc_pipeline.lib.periods import contiguous_ranges, period_label
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.report import AgencyLinks, ExpectedPeriods, expected_periods
from jc_pipeline.lib.validation.report import (
    UNASSIGNED,
    LISTED_PER_RULE,
    ByAgency,
    Findings,
    agency_body,
    agency_title,
    index_body,
    listed_total,
    period_text,
    render_page,
    rule_sections,
)
from jc_pipeline.lib.validation.rules import RULES_BY_NAME

INDEX_FILE = "index.html"
#: A run rewriting at least this many agencies writes some of them in a helper process, on the other core (its
#: start costs ~0.4 s of that core's time; a few hundred agencies take as long here).
HELPER_MIN_AGENCIES = 400
#: Agencies per request to the helper: small enough that both processes finish at about the same time.
HELPER_CHUNK = 25
#: The longest the helper may take for one chunk before it is stopped (a chunk takes ~30 ms).
HELPER_SECONDS = 60.0
#: The files a full run wrote, so the next full run removes only its own stale files.
MANIFEST = ".feedback-files.json"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_OUR_FILE = re.compile(r"[A-Za-z0-9_~-]{1,90}\.(?:html|xlsx)")

#: What an agency does about a period that is not in the state numbers, by status.
_PERIOD_ACTION = {
    "MISSING": "Send this period (or tell the state team why it cannot be reported).",
    "FAILED_VALIDATION": "Correct the values named under Errors and send the period again.",
    "NOT_COUNTED": "The data arrived but does not match your reporting settings; see the reason.",
}
_REASONS = {
    "FREQUENCY_MISMATCH": "sent monthly but set up as annual (or the reverse) in metric_settings.csv",
    "YEAR_START_MISMATCH": "the year starts in a different month than your fiscal-year setting",
    "VALUE_NOT_FINITE": "the value is not a number",
    "METRIC_DISABLED": "the metric is disabled in your settings",
}
_FIX_COLUMNS = ("Kind", "Severity", "Metric", "Period", "Breakdown", "File", "Sheet", "Row", "Column", "Value",
                "Expected", "Rule", "Problem", "What to do")
_FIX_WIDTHS = (10, 9, 26, 16, 26, 40, 18, 6, 14, 14, 12, 30, 70, 60)
_MISSING_COLUMNS = ("Metric", "Metric key", "Sector", "Cadence", "Period", "First day", "Last day", "Status",
                    "What to do")
_MISSING_WIDTHS = (30, 34, 18, 16, 18, 11, 11, 18, 70)


@dataclass(frozen=True)
class AgencyFeedback:
    """The files written for one agency (``agency_id`` is ``(no agency)`` for files outside any agency folder)."""

    agency_id: str
    html: Path
    xlsx: Path
    findings: int
    periods_missing: int
    rewritten: bool  # false when the files of an earlier run already said the same


def agency_file_stem(agency_id: str) -> str:
    """The file name (without suffix) of an agency's feedback: the id itself when plain and not the index's name
    (in any case: some file systems ignore it), else slug ~ hash, which no plain id spells (helper-63: an inbox
    folder named as another agency's slug-hash took over its page)."""
    if _PLAIN_ID.fullmatch(agency_id) and agency_id.casefold() != Path(INDEX_FILE).stem:
        return agency_id
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", agency_id)[:40].strip("_") or "agency"
    return f"{slug}~{hashlib.sha256(agency_id.encode()).hexdigest()[:8]}"


def write_agency_feedback(con: duckdb.DuckDBPyConnection, out_dir: Path, *, generated_at: datetime,
                          agency_ids: Iterable[str] | None = None, expected: ExpectedPeriods | None = None,
                          found: Findings | None = None) -> dict[str, AgencyFeedback]:
    """Write the workbook and page of every roster agency and of every other agency with findings (or of
    ``agency_ids``) and an index; return them by id.

    Every roster agency gets files, also without findings: the missing periods concern all of them. A full run
    (no ``agency_ids``) rewrites only the agencies whose findings or missing periods changed
    (:class:`~jc_pipeline.lib.page_digests.PageDigests` of their rows' digests, computed in DuckDB: only the rows
    of the agencies rewritten become Python objects), and removes the files a previous full run wrote (listed
    in :data:`MANIFEST`) that it did not write again, so an agency that left the roster keeps no stale page;
    nothing else in ``out_dir`` is touched. ``expected`` and ``found`` are
    :func:`~jc_pipeline.lib.report.expected_periods` and :meth:`~jc_pipeline.lib.validation.report.Findings.of`
    the same warehouse when the caller has them already (computed here otherwise).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = dict(con.execute("SELECT agency_id, agency_name FROM agencies").fetchall())
    if found is None:
        found = Findings.of(con)
    findings, rejects = found.checks, found.rejects
    if expected is None:
        expected = expected_periods(con)
    missing = ByAgency.of(con, expected.unreported)
    if generated_at.tzinfo is not None:
        generated_at = generated_at.astimezone(UTC)
    stamp = generated_at.strftime("%Y-%m-%d %H:%M")

    # Agencies with findings but not on the roster (files in a mistyped inbox folder, an agency since removed)
    # get files too: their findings name the files to move or fix. Findings of no agency come last.
    with_findings = set(findings.counts) | set(rejects.counts)
    wanted = sorted((set(names) | with_findings) - {UNASSIGNED}) + ([UNASSIGNED] if UNASSIGNED in with_findings else [])
    if agency_ids is not None:
        chosen = set(agency_ids)
        unknown = chosen - set(wanted)
        if unknown:
            raise ValueError(f"neither an agency on the roster nor one with findings: {', '.join(sorted(unknown))}")
        wanted = [a for a in wanted if a in chosen]

    digests = PageDigests(out_dir)
    # A large state's helper process starts first: it imports while the digests are compared.
    with _helper(len(wanted)) as helper:
        written = {}
        for agency in wanted:
            stem = agency_file_stem(agency)
            xlsx, html = out_dir / f"{stem}.xlsx", out_dir / f"{stem}.html"
            found, rejected, unreported = (rows.counts.get(agency) for rows in (findings, rejects, missing))
            content = [names.get(agency), *(rows.digest(agency) for rows in (findings, rejects, missing))]
            # A narrowed run (one agency asked for) always writes: someone wants that file now.
            changed = digests.stale(agency, content, [xlsx, html]) or agency_ids is not None
            written[agency] = AgencyFeedback(agency, html, xlsx, sum(c.total for c in (found, rejected) if c),
                                             unreported.total if unreported else 0, changed)
        # Only the agencies whose files are written again have their rows read.
        stale = [agency for agency, files in written.items() if files.rewritten]
        rows_of = [rows.rows_of(stale) for rows in (findings, rejects, missing)]
        # Every file is written before the index and digests that name them.
        _write_all([_Pages(agency, names.get(agency), written[agency].xlsx, written[agency].html,
                           *(rows.get(agency, []) for rows in rows_of)) for agency in stale], stamp, helper)
    # The pages link to "index.html" (All agencies): the same index as the data-quality report, our files. A
    # narrowed run leaves a full run's index as it is, and lists its own agencies in a folder without one.
    if agency_ids is None or not (out_dir / INDEX_FILE).exists():
        summary = [(a, f.html.name, findings.counts.get(a), rejects.counts.get(a)) for a, f in written.items()]
        replace_file(out_dir / INDEX_FILE, render_page("Agency feedback", index_body(summary, names, stamp)))
    if agency_ids is None:
        _replace_manifest(out_dir, {p.name for f in written.values() for p in (f.html, f.xlsx)} | {INDEX_FILE})
    digests.save(others=agency_ids is not None)  # a narrowed run's files are on disk too: the digests say so
    return written


class _Pages(NamedTuple):
    """What one agency's workbook and page say, and where they go (picklable: the helper process writes some)."""

    agency: str
    name: str | None
    xlsx: Path
    html: Path
    findings: list[dict[str, Any]]
    rejects: list[dict[str, Any]]
    missing: list[dict[str, Any]]


def _write_pages(writer: FileWriter, pages: Iterable[_Pages], stamp: str) -> None:
    for page in pages:
        names = {page.agency: page.name}  # no name: agency_title says "not on the roster"
        title = agency_title(page.agency, names)
        writer.write(page.xlsx, _workbook(title, stamp, page.findings, page.rejects, page.missing))
        body = (agency_body(page.agency, names, page.findings, page.rejects, stamp)
                + _missing_section(page.missing) + _workbook_link(page.xlsx.name))
        writer.write(page.html, render_page(f"Feedback — {title}", body))


@contextmanager
def _helper(agencies: int) -> Iterator[subprocess.Popen | None]:
    """The helper process (``python -m jc_pipeline.lib.feedback``) for writing ``agencies`` agencies' files, when
    they are at least :data:`HELPER_MIN_AGENCIES`; stopped at the end of the block."""
    helper = start(__name__) if agencies >= HELPER_MIN_AGENCIES else None
    try:
        yield helper
    finally:
        if helper is not None:
            stop(helper)


def _write_all(pages: list[_Pages], stamp: str, helper: subprocess.Popen | None) -> None:
    """Write every agency's files, with at least :data:`HELPER_MIN_AGENCIES` of them also in ``helper``, on the
    other core: this process takes chunks of :data:`HELPER_CHUNK` agencies from the front, the helper from the
    back, two at a time, so both finish together. A helper that fails, dies or takes longer than
    :data:`HELPER_SECONDS` for a chunk is stopped and its chunks not done are written here: it never costs a file.
    """
    with FileWriter() as writer:
        if helper is None or len(pages) < HELPER_MIN_AGENCIES:
            _write_pages(writer, pages, stamp)
            return
        chunks = deque(pages[i:i + HELPER_CHUNK] for i in range(0, len(pages), HELPER_CHUNK))
        sent: deque[list[_Pages]] = deque()  # to the helper, in order, not confirmed yet
        while chunks or sent:
            try:
                while helper is not None and len(sent) < 2 and len(chunks) > 1:
                    sent.append(chunks.pop())
                    send(helper.stdin, (sent[-1], stamp))
                # The confirmations already there; all of them once nothing is left to write here.
                while sent and (not chunks or ready(helper)):
                    if not reply(helper, HELPER_SECONDS, late="too slow", ended="ended"):
                        raise OSError("the helper could not write a chunk")
                    sent.popleft()
            except (OSError, EOFError):  # failed, lost or late (TimeoutError is an OSError)
                stop(helper)
                helper = None
                chunks.extend(sent)
                sent.clear()
            if chunks:
                _write_pages(writer, chunks.popleft(), stamp)


def _serve() -> None:
    """The helper: writes the files of each chunk of agencies it is sent and answers whether it could, until its
    stdin ends (a chunk it could not write is written again by the parent, which then meets the error itself)."""
    requests, replies = serving_pipes()
    while True:
        try:
            pages, stamp = receive(requests)
        except EOFError:
            return
        try:
            with FileWriter() as writer:
                _write_pages(writer, pages, stamp)
        except Exception:  # noqa: BLE001 - said in the answer
            send(replies, False)
        else:
            send(replies, True)


def _replace_manifest(out_dir: Path, names: set[str]) -> None:
    """Remove what the previous full run wrote and this one did not, then record this run's files."""
    manifest = out_dir / MANIFEST
    previous = set(json.loads(manifest.read_text(encoding="utf-8"))) if manifest.is_file() else set()
    for stale in previous - names:
        if _OUR_FILE.fullmatch(stale):  # only names this module produces, never a path
            (out_dir / stale).unlink(missing_ok=True)
    replace_file(manifest, json.dumps(sorted(names), indent=0))


def existing_links(con: duckdb.DuckDBPyConnection, out_dir: Path, href_prefix: str) -> dict[str, AgencyLinks]:
    """Links (``href_prefix/<stem>.html`` / ``.xlsx``) to the feedback files present in ``out_dir``, by agency id,
    for the state report: an agency whose page was not written gets no link rather than a broken one."""
    links = {}
    for (agency_id,) in [*con.execute("SELECT agency_id FROM agencies").fetchall(), (UNASSIGNED,)]:
        stem = agency_file_stem(agency_id)
        if (Path(out_dir) / f"{stem}.html").is_file():
            xlsx = f"{href_prefix}/{stem}.xlsx" if (Path(out_dir) / f"{stem}.xlsx").is_file() else None
            links[agency_id] = AgencyLinks(f"{href_prefix}/{stem}.html", xlsx)
    return links


# ---- HTML additions -------------------------------------------------------------------------------------------


def _missing_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<h2>Periods still missing</h2><p>None: every period you are expected to report is counted.</p>"
    body = "".join(
        f"<tr><td>{escape(metric)}</td><td>{escape(cadence)}</td><td>{escape(periods)}</td>"
        f"<td>{escape(status)}</td><td>{escape(todo)}</td></tr>"
        for metric, cadence, periods, status, todo in _period_runs(rows)
    )
    return ("<h2>Periods still missing</h2><p>Periods you are expected to report (from your reporting settings) "
            "that are not in the state numbers, up to the latest period any agency of the state has reported."
            "</p><table><tr><th>Metric</th><th>Cadence</th><th>Periods</th><th>Status</th><th>What to do</th></tr>"
            f"{body}</table>")


def _workbook_link(name: str) -> str:
    return (f"<p class='todo'>The longer lists are in the workbook <a href=\"{escape(name)}\">{escape(name)}</a>"
            f" (one row per finding, up to {LISTED_PER_RULE:,} per rule, and one per missing period).</p>")


def _period_runs(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """Missing months collapsed into runs (2024-01 to 2024-06): one line per metric, status and cadence."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["metric_key"], row["frequency"], row["starting_month"], row["status"], row["reason"])].append(row)
    lines = []
    for (metric_key, frequency, _, status, reason), group in sorted(groups.items(), key=lambda kv: kv[0][:2]):
        if frequency == "MONTHLY":
            runs = contiguous_ranges(r["period_start"] for r in group)
            periods = ", ".join(f"{a:%Y-%m}" if a == b else f"{a:%Y-%m} to {b:%Y-%m}" for a, b in runs)
        else:
            periods = ", ".join(period_label(r["period_start"], r["period_end"]) for r in group)
        lines.append((_metric_name(group[0]), _cadence(group[0]), periods, _status_text(status, reason),
                      _PERIOD_ACTION[status]))
    return lines


# ---- workbook ---------------------------------------------------------------------------------------------------


def _workbook(title: str, stamp: str, findings: list[dict], rejects: list[dict], missing: list[dict]) -> memoryview:
    """The bytes of an agency's workbook, built in memory: the file writer replaces the file with them whole."""
    workbook_bytes = io.BytesIO()
    reject_rules, check_rules = rule_sections(rejects), rule_sections(findings)
    with XlsxWorkbook(workbook_bytes) as workbook:
        about = [("Agency", title), ("Generated (UTC)", stamp),
                 ("Ingest errors and warnings", listed_total(reject_rules)),
                 ("Failed checks", listed_total(check_rules)),
                 ("Periods still missing", len(missing)),
                 ("How to use", ("Sheet 'To fix': correct each row in your file and send the file again. "
                                 "Errors keep data out of the state numbers; warnings are kept but should be checked. "
                                 "Sheet 'Missing periods': the periods you are expected to send."))]
        workbook.add_sheet("About", ("Item", "Details"), about, widths=(34, 110))
        to_fix = [*_fix_rows("File row", reject_rules, _reject_row, _ingest_rule_title),
                  *_fix_rows("Check", check_rules, _check_row, _check_title)]
        workbook.add_sheet("To fix", _FIX_COLUMNS, to_fix,
                           widths=_FIX_WIDTHS, autofilter=True)
        workbook.add_sheet("Missing periods", _MISSING_COLUMNS, map(_missing_row, missing),
                           widths=_MISSING_WIDTHS, autofilter=True)
    return workbook_bytes.getbuffer()


def _reject_row(r: dict[str, Any]) -> tuple:
    rule = INGEST_RULES.get(r["rule"])
    return ("File row", _severity(r["severity"]), None, None, None, r["path"], r["sheet"], r["row_number"],
            r["column_name"], r["raw_value"], None, _ingest_rule_title(r["rule"]), r["message"],
            rule.fix if rule else None)


def _check_row(f: dict[str, Any]) -> tuple:
    rule = RULES_BY_NAME.get(f["rule"])
    breakdown = ": ".join(x for x in (f["breakdown"], f["category"]) if x) or None
    return ("Check", _severity(f["severity"]), f["metric"], period_text(f["period_start"], f["period_end"]) or None,
            breakdown, f["path"], f["sheet"],
            f["row_number"], "value" if f["row_number"] else None, f["observed"], f["expected"],
            _check_title(f["rule"]), f["message"], rule.remedy if rule else None)


def _fix_rows(kind: str, sections: Mapping[tuple[str, str], list[dict[str, Any]]],
              row: Callable[[dict[str, Any]], tuple], title: Callable[[str], str]) -> Iterator[tuple]:
    """The 'To fix' rows of listed findings (:meth:`~jc_pipeline.lib.validation.report.ByAgency.listed`), rule by
    rule, each rule followed by a row saying how many of its rows are not listed (:data:`LISTED_PER_RULE`)."""
    for (severity, name), section in sections.items():
        yield from map(row, section)
        unlisted = section[0]["rule_rows"] - len(section)
        if unlisted > 0:
            yield (kind, _severity(severity), None, None, None, None, None, None, None, None, None, title(name),
                   f"{unlisted:,} more rows of this rule are not listed here ({len(section):,} of "
                   f"{section[0]['rule_rows']:,} are).",
                   "Fix the rows listed, and the same problem wherever else it is in your files; the next "
                   "feedback lists any rows still to fix.")


def _ingest_rule_title(code: str) -> str:
    rule = INGEST_RULES.get(code)
    return f"{code}: {rule.title}" if rule else code


def _check_title(name: str) -> str:
    rule = RULES_BY_NAME.get(name)
    return rule.title if rule else name


def _missing_row(r: dict[str, Any]) -> tuple:
    return (_metric_name(r), r["metric_key"], r["sector"], _cadence(r),
            period_label(r["period_start"], r["period_end"]), r["period_start"], _last_day(r["period_end"]),
            _status_text(r["status"], r["reason"]),
            _PERIOD_ACTION[r["status"]])


# ---- words ------------------------------------------------------------------------------------------------------


def _severity(severity: str) -> str:
    return {"ERROR": "error", "WARNING": "warning"}.get(severity, severity.lower())


def _metric_name(row: Mapping[str, Any]) -> str:
    metric = load_registry().metrics.get(row["metric_key"])
    return metric.display_name if metric else row["metric_key"]


def _cadence(row: Mapping[str, Any]) -> str:
    if row["frequency"] == "MONTHLY":
        return "monthly"
    if row["starting_month"] == 1:
        return "calendar year"
    return f"fiscal year from {date(2000, row['starting_month'], 1):%B}"


def _status_text(status: str, reason: str | None) -> str:
    text = {"MISSING": "not received", "FAILED_VALIDATION": "failed validation",
            "NOT_COUNTED": "received, not counted"}[status]
    if reason:
        text += f" ({_REASONS.get(reason, reason.lower().replace('_', ' '))})"
    return text


def _last_day(period_end: date) -> date:
    return date.fromordinal(period_end.toordinal() - 1)


if __name__ == "__main__":
    _serve()
