"""The validation catalogue: one :class:`Rule` per check, as data.

Every rule is implemented either by one Great Expectations expectation on a column of the datapoint slice
(``engine="gx"``, built in :mod:`.expectations`) or by one SQL file beside this module
(``engine="sql"``, ``sql/<name>.sql``). Thresholds live here, in ``params``, so docs/validation.md, the SQL
and the tests read the same numbers.

Severity contract with the state roll-up: an ERROR failure removes the whole (agency, metric, period) from
``state_metrics``; a WARNING is reported and kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ERROR = "ERROR"
WARNING = "WARNING"

#: Grouping of failing rows: one validation_results row per datapoint, per period or per duplicate key.
DATAPOINT = ("agency_id", "metric_key", "period_start", "period_end", "dimension", "category")
PERIOD = ("agency_id", "metric_key", "period_start", "period_end")


@dataclass(frozen=True)
class Rule:
    """One validation rule.

    ``name`` is the stable check name (Dagster asset-check name and ``validation_results.check_name``);
    ``title`` a short label; ``description`` the rule in plain words; ``remedy`` what the agency should do.
    ``message`` is the per-failure text, a ``str.format`` template over the failing group's fields
    (agency_id, metric_key, period, dimension, category, observed, expected, count).
    ``engine`` is ``gx`` or ``sql``; ``column`` (gx) is the slice column the expectation looks at;
    ``group_by`` (gx) how failing rows are grouped into validation_results rows; ``scope`` which stored results
    a run over some months replaces: ``months`` (period_start in those months) or ``years`` (period_start in
    their calendar years, for rules that judge whole years); ``reads_back`` how many earlier periods of the same
    series the rule reads to judge a period (0: the period's own rows only): a change in month M is judged again,
    for the same agencies, in the periods that many after it (``run.validate_months``); only WARNING rules may read
    back, since those later months' state numbers are not rebuilt; ``params`` the thresholds; ``query`` (sql) the
    file ``sql/<query>.sql`` the rule runs, when several rules share one with their own thresholds and words (default:
    its name).
    """

    name: str
    severity: str
    title: str
    description: str
    remedy: str
    message: str
    engine: str
    column: str | None = None
    group_by: tuple[str, ...] = DATAPOINT
    scope: str = "months"
    reads_back: int = 0
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    query: str = ""

    @property
    def blocking(self) -> bool:
        """True when a failure keeps the (agency, metric, period) out of the state roll-up."""
        return self.severity == ERROR


def _p(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


RULES: tuple[Rule, ...] = (
    # ---- errors: the datapoint cannot be trusted, its period is left out of the state numbers -------------
    Rule(
        name="value_is_numeric",
        severity=ERROR,
        title="Value is a number",
        description="Every value must be a finite number (not blank, not text, not infinite).",
        remedy="Enter a plain number in the value cell (no text such as 'N/A'). If you have no data for the "
               "period, delete the row instead of leaving it blank.",
        message="The value of {metric} for {period}{where_category} is not a number ({observed}).",
        engine="gx",
        column="finite_value",
    ),
    Rule(
        name="value_not_negative",
        severity=ERROR,
        title="Value is not negative",
        description="Counts, money and staff can never be below zero.",
        remedy="Correct the value; if it is an adjustment of an earlier period, correct that earlier period "
               "instead and re-send it.",
        message="{metric} for {period}{where_category} is negative ({observed}).",
        engine="gx",
        column="finite_value",
    ),
    Rule(
        name="category_is_member",
        severity=ERROR,
        title="Breakdown category exists",
        description="A breakdown value must be one of the Justice Counts categories of that metric's "
                    "breakdown (for example 'Person Offenses' for arrests by offense type).",
        remedy="Use one of the category names from the Justice Counts template for this sheet; put anything "
               "that does not fit in the 'Other' category.",
        message="'{observed}' is not a category of {metric} (breakdown {dimension}) for {period}.",
        engine="gx",
    ),
    Rule(
        name="no_duplicate_datapoints",
        severity=ERROR,
        title="One value per period and category",
        description="Each metric may have only one value per period and breakdown category.",
        remedy="Keep a single row for each period and category; remove the repeated rows and re-send the file.",
        message="{metric} for {period}{where_category} appears {count} times.",
        engine="gx",
    ),
    Rule(
        name="period_aligned",
        severity=ERROR,
        title="Period is a whole month or the agency's year",
        description="A monthly value must cover exactly one calendar month; an annual value exactly twelve "
                    "months starting in the month the agency's year starts (January for a calendar year, e.g. "
                    "July for a July-June fiscal year).",
        remedy="Check the year and month columns. For fiscal years the 'year' column is the year in which the "
               "fiscal year ends. If your fiscal year changed, tell the state team so your settings are updated.",
        message="{metric}: the period {period} is not a valid reporting period ({observed}).",
        engine="gx",
        column="period_problem",
        group_by=PERIOD,
    ),
    Rule(
        name="period_not_in_future",
        severity=ERROR,
        title="Period is over",
        description="Data can only be reported for periods that have ended: a value sent while its month (or "
                    "year) was still running counts only part of it, and stays out of the state numbers until a "
                    "file sent after the period's end replaces it.",
        remedy="Send the period again once it has ended (the whole month or year), in a new file or the file "
               "edited: the same file sent again counts as sent the first time. Check the year and month columns "
               "if the period is not the one you meant.",
        message="{metric}: the period {period} had not ended when its file was sent ({observed}).",
        engine="gx",
        column="days_after_sent",
        group_by=PERIOD,
    ),
    Rule(
        name="agency_in_roster",
        severity=ERROR,
        title="Agency and sector are on the state roster",
        description="Data is accepted only for agencies on the state's roster and for the sectors the roster "
                    "lists for them.",
        remedy="Check that the file is in your own inbox folder and sector folder. If your agency now reports "
               "for another sector, ask the state team to add it to the roster.",
        message="{metric} for {period}: {observed}.",
        engine="gx",
        column="roster_problem",
        group_by=PERIOD,
    ),
    # ---- warnings: kept in the state numbers, flagged for the agency ----------------------------------------
    Rule(
        name="breakdowns_sum_to_total",
        severity=WARNING,
        title="Breakdown adds up to the total",
        description="The categories of a breakdown should add up to the metric's total for the same period "
                    "(within 1 for counts and staff, within 0.5% for money).",
        remedy="Check that every case is counted in exactly one category (use 'Unknown' for cases you cannot "
               "classify) and that the total and the breakdown cover the same period.",
        message="{metric} for {period}: the {dimension} breakdown adds up to {observed}, but the total "
                "is {expected}.",
        engine="sql",
        params=_p(count_tolerance=1.0, usd_relative_tolerance=0.005),
    ),
    Rule(
        name="counts_are_whole_numbers",
        severity=WARNING,
        title="Counts are whole numbers",
        description="Metrics that count events or people should be whole numbers (money and staff FTE may "
                    "have decimals).",
        remedy="Send the count itself, not an average or an estimate with decimals. If the number is an "
               "average daily population, round it to a whole person.",
        message="{metric} for {period}{where_category} is not a whole number ({observed}).",
        engine="gx",
        column="count_fraction",
        params=_p(tolerance=1e-6),
    ),
    Rule(
        name="required_breakdowns_present",
        severity=WARNING,
        title="Required breakdowns are reported",
        description="Justice Counts marks some breakdowns as required (for example arrests by offense type, "
                    "race/ethnicity and sex); they should be reported whenever the total is. One finding per "
                    "metric, breakdown and calendar year, listing the periods without it.",
        remedy="Add the breakdown sheet for this metric and these periods. If your system cannot produce it, "
               "report everything under 'Unknown' and tell the state team.",
        message="{metric} has no {dimension} breakdown for {observed} of the {expected} periods reported in "
                "{year}, which Justice Counts requires.",
        engine="sql",
        scope="years",
    ),
    Rule(
        name="no_missing_months",
        severity=WARNING,
        title="No months missing in a reported year",
        description="For a monthly metric, every month of a year in which the agency reported is expected: all "
                    "twelve months of a year that is over, and every month up to the latest one reported in "
                    "the current year.",
        remedy="Send the missing month. If you truly have no data for it, tell the state team why (state "
               "yearly totals need all twelve months).",
        message="{metric}: no data for {period}, although other months of {year} were reported.",
        engine="sql",
        scope="years",
    ),
    Rule(
        name="metric_enabled",
        severity=WARNING,
        title="Metric is enabled for the agency",
        description="Data was received for a metric the agency's settings say it does not report: a disabled "
                    "metric, or a combined supervision metric the agency reports by subsystem (parole, "
                    "probation, ...) instead. The data is loaded, but left out of the state numbers, which count "
                    "an agency only for the metrics it is expected to report.",
        remedy="If you now report this metric (or report supervision combined), ask the state team to update "
               "your settings; otherwise remove it from your upload.",
        message="{metric} for {period} was received, but {observed}.",
        engine="gx",
        column="setting_problem",
        group_by=PERIOD,
    ),
    Rule(
        name="category_enabled",
        severity=WARNING,
        title="Breakdown category is enabled for the agency",
        description="Data was received for a breakdown category the agency's settings turn off (for example "
                    "'Other Funding' for a court that said it has no other funding sources). The value is kept "
                    "in the state numbers. Categories of a metric the check 'Metric is enabled for the agency' "
                    "already flags are not flagged again.",
        remedy="If you do report this category, ask the state team to turn it back on in your settings; "
               "otherwise leave it out of your uploads (your upload template no longer lists it).",
        message="{metric} for {period}: data for '{category}' ({dimension}) was received, but {observed}.",
        engine="gx",
        column="category_setting_problem",
        group_by=DATAPOINT,
    ),
    Rule(
        name="jail_population_parts_match_total",
        severity=WARNING,
        title="Pre- plus post-adjudication population equals the total",
        description="A jail's pre-adjudication and post-adjudication daily populations should add up to its "
                    "total daily population (within 2 people or 2%).",
        remedy="Check that the three populations use the same counting method and date; people whose status "
               "is unclear belong in the post-adjudication population (Justice Counts guidance).",
        message="{metric} for {period}: pre- plus post-adjudication population is {observed}, but the "
                "total population is {expected}.",
        engine="sql",
        # Metric-key suffixes (part A, part B, whole), expanded per sector of the registry that has all three.
        # Daily populations are averages, computed and rounded separately, and people change status during a
        # day: 2 people / 2% keeps rounding quiet and still catches a part that covers other facilities.
        params=_p(absolute_tolerance=2.0, relative_tolerance=0.02, identity_names=("part_a", "part_b", "whole"),
                  identities=(("PRE_ADJUDICATION_POPULATION", "POST_ADJUDICATION_POPULATION", "TOTAL_POPULATION"),)),
        query="parts_match_total",
    ),
    Rule(
        name="jail_flow_parts_match_total",
        severity=WARNING,
        title="Pre- plus post-adjudication admissions and releases equal the totals",
        description="A jail's pre-adjudication and post-adjudication admissions should add up to its total "
                    "admissions, and the same for releases (within 1; spec V-XMETRIC).",
        remedy="Count each admission or release once, as pre- or post-adjudication by the person's status at "
               "that moment; the total counts every one of them.",
        message="{metric} for {period}: pre- plus post-adjudication is {observed}, but the total is {expected}.",
        engine="sql",
        # Admissions and releases are counts of events, each of one status: only rounding-free differences.
        params=_p(absolute_tolerance=1.0, relative_tolerance=0.0, identity_names=("part_a", "part_b", "whole"),
                  identities=(("PRE_ADJUDICATION_ADMISSIONS", "POST_ADJUDICATION_ADMISSIONS", "TOTAL_ADMISSIONS"),
                              ("PRE_ADJUDICATION_RELEASES", "POST_ADJUDICATION_RELEASES", "TOTAL_RELEASES"))),
        query="parts_match_total",
    ),
    Rule(
        name="admissions_releases_match_population_change",
        severity=WARNING,
        title="Admissions minus releases match the population change",
        description="Over a month, admissions minus releases should roughly equal the change in the daily "
                    "population from the previous month (within 10% of the population, at least 20 people).",
        remedy="Check that admissions, releases and population cover the same facilities or caseload and the "
               "same month, and that admissions/releases count events, not people.",
        message="{metric} for {period}: admissions minus releases is {observed}, but the population "
                "changed by {expected} since the previous month.",
        engine="sql",
        # Metric-key suffixes (admissions, releases, population), expanded per sector of the registry that has
        # all three: jails, prisons, supervision and its four subsystems.
        params=_p(absolute_tolerance=20.0, relative_tolerance=0.10,
                  identity_names=("admissions", "releases", "population"),
                  identities=(("TOTAL_ADMISSIONS", "TOTAL_RELEASES", "TOTAL_POPULATION"),
                              ("ADMISSIONS", "RELEASES", "POPULATION"),
                              ("SUPERVISION_STARTS", "SUPERVISION_TERMINATIONS", "POPULATION"))),
        reads_back=1,  # the previous month's population
    ),
    Rule(
        name="staff_breakdown_matches_total",
        severity=WARNING,
        title="Staff by type (with vacancies) equals total staff",
        description="Total staff counts budgeted positions, filled and vacant; the staff-type breakdown "
                    "including 'Vacant Positions' should add up to it (within 1 FTE).",
        remedy="Count each position once, under its main role, and vacant budgeted positions under 'Vacant "
               "Positions'; the total must include the vacant positions.",
        message="{metric} for {period}: staff by type including vacancies adds up to {observed} FTE, but "
                "total staff is {expected} FTE.",
        engine="sql",
        params=_p(absolute_tolerance=1.0),
    ),
    Rule(
        name="no_implausible_jumps",
        severity=WARNING,
        title="No implausible jump from earlier periods",
        description="A total far from the agency's usual level for the metric (the median of up to 12 earlier "
                    "periods) is flagged: more than 50% away for events and money, 25% for populations, staff and "
                    "other point-in-time counts, more than 5 robust standard deviations, and at least 20 units, with "
                    "at least 3 earlier periods.",
        remedy="Check the value (a missing digit, a partial month, a changed definition, a system change). If "
               "it is right, no action is needed; a short note to the state team helps analysts.",
        message="{metric} for {period} is {observed}, far from its usual level of about {expected}.",
        engine="sql",
        params=_p(history=12, min_history=3, min_difference=20.0, relative_delta=0.5, relative_instant=0.25,
                  robust_z=5.0),
        # A series with gaps reads further back than 12 periods: such a change is re-judged by a backfill
        # (docs/operations.md §3).
        reads_back=12,
    ),
)

RULES_BY_NAME: Mapping[str, Rule] = MappingProxyType({rule.name: rule for rule in RULES})
