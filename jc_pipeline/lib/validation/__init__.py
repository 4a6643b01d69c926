"""Validation of agency datapoints against the Justice Counts technical-guide rules.

Public API (used by the Dagster layer; no dagster import here):

* :data:`RULES` — the rule catalogue (:class:`Rule`: name, severity, title, description, remedy, ...).
* :func:`validate_months` — run every rule on the datapoints of some months, store failing groups in
  ``validation_results`` and return one :class:`RuleOutcome` per rule; :func:`validate_scopes` does it for
  several (months, agencies) at once, as the rebuilds of a nightly run.
* :func:`check_structure` — structural problems that must block the state roll-up (empty list = fine).
* :func:`write_quality_report` — the static HTML data-quality report's index (agencies with findings, linked to
  their feedback pages), from :class:`Findings` (failed checks and rejected rows by agency; the agency feedback
  lists them).
* :func:`preload` — optional: start Great Expectations' worker process, which imports it (~2.4 s of CPU) on the
  other core while the caller goes on.

Great Expectations runs in that worker (:mod:`.gx_worker`), started by ``preload`` or by the first
``validate_months`` call; this process never imports it.
"""

from jc_pipeline.lib.validation.gx_worker import preload
from jc_pipeline.lib.validation.report import Findings, write_quality_report
from jc_pipeline.lib.validation.rules import ERROR, RULES, RULES_BY_NAME, WARNING, Rule
from jc_pipeline.lib.validation.run import (
    RuleOutcome,
    validate_months,
    validate_scopes,
)
from jc_pipeline.lib.validation.structure import check_structure

__all__ = [
    "ERROR",
    "RULES",
    "RULES_BY_NAME",
    "WARNING",
    "Findings",
    "Rule",
    "RuleOutcome",
    "check_structure",
    "preload",
    "validate_months",
    "validate_scopes",
    "write_quality_report",
]
