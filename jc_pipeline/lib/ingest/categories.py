"""Deterministic category matching: a lookup table from normalized label to dimension member.

The rules are described at the top of ``synonyms.yaml``. The table is built once per registry and joined to the
rows (``dimension``, ``label_key(label)``), so matching a million rows is one hash join, not a million Python
calls. Keys of the table are computed with the same :func:`label_key` expression that is applied to the rows,
so the two sides can never disagree about normalization.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import polars as pl
import yaml

from jc_pipeline.lib.registry import Dimension, Registry

T = TypeVar("T")

OK, LEGACY, AMBIGUOUS, TOTAL = "ok", "legacy", "ambiguous", "total"
# Lower tiers win: explicit labels (display, NAME, synonyms) beat derived short forms, which beat totals.
_EXPLICIT, _DERIVED, _TOTALS = 1, 2, 3


def label_key(label: pl.Expr) -> pl.Expr:
    """Normalized form of a category label: lower-case, punctuation to spaces, words singularized."""
    return (
        label.str.to_lowercase()
        .str.replace_all(r"[^a-z0-9]+", " ")
        .str.strip_chars()
        .str.replace_all(r"ies\b", "y")
        .str.replace_all(r"([^s])s\b", "${1}")
    )


@dataclass(frozen=True)
class Tables:
    """The parsed ``synonyms.yaml``."""

    months: Mapping[str, int]
    totals: tuple[str, ...]
    synonyms: Mapping[str, Mapping[str, tuple[str, ...]]]
    legacy: Mapping[str, Mapping[str, Any]]
    race_words: Mapping[str, tuple[str, ...]]
    ethnicity_words: Mapping[str, tuple[str, ...]]


@functools.cache
def load_tables() -> Tables:
    """Parse the packaged ``synonyms.yaml`` (cached)."""
    text = resources.files("jc_pipeline.lib.ingest").joinpath("synonyms.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    months = {name.replace(" ", ""): int(number) for number, names in raw["months"].items() for name in names}
    return Tables(
        months=months,
        totals=tuple(raw["totals"]),
        synonyms={dim: {name: tuple(labels) for name, labels in members.items()}
                  for dim, members in raw["synonyms"].items()},
        legacy=raw["legacy"],
        race_words={race: tuple(words) for race, words in raw["race_words"].items()},
        ethnicity_words={eth: tuple(words) for eth, words in raw["ethnicity_words"].items()},
    )


def per_registry(build: Callable[[Registry], T]) -> Callable[[Registry], T]:
    """Cache ``build(registry)`` per registry object (registries are immutable but not hashable)."""
    cache: dict[int, tuple[Registry, T]] = {}

    @functools.wraps(build)
    def cached(registry: Registry) -> T:
        hit = cache.get(id(registry))
        if hit is None or hit[0] is not registry:
            hit = cache[id(registry)] = (registry, build(registry))
        return hit[1]

    return cached


@per_registry
def category_lookup(registry: Registry) -> pl.DataFrame:
    """Columns ``dimension, key, member, member_display, outcome, note``: one row per (dimension, label key).

    ``outcome`` is ``ok`` (member set), ``legacy`` (member set, ``note`` explains the mapping: rule C1),
    ``ambiguous`` (``note`` lists the candidates: R12) or ``total`` (R11).
    """
    tables = load_tables()
    dimensions = tuple(registry.dimensions.values())
    totals = ((d.identifier, label, None, None) for d in dimensions for label in tables.totals)
    candidates = pl.concat([
        _candidate_frame(_explicit_candidates(dimensions, tables), _EXPLICIT),
        _candidate_frame(_derived_candidates(dimensions), _DERIVED),
        _candidate_frame(totals, _TOTALS),
    ]).filter(pl.col("key") != "")
    best = candidates.filter(pl.col("tier") == pl.col("tier").min().over("dimension", "key"))
    resolved = best.group_by("dimension", "key").agg(
        members=pl.col("member").drop_nulls().unique().sort(),
        note=pl.col("note").drop_nulls().first(),
        tier=pl.col("tier").first(),
    )
    displays = {(d.identifier, m.name): m.display for d in dimensions for m in d.members}
    rows = []
    for dimension, key, members, note, tier in resolved.iter_rows():
        if tier == _TOTALS:
            rows.append((dimension, key, None, None, TOTAL, None))
        elif len(members) == 1:
            member = members[0]
            rows.append((dimension, key, member, displays[(dimension, member)], LEGACY if note else OK, note))
        else:
            listed = ", ".join(f"'{displays[(dimension, m)]}'" for m in members)
            rows.append((dimension, key, None, None, AMBIGUOUS, listed))
    return pl.DataFrame(rows, orient="row", schema=_LOOKUP_SCHEMA)


_LOOKUP_SCHEMA = {"dimension": pl.String, "key": pl.String, "member": pl.String, "member_display": pl.String,
                  "outcome": pl.String, "note": pl.String}
_CANDIDATE_SCHEMA = {"dimension": pl.String, "label": pl.String, "member": pl.String, "note": pl.String}


def _candidate_frame(candidates: Iterable[tuple], tier: int) -> pl.DataFrame:
    frame = pl.DataFrame(list(candidates), schema=_CANDIDATE_SCHEMA, orient="row")
    return frame.select("dimension", key=label_key(pl.col("label")), member="member", note="note",
                        tier=pl.lit(tier, pl.Int32))


def _keys(labels: list[str]) -> list[str]:
    frame = pl.DataFrame({"label": labels}, schema={"label": pl.String})
    return frame.select(label_key(pl.col("label"))).to_series().to_list()


@per_registry
def valid_labels(registry: Registry) -> pl.DataFrame:
    """Columns ``dimension, valid``: the display values of each dimension, for R10 messages."""
    return pl.DataFrame(
        {"dimension": [d.identifier for d in registry.dimensions.values()],
         "valid": [", ".join(m.display for m in d.members) for d in registry.dimensions.values()]},
    )


def _explicit_candidates(dimensions: Iterable[Dimension], tables: Tables) -> Iterator[tuple]:
    for dimension in dimensions:
        names = set(dimension.member_names)
        for member in dimension.members:
            yield dimension.identifier, member.display, member.name, None
            yield dimension.identifier, member.name, member.name, None
        for scope in ("*", dimension.identifier):
            for name, labels in tables.synonyms.get(scope, {}).items():
                if name in names:
                    yield from ((dimension.identifier, label, name, None) for label in labels)
        for name, legacy in tables.legacy.get(dimension.identifier, {}).items():
            yield from ((dimension.identifier, label, name, legacy["note"]) for label in legacy["labels"])
        if all(member.race for member in dimension.members):
            yield from _race_candidates(dimension, tables)


def _race_candidates(dimension: Dimension, tables: Tables) -> Iterator[tuple]:
    """Race x ethnicity labels in both orders, plus race alone (unknown ethnicity) and ethnicity alone."""
    race_words: dict[str, set[str]] = {}
    eth_words: dict[str, set[str]] = {}
    for member in dimension.members:
        race_display, eth_display = member.display.split(" / ")
        race_words.setdefault(member.race, {race_display, member.race.replace("_", " ")})
        eth_words.setdefault(member.ethnicity, {eth_display, member.ethnicity.replace("_", " ")})
    for race, words in race_words.items():
        words.update(tables.race_words.get(race, ()))
    for eth, words in eth_words.items():
        words.update(tables.ethnicity_words.get(eth, ()))
    for member in dimension.members:
        for race in race_words[member.race]:
            for eth in eth_words[member.ethnicity]:
                yield dimension.identifier, f"{race} {eth}", member.name, None
                yield dimension.identifier, f"{eth} {race}", member.name, None
        if member.ethnicity == "UNKNOWN_ETHNICITY":
            yield from ((dimension.identifier, race, member.name, None) for race in race_words[member.race])
        if member.race == "UNKNOWN":
            yield from ((dimension.identifier, eth, member.name, None) for eth in eth_words[member.ethnicity])


def _derived_candidates(dimensions: Iterable[Dimension]) -> Iterator[tuple]:
    """Short forms: displays without the words all members end with; "other"/"unknown" for OTHER/UNKNOWN."""
    for dimension in dimensions:
        words = [key.split() for key in _keys([m.display for m in dimension.members])]
        common = _common_suffix(words)
        for member, member_words in zip(dimension.members, words, strict=True):
            if common:
                yield dimension.identifier, " ".join(member_words[:-common]), member.name, None
            if member.name in ("OTHER", "UNKNOWN"):
                yield dimension.identifier, member.name.lower(), member.name, None


def _common_suffix(word_lists: list[list[str]]) -> int:
    """Number of trailing words shared by every list, leaving at least one word in each."""
    count = 0
    while all(len(words) > count + 1 for words in word_lists) and len({words[-count - 1] for words in word_lists}) == 1:
        count += 1
    return count
