"""The ingest rule catalogue: every finding ingest can write to ``rejected_rows``, with a stable code.

Codes follow the reference implementation's numbering where one exists (spec §6.1-§6.3: F1-F6, R1-R10, P1, P2,
P4) and extend it where our pipeline decides more (F0, F7, F8, F9, R11-R14, T1, M1, M2, C1, and N1-N6 for
agency-native extracts). A code never changes
meaning; new checks get new codes. ``docs/rules.md`` documents the same table (a test keeps them in sync).

Severity contract (``rejected_rows.severity``): ``ERROR`` = the row was not loaded; ``WARNING`` = the row was
loaded and the finding is advice. Sheet-level warnings are written once, on the sheet's header row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

ERROR = "ERROR"
WARNING = "WARNING"


@dataclass(frozen=True)
class Rule:
    """One ingest rule: ``code`` (stable), ``severity``, a short ``title`` and ``fix`` (what the agency does)."""

    code: str
    severity: str
    title: str
    fix: str


_RULES = (
    # --- file level: the whole file (status UNREADABLE) or every data row of it -----------------------------
    Rule("F0", ERROR, "File cannot be read",
         "Save the file again as .xlsx (Excel Workbook) or CSV UTF-8, without a password, and deliver it again."),
    Rule("F1", ERROR, "Invalid file type",
         "Only .xlsx, .xls and .csv files are read; export the data in one of these formats."),
    Rule("F8", ERROR, "File in the wrong inbox folder",
         "Deliver files to inbox/<agency_id>/<SECTOR>/ where agency_id is in agencies.csv and SECTOR is one of "
         "the agency's sectors."),
    Rule("F10", WARNING, "Same file as another agency's",
         "Check that the file holds this agency's own numbers; if it is the other agency's, withdraw it "
         "(withdrawals.csv) and deliver this agency's."),
    # --- sheet level: every data row of the sheet is rejected with the rule ---------------------------------
    Rule("F2", ERROR, "Invalid sheet name",
         "Rename the sheet to one of the sheet names of the sector (see the message), or delete the sheet."),
    Rule("F3", ERROR, "Invalid file name for CSV",
         "Name the CSV file after the sheet it holds (e.g. arrests.csv, arrests_by_type.csv)."),
    Rule("F4", ERROR, "Missing column",
         "Add the missing column to the header row (the first row that is not empty: delete any title rows above "
         "your column names) and fill it in."),
    Rule("F5", ERROR, "Empty column", "Fill in the column on every row, or delete the rows you cannot fill."),
    Rule("F6", ERROR, "Unexpected column",
         "Delete the column, or move its data to the sheet where it belongs (see the expected columns)."),
    Rule("F7", ERROR, "Duplicate column", "Keep one column with this name and delete the other."),
    Rule("F4m", WARNING, "Missing 'month' column",
         "The metric is reported monthly; the rows were stored as annual values, which the state numbers leave "
         "out while the metric is set to monthly. Add a month column if the data is monthly, or set the metric "
         "to annual in metric_settings.csv."),
    Rule("F5m", WARNING, "Empty 'month' column",
         "The metric is reported monthly; the rows were stored as annual values, which the state numbers leave "
         "out while the metric is set to monthly. Fill in the months if the data is monthly, or set the metric "
         "to annual in metric_settings.csv."),
    Rule("F6m", WARNING, "Unexpected 'month' column",
         "The metric is reported annually; rows with a month were stored as monthly values, which the state "
         "numbers leave out while the metric is set to annual. Delete the month column if the data is annual, "
         "or set the metric to monthly in metric_settings.csv."),
    Rule("F9", WARNING, "Column without a header",
         "The column's cells were not read (a column without a header is not data). Give it the header of the "
         "data it holds, or delete it if it holds notes."),
    # --- row level: the row is rejected ----------------------------------------------------------------------
    Rule("R1", ERROR, "Invalid 'year' value",
         "Write the year as a whole number (2023), or a fiscal year as two consecutive years (2022-2023)."),
    Rule("R2", ERROR, "Invalid 'month' value", "Write the month as a number from 1 to 12 or its English name."),
    Rule("R3", ERROR, "Month not recognized", "Write the month as a number from 1 to 12 or its English name."),
    Rule("R4", ERROR, "Month is a date",
         "The cell holds a date; type the month number (1-12) or its name as plain text instead."),
    Rule("R5", ERROR, "Invalid 'system' value",
         "Write one of the agency's supervision systems (SUPERVISION, PAROLE, PROBATION, PRETRIAL_SUPERVISION, "
         "OTHER_SUPERVISION) in the system column."),
    Rule("R6", ERROR, "Invalid 'agency' value",
         "Write the name or id of one of your child agencies, as in agencies.csv."),
    Rule("R7", ERROR, "Invalid 'value'",
         "Write a number of zero or more (1000 or 1000.5). Delete rows you have no data for."),
    Rule("R8", ERROR, "Invalid 'metric' value", "Write one of the metric names listed in the message."),
    Rule("R9", ERROR, "Invalid 'breakdown_category' value",
         "Write one of the breakdown columns of the metric listed in the message, or leave both breakdown "
         "columns empty for the total."),
    Rule("R10", ERROR, "Category not recognized", "Write one of the categories listed in the message."),
    Rule("R11", ERROR, "Total in a breakdown column",
         "Totals belong on the aggregate sheet (e.g. arrests), not in a breakdown; move the row there."),
    Rule("R12", ERROR, "Ambiguous category", "Write the full category name so it names exactly one category."),
    Rule("R13", ERROR, "Period out of range",
         "Periods must start on or after 2000-01-01 and not after the day the file was ingested; check the "
         "year and month."),
    Rule("R14", ERROR, "Month missing among monthly rows",
         "Write the month on every row: a merged month cell, or a month written once above its categories, leaves "
         "the rows below it empty."),
    Rule("T1", ERROR, "Template hint row",
         "Delete the template's hint row (the one listing the allowed values in brackets)."),
    Rule("M1", WARNING, "Month missing on a monthly metric",
         "The row was stored as an annual value; fill in the month if the value is for one month."),
    Rule("M2", WARNING, "Month given for an annual metric",
         "The row was stored as a monthly value; leave the month empty if the value is for the whole year."),
    Rule("C1", WARNING, "Legacy category mapped",
         "The category is no longer collected; the value was stored under the category named in the message."),
    Rule("C2", WARNING, "Sub-category summed into Other",
         "Bulk uploads keep an 'Other' category whole: the sub-categories of a period were added into it, unless "
         "the file gives the 'Other' row itself, which then counts alone. Nothing to do if that is right."),
    # --- period level ----------------------------------------------------------------------------------------
    Rule("P1", ERROR, "Too many rows",
         "Keep a single row per period and category; every row of the period was rejected until then."),
    Rule("P2", WARNING, "Breakdown total mismatch",
         "Check that the breakdown adds up to the total; both were stored as given."),
    # --- agency-native extracts (mappings/<agency_id>.yaml, docs/mappings.md) -----------------------------
    Rule("N1", ERROR, "Invalid mapping file",
         "Fix mappings/<agency_id>.yaml as the message says (file, key path, problem); the next run reads the "
         "agency's exports again with the fixed mapping, without a new delivery."),
    Rule("N2", ERROR, "Column missing from the export",
         "Add the column to the export, or correct its header under 'columns' in the mapping file."),
    Rule("N3", ERROR, "Value has no mapping",
         "Add the value under the column's 'values' in the mapping file (a member name, or null to leave such "
         "records out), or give a 'default'."),
    Rule("N4", ERROR, "Date does not parse",
         "Fix the dates on the listed rows, or add the export's date format under 'date_formats'."),
    Rule("N5", ERROR, "Date out of range",
         "Events must fall between January 2000 and the month of ingest; check the dates on the listed rows."),
    Rule("N6", ERROR, "Invalid count or interval",
         "Write counts as numbers of zero or more, and end dates on or after start dates."),
    Rule("P4", ERROR, "System not recognized",
         "Write one supervision system per row (SUPERVISION, PAROLE, PROBATION, PRETRIAL_SUPERVISION, "
         "OTHER_SUPERVISION); 'all' or 'both' cannot be stored."),
)

RULES: Mapping[str, Rule] = MappingProxyType({rule.code: rule for rule in _RULES})
"""Every ingest rule by code, in catalogue order."""
