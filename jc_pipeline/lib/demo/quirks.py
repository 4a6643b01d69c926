"""Plant the irregularities real uploads have, each in its own file, on the planned deliveries.

The quirks that come from an agency's habits (month names, category spellings, fiscal years, superagency and
supervision columns, thousands separators, stopping mid-2023) are produced by the agencies' delivery styles in
``deliveries``; this module adds the one-off damage: missing totals, mismatched totals, bad value cells, template
hint rows, blank rows, a stray sheet, and the late correction file. It also marks the rows that deliver a
breakdown category the agency's settings turn off (the data is generated from the metric settings only, so an
agency keeps sending such a category, as a records-system export would).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from jc_pipeline.lib.demo import manifest as q
from jc_pipeline.lib.demo.agencies import DemoState
from jc_pipeline.lib.demo.deliveries import Delivery, Planner, Row, Sheet
from jc_pipeline.lib.demo.values import Observation, allocate
from jc_pipeline.lib.registry import load_registry

NON_NUMERIC = ("N/A", "--", "twelve")
_DAMAGE = {q.BREAKDOWN_WITHOUT_TOTAL, q.MISMATCHED_TOTAL, q.BLANK_VALUE, q.NON_NUMERIC_VALUE, q.STOPPED_REPORTING}


def plant_quirks(
    rng: random.Random,
    deliveries: list[Delivery],
    state: DemoState,
    planner: Planner,
    observations: list[Observation],
    years: tuple[int, ...],
) -> None:
    """Damage a few deliveries in place, append the late correction file (the last delivery) and mark the rows
    of disabled categories."""
    candidates = [
        d
        for d in deliveries
        if d.layout == q.MULTI_SHEET
        and d.file_format == "xlsx"
        and d.agency_id != state.correction_id
        and not state.by_id[d.agency_id].quarterly
    ]
    rng.shuffle(candidates)
    targets = _Targets(rng, candidates)
    _breakdown_without_total(targets)
    for _ in range(3):
        _mismatched_total(targets)
    _bad_value(targets, aggregate=True, value=None)
    _bad_value(targets, aggregate=False, value=None)
    _bad_value(targets, aggregate=True, value=NON_NUMERIC[0])
    _bad_value(targets, aggregate=True, value=NON_NUMERIC[1])
    _bad_value(targets, aggregate=False, value=NON_NUMERIC[2])
    _template_hint_row(targets.next_delivery(lambda d: bool(_aggregate_sheets_with_breakdowns(d))))
    _blank_row(targets.next_delivery(lambda d: True))
    _invalid_sheet_name(targets.next_delivery(lambda d: _sex_sheet(d) is not None))
    _mark_stopped_agencies(deliveries, state)
    deliveries.append(_late_correction(rng, state, planner, observations, years))
    _mark_disabled_categories(deliveries, state)


def _aggregate_sheets_with_breakdowns(delivery: Delivery) -> list[tuple[Sheet, list[Sheet]]]:
    """(aggregate sheet, its breakdown sheets) for the metrics of a workbook that have both."""
    pairs = []
    for sheet in delivery.sheets:
        if sheet.breakdown is not None or not sheet.rows:
            continue
        keys = {row.metric_key for row in sheet.rows}
        parts = [s for s in delivery.sheets if s.breakdown is not None and s.rows and s.rows[-1].metric_key in keys]
        if parts:
            pairs.append((sheet, parts))
    return pairs


class _Targets:
    """Hands out workbooks to damage: each damage in a file of its own while unused files remain."""

    def __init__(self, rng: random.Random, candidates: list[Delivery]):
        self.rng, self.candidates, self.used = rng, candidates, set()

    def next_delivery(self, accepts: Callable[[Delivery], bool]) -> Delivery:
        fresh = [d for d in self.candidates if d.path not in self.used]
        for delivery in fresh + [d for d in self.candidates if d.path in self.used]:
            if accepts(delivery):
                self.used.add(delivery.path)
                return delivery
        raise ValueError("no workbook in the demo state can carry this quirk; use more agencies")

    def row(self, *, aggregate: bool = True, monthly: bool = False):
        """(aggregate sheet, its breakdown sheets, sheet to damage, row): a random undamaged row.

        Habits such as month names may stack with damage; two damages never hit the same row.
        """
        delivery = self.next_delivery(lambda d: bool(_options(d, aggregate, monthly)))
        return self.rng.choice(_options(delivery, aggregate, monthly))


def _options(delivery: Delivery, aggregate: bool, monthly: bool) -> list:
    """Undamaged rows with breakdowns: aggregate rows that have breakdown rows, or those breakdown rows."""
    options = []
    for aggregate_sheet, parts in _aggregate_sheets_with_breakdowns(delivery):
        if monthly and "month" not in aggregate_sheet.columns:
            continue
        broken_down = {_key(r) for part in parts for r in part.rows}
        for sheet in [aggregate_sheet] if aggregate else parts:
            rows = [
                r
                for r in sheet.rows
                if _key(r) in broken_down and r.metric_key and not any(m[0] in _DAMAGE for m in r.marks)
            ]
            options.extend((aggregate_sheet, parts, sheet, row) for row in rows)
    return options


def _key(row: Row) -> tuple:
    return row.agency_id, row.metric_key, row.year, row.month


def _breakdown_without_total(targets: _Targets) -> None:
    aggregate, parts, _, row = targets.row(monthly=True)
    aggregate.rows.remove(row)
    for part in parts:
        first = next((r for r in part.rows if _key(r) == _key(row)), None)
        if first is not None:
            first.mark(q.BREAKDOWN_WITHOUT_TOTAL, f"no '{aggregate.name}' row for {row.year}-{row.month:02d}")


def _mismatched_total(targets: _Targets) -> None:
    aggregate, parts, _, row = targets.row()
    old = aggregate.get(row, "value")
    new = old + max(3, round(old * targets.rng.uniform(0.03, 0.08)))
    aggregate.set(row, "value", new)
    row.mark(
        q.MISMATCHED_TOTAL, f"aggregate {new} but the breakdowns in {', '.join(p.name for p in parts)} sum to {old}"
    )


def _bad_value(targets: _Targets, *, aggregate: bool, value: str | None) -> None:
    """Blank (value None) or non-numeric value on an aggregate row (the total is then inferred) or a breakdown row."""
    _, _, sheet, row = targets.row(aggregate=aggregate)
    old = sheet.get(row, "value")
    sheet.set(row, "value", value)
    if value is None:
        row.mark(q.BLANK_VALUE, f"value left blank (was {old})")
    else:
        row.mark(q.NON_NUMERIC_VALUE, f"value '{value}' (was {old})")


def _template_hint_row(delivery: Delivery) -> None:
    """Leave the template's list of allowed categories as the first row of a breakdown sheet."""
    _, parts = _aggregate_sheets_with_breakdowns(delivery)[0]
    sheet = parts[0]
    column = sheet.breakdown.column
    hint = Row([None] * len(sheet.columns))
    sheet.set(hint, column, "[" + ", ".join(m.display for m in sheet.breakdown.dimension.members) + "]")
    hint.mark(q.TEMPLATE_HINT_ROW, f"template hint in column '{column}' with blank value")
    sheet.rows.insert(0, hint)


def _blank_row(delivery: Delivery) -> None:
    sheet = max(delivery.sheets, key=lambda s: len(s.rows))
    blank = Row([None] * len(sheet.columns))
    blank.mark(q.BLANK_ROW, "fully blank row between data rows")
    sheet.rows.insert(len(sheet.rows) // 2, blank)


def _invalid_sheet_name(delivery: Delivery) -> None:
    """An old 'gender' tab left in the workbook next to the proper breakdown sheet."""
    source = _sex_sheet(delivery)
    columns = ["gender" if c == "biological_sex" else c for c in source.columns]
    sheet = Sheet("gender", columns, [Row(list(r.cells)) for r in source.rows])
    sheet.marks.append(
        (q.INVALID_SHEET_NAME, f"sheet 'gender' is not a bulk-upload sheet name (copy of '{source.name}')")
    )
    delivery.sheets.append(sheet)


def _sex_sheet(delivery: Delivery) -> Sheet | None:
    return next((s for s in delivery.sheets if s.name.endswith(("_by_biological_sex", "_by_sex"))), None)


def _mark_stopped_agencies(deliveries: list[Delivery], state: DemoState) -> None:
    for agency in state.agencies:
        if agency.last_month is None:
            continue
        last = [d for d in deliveries if d.agency_id == agency.agency_id][-1]
        sheet = next(s for s in last.sheets if "month" in s.columns)
        row = sheet.rows[-1]
        row.mark(q.STOPPED_REPORTING, f"last delivery ({row.year}-{row.month:02d}); the roster still lists the agency")


def _mark_disabled_categories(deliveries: list[Delivery], state: DemoState) -> None:
    """Mark every breakdown row whose category a breakdown_settings row turns off.

    The demo writes those rows with registry identifiers, member NAMEs and the metric key the data is stored
    under (no subsystem inheritance), so an exact lookup finds them; test_demo_state checks the marks against
    the roster as the pipeline loads it.
    """
    disabled = {(a, key, dimension, member) for a, key, dimension, member, enabled in state.breakdown_settings
                if enabled == "false"}
    registry = load_registry()
    for delivery in deliveries:
        for sheet in delivery.sheets:
            for row in sheet.rows:
                if row.member is None:
                    continue
                # Single-page sheets hold every breakdown of a metric; the breakdown_category cell says which.
                breakdown = sheet.breakdown or next(
                    b for b in registry.metrics[row.metric_key].breakdowns
                    if b.column == sheet.get(row, "breakdown_category"))
                dimension = breakdown.dimension.identifier
                if (row.agency_id, row.metric_key, dimension, row.member) in disabled:
                    row.mark(q.DISABLED_CATEGORY, f"{row.member} of {dimension} turned off in breakdown_settings.csv")


def _late_correction(
    rng: random.Random, state: DemoState, planner: Planner, observations: list[Observation], years: tuple[int, ...]
) -> Delivery:
    """A single-page CSV re-delivering one month, two or more years back, of a metric with breakdowns."""
    year = max(years[0], years[-1] - 4)
    original = next(
        o for o in observations if (o.agency_id, o.year, o.month) == (state.correction_id, year, 3) and o.breakdowns
    )
    value = original.value + max(3, round(original.value * 0.06))
    corrected = replace(
        original,
        value=value,
        # the revision keeps the old mix (+0.5 so an all-zero month still has weights)
        breakdowns=tuple(
            (bd, allocate(rng, value, {m: v + 0.5 for m, v in alloc})) for bd, alloc in original.breakdowns
        ),
    )
    uploader = state.by_id[state.correction_id]
    path = f"inbox/{uploader.agency_id}/{original.metric.parent_sector}/correction_{year}-03.csv"
    delivery = planner.single_page(uploader, original.metric.parent_sector, path, [corrected], "csv")
    old_values = {None: original.value} | {m.name: v for _, alloc in original.breakdowns for m, v in alloc}
    for row in delivery.sheets[0].rows:
        row.mark(
            q.LATE_CORRECTION,
            f"re-delivers {year}-03 {row.member or 'total'}: {old_values[row.member]} ->"
            f" {delivery.sheets[0].get(row, 'value')}",
        )
    return delivery
