"""Numbers and periods as people read them: units, thousands separators, coverage sentences."""

from __future__ import annotations

from typing import Any


def value_text(value: float | None, unit: str) -> str:
    """Exact-ish display of a state value: ``$1,250,000``, ``12.5 FTE``, ``2,475``; ``no value`` for NULL."""
    if value is None:
        return "no value"
    number = f"{value:,.0f}" if value == int(value) else f"{value:,.2f}".rstrip("0").rstrip(".")
    if unit == "USD":
        return f"${number}"
    if unit == "FTE":
        return f"{number} FTE"
    return number


def axis_text(value: float, unit: str) -> str:
    """Compact tick label: ``$1.2M``, ``1.25k``, ``12k``, ``350``, ``1.25`` (ticks are 1, 2, 2.5 or 5 x 10^k and
    halves of them, so three significant digits say each exactly)."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k"), (1, "")):
        if abs(value) >= size:
            number = f"{value / size:.2f}".rstrip("0").rstrip(".") + suffix
            break
    else:
        number = f"{value:.3g}"
    return f"${number}" if unit == "USD" else number


def coverage_text(row: dict[str, Any]) -> str:
    """``37 of 38 agencies reporting, 96.9% of their population``."""
    text = f"{row['agencies_reporting']} of {row['agencies_expected']} agencies reporting"
    pct = row.get("coverage_population_pct")
    if pct is not None:
        text += f", {pct:.1f}% of their population covered"
    return text


def point_tooltip(row: dict[str, Any], unit: str) -> str:
    """Everything about one state number, for the tooltip of its point."""
    parts = [f"{row['period_label']}: {value_text(row['value'], unit)}", coverage_text(row)]
    if row.get("rate_per_100k") is not None:
        money = "$" if unit == "USD" else ""
        parts.append(f"{money}{row['rate_per_100k']:,.1f} per 100,000 residents covered")
    parts.append("complete" if row["is_complete"] else "incomplete: expected agencies missing")
    return "; ".join(parts)
