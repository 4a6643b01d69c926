"""What ingest needs to know about the agency and sector a file was delivered for (one per inbox folder).

The folder decides the uploading agency and the system code; the roster decides which columns its sheets must
carry (spec §5.2): ``month`` when the metric's effective frequency is monthly (for a superagency: when any child
reports it monthly; for a supervision metric split by subsystem: when any of the subsystems' keys is monthly),
``agency`` when the uploader has child agencies (except in its SUPERAGENCY folder),
``system`` in a SUPERVISION folder when the metric is disaggregated by subsystem for a reporting agency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from jc_pipeline.lib.ingest.layout import SheetFinding, sheet_key
from jc_pipeline.lib.registry import SYSTEM_CODES, Metric, Registry, SheetTarget
from jc_pipeline.lib.roster import Agency, EffectiveSetting, Roster

SUPERVISION = "SUPERVISION"
SUPERAGENCY = "SUPERAGENCY"


@dataclass
class UploadContext:
    """An (agency folder, sector folder) pair resolved against the roster and registry."""

    roster: Roster
    registry: Registry
    agency_id: str | None
    sector: str | None
    location_error: SheetFinding | None = None
    targets: Mapping[str, SheetTarget] = field(default_factory=dict)
    #: Agencies whose data the folder carries: the uploader, or a superagency's children of this sector.
    reporters: tuple[Agency, ...] = ()
    agency_expected: bool = False
    _monthly: dict[str, bool] = field(default_factory=dict, repr=False)
    _split: dict[str | None, bool] = field(default_factory=dict, repr=False)

    @cached_property
    def canonical_sheets(self) -> tuple[str, ...]:
        """The sector's sheet names, for the message of a sheet matching none (computed only then)."""
        names = []
        for metric in self.registry.metrics_for(self.sector):
            names.append(metric.sheet)
            names.extend(b.sheet for b in metric.breakdowns if b.sheet)
        return tuple(sorted(names))

    def month_expected(self, metric: Metric) -> bool:
        """Whether a standard sheet of ``metric`` must carry a month column."""
        cached = self._monthly.get(metric.key)
        if cached is None:
            cached = self._monthly[metric.key] = self.roster.month_column_expected(
                (a.agency_id for a in self.reporters), metric.key)
        return cached

    def plan_key(self, name: str, is_csv: bool) -> tuple:
        """Everything :func:`layout.plan_sheet` reads from this context for a sheet called ``name``.

        Sheets of different agencies with equal keys (and equal headers) get equal plans, so plans are cached
        by it: a state's thousands of files share a handful of plans.
        """
        if self.location_error is not None:
            return (self.location_error,)
        target = self.targets.get(sheet_key(name, is_csv))
        metric = target.metric if target else None
        return (self.sector, self.agency_expected, self.system_expected(metric), self.system_expected(None),
                self.month_expected(metric) if metric else None)

    def system_expected(self, metric: Metric | None) -> bool:
        """Whether sheets of ``metric`` (``None``: a single-page sheet, any metric) carry a system column."""
        if self.sector != SUPERVISION:
            return False
        key = metric.key if metric is not None else None
        if key not in self._split:
            metrics = [metric] if metric is not None else list(self.registry.metrics_for(SUPERVISION))
            self._split[key] = any(self.disaggregated(a.agency_id, m.key) for a in self.reporters for m in metrics)
        return self._split[key]

    def disaggregated(self, agency_id: str, metric_key: str) -> bool:
        """Whether the agency reports this SUPERVISION metric under the subsystem keys."""
        return self._setting(agency_id, metric_key).disaggregated_by_supervision_subsystems

    def _setting(self, agency_id: str, metric_key: str) -> EffectiveSetting:
        return self.roster.effective(agency_id, metric_key)


def upload_context(roster: Roster, registry: Registry, agency_folder: str | None,
                   sector_folder: str | None) -> UploadContext:
    """Resolve the folders of a delivered file; problems become an F8 ``location_error``."""
    context = UploadContext(roster, registry, None, None)
    if agency_folder is None or sector_folder is None:
        return _misplaced(context, "the file is not inside an agency's sector folder; deliver it to "
                                   "inbox/<agency_id>/<SECTOR>/")
    agency = roster.agency_of_folder(agency_folder)
    if agency is None:
        return _misplaced(context, f"the inbox folder '{agency_folder}' is not an agency_id in agencies.csv; "
                                   f"deliver the file to the folder named after the agency's id")
    sector = sector_folder.upper()
    context.agency_id = agency.agency_id
    if sector not in SYSTEM_CODES:
        return _misplaced(context, f"'{sector_folder}' is not a sector folder; use one of: "
                                   f"{', '.join(s for s in SYSTEM_CODES if s in agency.sectors)}")
    children = roster.children(agency.agency_id) if sector != SUPERAGENCY else ()
    reporters = tuple(a for a in children if sector in a.sectors) if children else (
        (agency,) if sector in agency.sectors else ())
    if not reporters:
        return _misplaced(context, f"agency '{agency.agency_id}' does not report for {sector} (its sectors in "
                                   f"agencies.csv: {', '.join(agency.sectors)}); move the file to the right "
                                   f"sector folder or add the sector to agencies.csv")
    context.sector = sector
    context.reporters = reporters
    context.agency_expected = bool(children)
    context.targets = registry.sheet_targets(sector)
    return context


def _misplaced(context: UploadContext, message: str) -> UploadContext:
    context.location_error = SheetFinding("F8", None, None, message)
    return context

