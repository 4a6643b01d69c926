"""Vectorized parsing of the year, month and value cells (Polars expressions over text columns).

Every parser returns the parsed value and a *problem* column: null when the cell is fine, otherwise a short
problem code that :mod:`normalize` turns into a rule and a message quoting the raw cell.

Decisions:

* ``year``: a whole number ("2023", or "2023.0" as old .xls files store it), or ``YYYY-YYYY`` with consecutive
  years naming a fiscal year explicitly: start year = year the fiscal year starts, end year = the year label
  (spec §5.4 end-year convention), so "2022-2023" with a July start is 2022-07-01..2023-07-01. A range is only
  accepted for annual rows of a metric on a non-calendar year (see :mod:`normalize`).
* ``month``: 1-12 ("01", "1.0" allowed) or an English month name, full or abbreviated, any case, with a
  deterministic table of misspellings (``synonyms.yaml``). Excel dates (serial numbers, "2021-01-01") are R4.
* ``value``: plain numbers, thousands separators ("1,000", "1,000.50"), decimals, exponent notation; a leading
  "$" only for dollar metrics. Negative numbers, text ("N/A") and blanks are rejected. Counts are not rounded.
  In a CSV separated by semicolons, as Excel writes CSVs in languages with a decimal comma, one group of three
  digits after a point or comma ("1.250", "1,250") is rejected: it means 1250 there and 1.25 or 1250 elsewhere,
  and the file does not say which (:func:`ambiguous_number`).
"""

from __future__ import annotations

import polars as pl

_WHOLE = r"^\d+(\.0+)?$"
_YEAR = r"^(\d{4})(?:\.0+)?$"
_YEAR_RANGE = r"^(\d{4})\s*[-\u2013/]\s*(\d{4})$"
_SLASHED_DATE = r"^\d{1,2}/\d{1,2}/\d{2,4}$"
_DATE_TEXT = r"^\d{4}-\d{1,2}(-\d{1,2})?([ T].*)?$|" + _SLASHED_DATE
#: Excel serial numbers from this one on are dates (367 = 1901-01-01); smaller numbers are just wrong months.
_FIRST_DATE_SERIAL = 367
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
_DOLLAR = r"^([+-]?)\s*\$\s*"
# One group of three digits after a comma, or after a point that follows more than a zero ("0.125" is a decimal
# either way).
_ONE_GROUP = r"^[+-]?(\$\s*)?(\d{1,3},\d{3}|[1-9]\d{0,2}\.\d{3})$"
# A date cell read as text, where a year was expected ("2022-23" is a fiscal year written short, not a date).
_YEAR_DATE = r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$|" + _SLASHED_DATE

YEAR_MIN = 1600


def parse_year(cell: pl.Expr, current_year: int) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(label year Int32, is_range Boolean, problem String) for a stripped text cell (null = blank).

    Problems: ``empty``, ``format`` (``date`` when the cell is a date), ``bounds`` (before 1600, or a label after
    next year), ``range`` (years not consecutive). The label is the year a period ends in, so a fiscal year still
    running may be labelled next year (July 2026 - June 2027 is 2027, or 2026-2027): both spellings pass here, and
    a period starting after the ingest day is rejected by its start (R13). The reference bounds the year at the
    current one.
    """
    single = cell.str.extract(_YEAR, 1).cast(pl.Int32)
    start = cell.str.extract(_YEAR_RANGE, 1).cast(pl.Int32)
    end = cell.str.extract(_YEAR_RANGE, 2).cast(pl.Int32)
    first = pl.coalesce(single, start)
    label = pl.coalesce(single, end)
    problem = (
        pl.when(cell.is_null()).then(pl.lit("empty"))
        .when(first.is_null() & cell.str.contains(_YEAR_DATE)).then(pl.lit("date"))
        .when(first.is_null()).then(pl.lit("format"))
        .when((first < YEAR_MIN) | (label > current_year + 1)).then(pl.lit("bounds"))
        .when(start.is_not_null() & (end != start + 1)).then(pl.lit("range"))
    )
    return label, start.is_not_null(), problem


def parse_month(cell: pl.Expr, names: dict[str, int]) -> tuple[pl.Expr, pl.Expr]:
    """(month Int8, problem String) for a stripped text cell; ``names`` maps month-name keys to 1..12.

    Problems: ``range`` (a number outside 1-12, R2), ``text`` (unknown name, R3), ``date`` (a date cell, R4).
    A blank cell is neither a month nor a problem (the row is annual).
    """
    key = cell.str.to_lowercase().str.replace_all(r"[\s.]", "")
    number = pl.when(cell.str.contains(_WHOLE)).then(cell.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False))
    named = key.replace_strict(names, default=None, return_dtype=pl.Int8)
    month = pl.when(number.is_between(1, 12)).then(number.cast(pl.Int8)).otherwise(named)
    problem = (
        pl.when(cell.is_null() | month.is_not_null()).then(None)
        .when(cell.str.contains(_DATE_TEXT) | (number >= _FIRST_DATE_SERIAL)).then(pl.lit("date"))
        .when(number.is_not_null()).then(pl.lit("range"))
        .otherwise(pl.lit("text"))
    )
    return month, problem


def plain_number(cell: pl.Expr) -> pl.Expr:
    """Fast path for cells that are plain numbers (almost all of them): the number, null when the cell is not
    one (:func:`plain_problem` says why)."""
    return cell.cast(pl.Float64, strict=False)


def plain_problem(cell: pl.Expr, number: pl.Expr) -> pl.Expr:
    """The problem of the fast path, given ``number`` = :func:`plain_number` of ``cell`` already computed as a
    column (Polars evaluates an expression once per use in a when/then chain: the cast would run four times).

    The problem is ``slow`` when the cell is not a plain number; :func:`parse_value` then decides (it costs
    several regular expressions per cell, so it only sees those cells, each distinct one once).
    """
    return (
        pl.when(cell.is_null()).then(pl.lit("empty"))
        .when(number.is_null()).then(pl.lit("slow"))
        .when(number.is_nan() | number.is_infinite()).then(pl.lit("format"))
        .when(number < 0).then(pl.lit("negative"))
    )


def parse_value(cell: pl.Expr, is_money: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(value Float64, problem String) for a stripped text cell.

    Problems: ``empty``, ``format`` (not a number; ``dash`` for a dash alone, Excel's accounting zero), ``dollar``
    (a "$" on a non-money metric), ``negative``.
    """
    has_dollar = cell.str.contains(_DOLLAR)
    text = cell.str.replace(_DOLLAR, "${1}")
    plain = text.str.contains(_PLAIN_NUMBER)
    grouped = text.str.contains(_THOUSANDS)
    number = (
        pl.when(plain).then(text)
        .when(grouped).then(text.str.replace_all(",", "", literal=True))
        .cast(pl.Float64, strict=False)
    )
    problem = (
        pl.when(cell.is_null()).then(pl.lit("empty"))
        .when(cell == "-").then(pl.lit("dash"))
        .when(number.is_null() | number.is_infinite()).then(pl.lit("format"))
        .when(has_dollar & ~is_money).then(pl.lit("dollar"))
        .when(number < 0).then(pl.lit("negative"))
    )
    return number, problem


def ambiguous_number(cell: pl.Expr) -> pl.Expr:
    """Whether a stripped text cell of a CSV separated by semicolons is a number whose meaning depends on the
    language it was written in: one group of three digits after a point or a comma ("1.250" is 1250 where Excel
    writes 1.250,5, and 1.25 elsewhere; "0.125" is a decimal either way)."""
    return cell.str.contains(_ONE_GROUP)
