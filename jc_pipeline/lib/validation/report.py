"""The data-quality report's index and the agency pages' findings: static HTML (no script, no network).

The index (:func:`write_quality_report`) lists the agencies with findings and links each to its page, which the
agency feedback writes (:mod:`jc_pipeline.lib.feedback`, from :func:`agency_body`). Each agency page lists, per
rule, what failed and where (file, sheet, row), the rule in plain words and what to do, followed by the rows ingest
rejected or warned about (``rejected_rows``), since agencies fix both the same way: by correcting and re-sending
their files. Every value from the warehouse is HTML-escaped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from jc_pipeline.lib.page_digests import DIGESTS_FILE
from jc_pipeline.lib.paths import replace_file
from jc_pipeline.lib.periods import period_label
from jc_pipeline.lib.registry import load_registry
from jc_pipeline.lib.validation.rules import ERROR, RULES, RULES_BY_NAME, WARNING

#: Rows shown per rule (or per ingest rule) on an agency page; the rest are counted, not listed.
MAX_ROWS_PER_SECTION = 200
#: Rows an agency's feedback workbook lists per rule (per check, or per ingest rule, and severity); the rest are
#: counted, not listed. Whatever an agency sends (two million rows with a word in the value column), its workbook
#: stays far below Excel's 1,048,576 rows, and a publish turns at most this many rows per agency and rule into
#: Python objects.
LISTED_PER_RULE = 5_000
UNASSIGNED = "(no agency)"
#: The agency pages versions before 2026-12-05 wrote beside the index (now the feedback's pages hold them).
_OLD_PAGES = "agency-*.html"

# Breakdowns are shown as agencies write them: the upload column and the category's display value. A dimension has
# one upload column per metric (the registry's); min() rather than any_value() keeps that true by construction.
# The first columns are the order the rows are listed in (_LISTED_SQL).
FINDINGS_SQL = """
SELECT v.agency_id, v.severity, v.check_name AS rule, v.metric_key, v.period_start, f.path, v.sheet, v.row_number,
       coalesce(d.label, v.metric_key) AS metric, v.period_end, v.observed, v.expected, v.message,
       coalesce(b.column_name, v.dimension) AS breakdown, coalesce(c.display_name, v.category) AS category
FROM validation_results AS v
LEFT JOIN metric_labels AS d ON d.metric_key = v.metric_key
LEFT JOIN source_files AS f ON f.file_id = v.file_id
LEFT JOIN (SELECT metric_key, dimension, min(column_name) AS column_name
           FROM metric_categories GROUP BY ALL) AS b ON b.metric_key = v.metric_key AND b.dimension = v.dimension
LEFT JOIN metric_categories AS c
    ON c.metric_key = v.metric_key AND c.dimension = v.dimension AND c.category = v.category
WHERE NOT v.passed
"""

REJECTS_SQL = """
SELECT f.agency_id, r.severity, r.rule, f.path, r.sheet, r.row_number, r.column_name, r.raw_value, r.message
FROM rejected_rows AS r
JOIN current_source_files AS f ON f.file_id = r.file_id  -- a replaced version's rows are no longer to fix
WHERE f.status <> 'WITHDRAWN'  -- nor a withdrawn one's (withdrawals.csv)
"""

# The first rows of each agency's rule (and severity), in the order of their columns (a row compares as its
# columns, left to right), each with its rule's count of rows (rule_rows); how many: ByAgency.listed.
_LISTED_SQL = """
SELECT *, count(*) OVER (PARTITION BY agency_id, severity, rule) AS rule_rows
FROM agency_rows
QUALIFY row_number() OVER (PARTITION BY agency_id, severity, rule ORDER BY agency_rows)
        <= getvariable('listed_per_rule')
ORDER BY agency_rows
"""


def write_quality_report(con: duckdb.DuckDBPyConnection, out_dir: Path, *, generated_at: datetime,
                         agency_pages: Mapping[str, str], found: Findings | None = None) -> Path:
    """Write ``out_dir/index.html`` and return its path: the agencies with findings, their errors and warnings of
    checks and of ingest, each linked to its page (``agency_pages``: href by agency id, an agency without one
    listed unlinked), and the catalogue of checks in plain words.

    The pages are the agency feedback's (:mod:`jc_pipeline.lib.feedback`): one page per agency with these findings
    and its missing periods. Findings are the current failing rows of ``validation_results`` and all of
    ``rejected_rows`` (``found``: :meth:`Findings.of` the same warehouse when the caller has it already). The
    agency pages an earlier version wrote into ``out_dir`` (the same findings, without the missing periods) are
    removed, so no stale copy stays beside the index.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = dict(con.execute("SELECT agency_id, agency_name FROM agencies").fetchall())
    if found is None:
        found = Findings.of(con)
    findings, rejects = found.checks, found.rejects
    if generated_at.tzinfo is not None:  # naive times are taken as UTC already
        generated_at = generated_at.astimezone(UTC)
    summary = [(agency, agency_pages.get(agency), findings.counts.get(agency), rejects.counts.get(agency))
               for agency in sorted(set(findings.counts) | set(rejects.counts), key=lambda a: (a == UNASSIGNED, a))]
    index = out_dir / "index.html"
    replace_file(index, render_page("Data quality report",
                                    index_body(summary, names, generated_at.strftime("%Y-%m-%d %H:%M"))))
    for old in [*out_dir.glob(_OLD_PAGES), out_dir / DIGESTS_FILE]:
        old.unlink(missing_ok=True)
    return index


# ---- queries ----------------------------------------------------------------------------------------------------


def records(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a query as dicts (through Arrow: many times faster than DuckDB's own Python conversion)."""
    return con.sql(sql, params=params).to_arrow_table().to_pylist()


def grouped(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by agency (rows without one under UNASSIGNED)."""
    by_agency: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in rows:
        by_agency[record["agency_id"] or UNASSIGNED].append(record)
    return by_agency


@dataclass(frozen=True)
class AgencyRows:
    """One agency's rows of a table: a digest that any change of any row changes, and how many rows there are
    (``errors`` and ``warnings`` by their ``severity``; rows without one count in ``total`` only)."""

    digest: str
    total: int
    errors: int
    warnings: int


# A digest per row (of its JSON: every column, NULLs included), and per agency one of its rows' digests sorted, so
# it says whether the rows changed, not the order ties came in (sorting the rows' digests costs half of sorting
# the rows).
_AGENCY_ROWS_SQL = """
SELECT agency_id, md5(string_agg(row_digest, '' ORDER BY row_digest)) AS digest, count(*) AS total,
       count(*) FILTER (WHERE json_extract_string(row_json, 'severity') = 'ERROR') AS errors,
       count(*) FILTER (WHERE json_extract_string(row_json, 'severity') = 'WARNING') AS warnings
FROM (SELECT agency_id, row_json, md5(CAST(row_json AS VARCHAR)) AS row_digest
      FROM (SELECT agency_id, to_json(agency_rows) AS row_json FROM agency_rows))
GROUP BY agency_id
"""


@dataclass(frozen=True)
class ByAgency:
    """The rows of a table with an ``agency_id`` column (findings, rejected rows, missing periods) kept as Arrow,
    with per agency its :class:`AgencyRows` (``counts``, UNASSIGNED for rows without an agency) computed in one
    DuckDB query: a report asks for the rows, as dicts, of the agencies whose pages it rewrites only. A night that
    changes a few agencies of thousands turns a few agencies' rows into Python objects, not every agency's."""

    rows: pa.Table
    counts: dict[str, AgencyRows]

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, rows: pa.Table) -> ByAgency:
        """Every row of ``rows`` listed."""
        return cls(rows, _agency_rows(con.from_arrow(rows)))

    @classmethod
    def listed(cls, con: duckdb.DuckDBPyConnection, sql: str) -> ByAgency:
        """The rows of the query ``sql`` (an ``agency_id``, ``severity`` and ``rule`` of each), at most
        :data:`LISTED_PER_RULE` of each agency's rule and severity, each with its rule's count of rows
        (``rule_rows``); ``counts`` (and their digests) are of every row. The query runs twice, in DuckDB: its rows
        are never all in this process."""
        relation = con.sql(sql)
        con.execute("SET VARIABLE listed_per_rule = ?", [LISTED_PER_RULE])
        return cls(relation.query("agency_rows", _LISTED_SQL).to_arrow_table(), _agency_rows(relation))

    def digest(self, agency: str) -> str | None:
        """The digest of the agency's rows (None: it has none), for
        :class:`~jc_pipeline.lib.page_digests.PageDigests`."""
        rows = self.counts.get(agency)
        return rows.digest if rows else None

    def rows_of(self, agencies: Collection[str]) -> dict[str, list[dict[str, Any]]]:
        """The rows of ``agencies`` by agency (as :func:`grouped`), in the table's order."""
        wanted = list(agencies)
        if UNASSIGNED in agencies:
            wanted += [None, ""]  # the rows grouped() files under UNASSIGNED
        chosen = pc.is_in(self.rows["agency_id"], value_set=pa.array(wanted, pa.string()), skip_nulls=False)
        return grouped(self.rows.filter(chosen).to_pylist())


def _agency_rows(relation: duckdb.DuckDBPyRelation) -> dict[str, AgencyRows]:
    return {agency or UNASSIGNED: AgencyRows(*counts)
            for agency, *counts in relation.query("agency_rows", _AGENCY_ROWS_SQL).fetchall()}


def rule_sections(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Listed rows (:meth:`ByAgency.listed`) by severity and rule, in the order they come."""
    sections: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sections[(row["severity"], row["rule"])].append(row)
    return sections


def listed_total(sections: Mapping[tuple[str, str], list[dict[str, Any]]]) -> int:
    """How many rows the listed rows of ``sections`` (:func:`rule_sections`) stand for: each rule's count, not the
    rows listed."""
    return sum(section[0]["rule_rows"] for section in sections.values())


@dataclass(frozen=True)
class Findings:
    """A warehouse's failed checks and rejected rows by agency: what the data-quality report and the agency
    feedback both list, so a publish computes them once for both (0.5 s at 3,000 agencies)."""

    checks: ByAgency
    rejects: ByAgency

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> Findings:
        # Metrics named as the findings' messages name them (Registry.metric_labels: with the sector when shared).
        labels = load_registry().metric_labels()
        con.register("metric_labels", pa.table({"metric_key": list(labels), "label": list(labels.values())}))
        try:
            checks = ByAgency.listed(con, FINDINGS_SQL)
        finally:
            con.unregister("metric_labels")
        return cls(checks, ByAgency.listed(con, REJECTS_SQL))


# ---- pages ------------------------------------------------------------------------------------------------------


def index_body(summary: Sequence[tuple[str, str | None, AgencyRows | None, AgencyRows | None]],
               names: dict[str, str], stamp: str) -> str:
    """The index of agency pages: per agency (``summary``: agency, its page or None, its findings and its rejected
    rows) the errors and warnings of checks and of ingest."""
    rows = []
    for agency, page, findings, rejects in summary:
        counts = [n for found in (findings, rejects) for n in ((found.errors, found.warnings) if found else (0, 0))]
        title = escape(agency_title(agency, names))
        rows.append(
            (f'<tr><td><a href="{escape(page)}">{title}</a></td>' if page else f"<tr><td>{title}</td>")
            + "".join(f'<td class="num">{n}</td>' for n in counts)
            + f"<td>{status_badge(counts[0] + counts[2], counts[1] + counts[3])}</td></tr>"
        )
    clean = len(set(names) - {s[0] for s in summary})
    table = (
        "<table><tr><th>Agency</th><th>Check errors</th><th>Check warnings</th><th>Ingest errors</th>"
        "<th>Ingest warnings</th><th>Status</th></tr>" + "".join(rows) + "</table>"
        if rows else "<p>No findings: every agency's data passed every check.</p>"
    )
    legend = "".join(
        f'<tr><td><span class="badge {r.severity}">{r.severity.lower()}</span></td><td>{escape(r.title)}</td>'
        f"<td>{escape(r.description)}</td><td>{escape(r.remedy)}</td></tr>"
        for r in RULES
    )
    return (
        f"<h1>Data quality report</h1><p class='meta'>Generated {escape(stamp)} UTC. "
        f"{len(summary)} agencies have findings; {clean} agencies on the roster have none.</p>"
        "<p><b>Errors</b> keep the affected metric and period out of the state totals until the agency sends "
        "corrected data. <b>Warnings</b> are kept in the totals but should be checked.</p>"
        f"<h2>Agencies</h2>{table}"
        "<h2>The checks</h2><table><tr><th>Severity</th><th>Check</th><th>What it means</th>"
        f"<th>What to do</th></tr>{legend}</table>"
    )


def agency_body(agency: str, names: dict[str, str], findings: list[dict[str, Any]],
                 rejects: list[dict[str, Any]], stamp: str) -> str:
    parts = [
        f"<p class='meta'><a href='index.html'>All agencies</a> · generated {escape(stamp)} UTC</p>",
        f"<h1>{escape(agency_title(agency, names))}</h1>",
    ]
    for severity, heading, intro in (
        (ERROR, "Errors", "These values are left out of the state totals until you send corrected data."),
        (WARNING, "Warnings", "These values are used, but please check them."),
    ):
        by_rule = {name: rows for (of, name), rows in rule_sections(findings).items() if of == severity}
        if by_rule:
            parts.append(f"<h2>{heading}</h2><p>{intro}</p>")
            parts.extend(_rule_section(name, severity, rows) for name, rows in by_rule.items())
    if rejects:
        parts.append("<h2>Rows from your files that could not be loaded</h2>"
                     "<p>Rows marked <i>error</i> were not loaded; fix them in the file and send it again. Rows "
                     "marked <i>warning</i> were loaded.</p>")
        parts.extend(_reject_section(rule, severity, rows)
                     for (severity, rule), rows in sorted(rule_sections(rejects).items()))
    if not findings and not rejects:
        parts.append("<p>Nothing to fix.</p>")
    return "".join(parts)


def _rule_section(name: str, severity: str, rows: list[dict[str, Any]]) -> str:
    rule = RULES_BY_NAME.get(name)
    title = rule.title if rule else name
    head = (
        f'<div class="rule {severity}"><h3><span class="badge {severity}">{severity.lower()}</span> '
        f"{escape(title)} <span class='meta'>({rows[0]['rule_rows']})</span></h3>"
    )
    if rule:
        head += f"<p>{escape(rule.description)}</p><p class='todo'><b>What to do:</b> {escape(rule.remedy)}</p>"
    header = ("<tr><th>Metric</th><th>Period</th><th>Breakdown</th><th>File</th><th>Sheet</th><th>Row</th>"
              "<th>Found</th><th>Expected</th><th>Details</th></tr>")
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            escape(r["metric"] or ""), escape(period_text(r["period_start"], r["period_end"])),
            escape(": ".join(x for x in (r["breakdown"], r["category"]) if x)),
            escape(r["path"] or ""), escape(r["sheet"] or ""), _cell(r["row_number"]),
            _cell(r["observed"]), _cell(r["expected"]), escape(r["message"] or ""),
        )) + "</tr>"
        for r in rows[:MAX_ROWS_PER_SECTION]
    )
    return head + f"<table>{header}{body}</table>{_more(rows[0]['rule_rows'])}</div>"


def _reject_section(rule: str, severity: str, rows: list[dict[str, Any]]) -> str:
    head = (f'<div class="rule {severity}"><h3><span class="badge {severity}">{severity.lower()}</span> '
            f"<code>{escape(rule)}</code> <span class='meta'>({rows[0]['rule_rows']})</span></h3>")
    header = ("<tr><th>File</th><th>Sheet</th><th>Row</th><th>Column</th><th>Value</th>"
              "<th>Problem and what to do</th></tr>")
    body = "".join(
        "<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            escape(r["path"] or ""), escape(r["sheet"] or ""), _cell(r["row_number"]),
            escape(r["column_name"] or ""), _cell(r["raw_value"]), escape(r["message"] or ""),
        )) + "</tr>"
        for r in rows[:MAX_ROWS_PER_SECTION]
    )
    return head + f"<table>{header}{body}</table>{_more(rows[0]['rule_rows'])}</div>"


# ---- helpers ----------------------------------------------------------------------------------------------------


def render_page(title: str, body: str) -> str:
    return _page_template().substitute(title=escape(title), body=body)


@lru_cache(maxsize=1)  # read once per process, not once per page (thousands per publish)
def _page_template() -> Template:
    return Template(resources.files(__package__).joinpath("report.html").read_text(encoding="utf-8"))


def agency_title(agency: str, names: dict[str, str]) -> str:
    if agency == UNASSIGNED:
        return "Files and data not attributed to an agency"
    name = names.get(agency)
    return f"{name} ({agency})" if name else f"{agency} (not on the roster)"


def status_badge(errors: int, warnings: int) -> str:
    if errors:
        return f'<span class="badge ERROR">{errors} to fix</span>'
    if warnings:
        return '<span class="badge WARNING">check warnings</span>'
    return '<span class="badge OK">ok</span>'


@lru_cache(maxsize=4096)  # called per finding row; a state has a few hundred distinct periods
def period_text(start: date | None, end: date | None) -> str:
    """A period as agencies say it (``2024-03``, ``FY2024``), or its start date when it has no end."""
    if start and end:
        return period_label(start, end)
    return start.isoformat() if start else ""


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _more(total: int) -> str:
    if total <= MAX_ROWS_PER_SECTION:
        return ""
    return f"<p class='more'>… and {total - MAX_ROWS_PER_SECTION} more of the same kind.</p>"
