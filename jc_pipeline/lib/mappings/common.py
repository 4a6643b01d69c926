"""Shared pieces of native-extract counting: reading a source lazily, parsing dates, mapping values, findings.

Every record keeps its spreadsheet row number in ``__row`` (header = row 1, first record = row 2). Cells are read
as text, stripped, and empty cells become null.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import fastexcel
import polars as pl

from jc_pipeline.lib.ingest.normalize import FINDING_SCHEMA, fmt
from jc_pipeline.lib.ingest.rules import RULES
from jc_pipeline.lib.mappings.spec import EXCLUDED, SourceSpec, ValueMap

ROW = "__row"
UNMAPPED = "\x00unmapped"
BLANK = "\x00blank"
#: Tried in order when a source gives no ``date_formats``.
DEFAULT_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f",
                        "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y")
#: Rows listed in a grouped finding's message.
ROWS_LISTED = 5


class SourceUnreadable(Exception):
    """The export cannot be read at all (rule F0)."""


@dataclass(frozen=True)
class Context:
    """What every datapoint and finding of one export carries."""

    file_idx: int
    sheet: str
    agency_id: str
    state_code: str | None
    now: datetime
    source: SourceSpec
    headers: dict[str, str]  # logical column -> header as found in the file

    def header(self, logical: str) -> str:
        return self.headers.get(logical) or self.source.columns.get(logical, logical)


def scan(path: Path, data: bytes | None, source: SourceSpec) -> tuple[pl.LazyFrame, list[str], str]:
    """(records as text with ``__row``, the header names, the sheet name for findings)."""
    if source.format == "xlsx":
        try:
            reader = fastexcel.read_excel(data if data is not None else str(path))
            names = reader.sheet_names
            sheet = source.sheet if source.sheet is not None else names[0]
            if sheet not in names:
                raise SourceUnreadable(f"the workbook has no sheet '{sheet}' (it has: {', '.join(names)}); "
                                       f"fix the mapping's sheet or the export")
            frame = reader.load_sheet(sheet, dtypes="string").to_polars()
        except SourceUnreadable:
            raise
        except Exception as exc:  # noqa: BLE001 - calamine raises many types for bad workbooks
            raise SourceUnreadable(f"the workbook cannot be read ({type(exc).__name__}); save it again as .xlsx"
                                   ) from None
        frame = frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.Int64))
        return frame.lazy(), [c for c in frame.columns if c != ROW], sheet
    options = dict(separator=source.delimiter, infer_schema=False, row_index_name=ROW, row_index_offset=2,
                   raise_if_empty=False)
    try:
        encoding = {"utf-8": "utf8", "utf8": "utf8", "utf-8-sig": "utf8"}.get(source.encoding)
        if encoding is not None:
            lazy = pl.scan_csv(path, encoding="utf8", glob=False, **options)  # streamed: bounded memory for big exports
        else:  # other encodings are transcoded in memory first
            raw = data if data is not None else path.read_bytes()
            text = raw.decode(source.encoding)
            lazy = pl.read_csv(io.BytesIO(text.encode()), **options).lazy()
        names = [n for n in lazy.collect_schema().names() if n != ROW]
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as exc:
        raise SourceUnreadable(f"the CSV cannot be read as {source.encoding} with delimiter "
                               f"'{source.delimiter}' ({type(exc).__name__}); check the mapping's encoding and "
                               f"delimiter") from None
    lazy = lazy.with_columns(pl.col(ROW).cast(pl.Int64))
    return lazy, names, path.name


def select_columns(lazy: pl.LazyFrame, names: list[str], wanted: dict[str, str]) -> tuple[pl.LazyFrame, dict[str, str]]:
    """Logical columns (stripped text, empty = null) for the headers found; (frame, logical -> found header)."""
    by_key = {}
    for name in names:
        by_key.setdefault(name.strip().casefold(), name)
    found = {logical: by_key[h.casefold()] for logical, h in wanted.items() if h.casefold() in by_key}
    cells = {logical: pl.col(header).str.strip_chars() for logical, header in found.items()}
    lazy = lazy.select(ROW, *(pl.when(c.str.len_bytes() > 0).then(c).alias(n) for n, c in cells.items()))
    if found:  # blank records are skipped and not counted, like blank rows of bulk uploads
        lazy = lazy.filter(pl.any_horizontal(pl.col(n).is_not_null() for n in found))
    return lazy, found


def parse_date(column: str, formats: tuple[str, ...]) -> pl.Expr:
    """Datetime of a text column (null when blank or unparsable)."""
    cell = pl.col(column)
    return pl.coalesce([cell.str.to_datetime(f, strict=False, time_unit="us") for f in formats or
                        DEFAULT_DATE_FORMATS])


def month_of(moment: pl.Expr) -> pl.Expr:
    return moment.dt.date().dt.truncate("1mo")


def map_values(value_map: ValueMap) -> pl.Expr:
    """Member NAME, :data:`EXCLUDED`, :data:`UNMAPPED` or :data:`BLANK` (empty cell without a blank member)."""
    cell = pl.col(value_map.column)
    mapped = cell.str.to_lowercase().replace_strict(list(value_map.values), list(value_map.values.values()),
                                                     default=None, return_dtype=pl.String)
    return (pl.when(cell.is_null()).then(pl.lit(value_map.blank or BLANK))
            .when(mapped.is_not_null()).then(mapped)
            .otherwise(pl.lit(value_map.default or UNMAPPED)))


def is_problem(category: pl.Expr) -> pl.Expr:
    return category.is_in([UNMAPPED, BLANK])


def is_excluded(category: pl.Expr) -> pl.Expr:
    return category == EXCLUDED


def grouped_finding(frame: pl.LazyFrame, flag: str, raw: str | None, ctx: Context, rule: str, column: str,
                    message: str) -> pl.LazyFrame:
    """One finding per distinct raw value of the flagged records: on its first row, with its count and rows.

    ``message`` may use ``{raw}``, ``{n}``, ``{rows}`` and ``{column}``.
    """
    raw_expr = pl.col(raw) if raw is not None else pl.lit(None, pl.String)
    grouped = frame.filter(pl.col(flag)).select(ROW, __raw=raw_expr).group_by("__raw").agg(
        first=pl.col(ROW).min(), n=pl.len(),
        rows=pl.col(ROW).sort().head(ROWS_LISTED).cast(pl.String).str.join(", "))
    header = ctx.header(column)
    pieces, values = [], []
    rest = message.replace("{column}", header.replace("{", "(").replace("}", ")"))
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        pieces.append(before)
        values.append({"raw": pl.col("__raw").fill_null("(empty)"), "n": pl.col("n"),
                       "rows": pl.when(pl.col("n") > ROWS_LISTED).then(pl.col("rows") + pl.lit(", ..."))
                       .otherwise(pl.col("rows"))}[name])
    template = "{}".join([*pieces, rest])
    return grouped.select(
        file_idx=pl.lit(ctx.file_idx, pl.Int64), sheet=pl.lit(ctx.sheet), row_number=pl.col("first"),
        column_name=pl.lit(header), raw_value=pl.col("__raw"), rule=pl.lit(rule),
        severity=pl.lit(RULES[rule].severity), message=fmt(template, *values),
    ).cast(FINDING_SCHEMA)


def single_finding(ctx: Context, row: int | None, column: str | None, raw: str | None, rule: str, message: str
                   ) -> pl.DataFrame:
    return pl.DataFrame([(ctx.file_idx, ctx.sheet, row, column, raw, rule, RULES[rule].severity, message)],
                        schema=FINDING_SCHEMA, orient="row")


def period_bounds(ctx: Context) -> tuple[date, date]:
    """Months that may be emitted: from 2000-01 (or the source's period.from) to the ingest month (or period.to)."""
    first = max(date(2000, 1, 1), ctx.source.period_from or date(2000, 1, 1))
    this_month = ctx.now.date().replace(day=1)
    last = min(this_month, ctx.source.period_to) if ctx.source.period_to else this_month
    return first, last
