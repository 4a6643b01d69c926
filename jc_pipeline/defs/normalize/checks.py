"""Asset checks on `agency_metrics`: one per technical-guide rule, plus the structural gate of the roll-up.
The rules run inside the `agency_metrics` step (the datapoints are checked right where they are written), so
each rule is declared here as a check spec and reported from the step as an `AssetCheckResult`.
"""


import dagster as dg

from jc_pipeline.lib import validation

STRUCTURE_CHECK = "warehouse_structure_intact"

_SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARNING": dg.AssetCheckSeverity.WARN}


def rule_check_specs() -> list[dg.AssetCheckSpec]:
    """One non-blocking spec per rule (bad datapoints are excluded, the state still rolls up) + a blocking gate."""
    specs = [
        dg.AssetCheckSpec(rule.name, asset="agency_metrics", description=f"{rule.severity}: {rule.description}")
        for rule in validation.RULES
    ]
    specs.append(
        dg.AssetCheckSpec(
            STRUCTURE_CHECK,
            asset="agency_metrics",
            blocking=True,
            description="Blocks the state roll-up when the warehouse schema or the registry tables are broken.",
        )
    )
    return specs


def rule_check_result(outcome: validation.RuleOutcome) -> dg.AssetCheckResult:
    """Counts and a sample of failing rows of the run's months; a rule that crashed is reported as a crash, not as
    bad data. After a nightly run, which re-checks only the agencies with new uploads, the verdict, count and
    sample still cover every agency of the months (read back from validation_results); `rechecked_agencies` says
    how many agencies were checked again, and `checked_rows` counts their rows."""
    metadata: dict[str, object] = {
        "failing_groups": outcome.failing_groups,
        "checked_rows": outcome.checked_rows,
        "remedy": outcome.rule.remedy,
    }
    if outcome.rechecked_agencies is not None:
        metadata["rechecked_agencies"] = outcome.rechecked_agencies
    if outcome.sample:
        metadata["sample"] = dg.MetadataValue.json(outcome.sample)
    if outcome.error:
        metadata["rule_error"] = outcome.error
    return dg.AssetCheckResult(
        asset_key="agency_metrics",
        check_name=outcome.rule.name,
        passed=outcome.passed and not outcome.error,
        severity=_SEVERITY[outcome.rule.severity],
        metadata=metadata,
    )


def skipped_rule_results(reason: str) -> list[dg.AssetCheckResult]:
    """Every rule reported as not run (the structure is broken, so its verdict would mean nothing)."""
    return [
        dg.AssetCheckResult(
            asset_key="agency_metrics",
            check_name=rule.name,
            passed=False,
            severity=_SEVERITY[rule.severity],
            metadata={"skipped": reason},
        )
        for rule in validation.RULES
    ]


def structure_check_result(problems: list[str]) -> dg.AssetCheckResult:
    """Fails (and, being blocking, stops the roll-up) when anything structural is wrong."""
    return dg.AssetCheckResult(
        asset_key="agency_metrics",
        check_name=STRUCTURE_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.json(problems)},
    )
