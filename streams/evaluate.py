"""Score timeline entries against gold events (precision, recall, F1, dates, duplication).

An entry and a gold event are *compatible* when they share the CAMEO root, the entry's date
agrees at the gold precision (within a day for day precision, the same month for month, the
same year for year; an entry coarser than the gold precision does not agree), and every gold
country is among the entry's actor countries (an actor code's country is its first three
letters: RUSGOV -> RUS; NATO and UNO stay whole).  Matching is one to one and of maximum size
(augmenting paths, trying the best-fitting pairs first).  Background gold events count like
any other: a system that flags background correctly still emits them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from schemas.models import TimelineEntry

_WHOLE_CODES = frozenset({"NATO", "UNO", "EU", "IGO"})


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Scores of a run; ``matches`` pairs entry ids with gold ids."""

    precision: float
    recall: float
    f1: float
    date_accuracy: float
    entries_per_gold: float
    n_entries: int
    n_gold: int
    n_matched: int
    matches: list[tuple[str, str]] = field(default_factory=list)
    unmatched_entries: list[str] = field(default_factory=list)
    unmatched_gold: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
            f"date_acc={self.date_accuracy:.3f} entries/gold={self.entries_per_gold:.2f} "
            f"(entries={self.n_entries} gold={self.n_gold} matched={self.n_matched})"
        )


def actor_country(code: str) -> str:
    """The country of an actor code: its first three letters (NATO, UNO stay whole)."""
    code = code.strip().upper()
    return code if code in _WHOLE_CODES else code[:3]


def load_gold(path: str | Path) -> list[dict[str, Any]]:
    """Gold events from a JSON-lines file (one object per line; blank lines skipped)."""
    events: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events


def _parse(value: str) -> tuple[int, int | None, int | None]:
    parts = [int(p) for p in value.split("-")]
    return parts[0], (parts[1] if len(parts) > 1 else None), (parts[2] if len(parts) > 2 else None)


def date_agrees(entry_date: str, gold_date: str, gold_precision: str) -> bool:
    """The entry date agrees with the gold date at the gold precision."""
    ey, em, ed = _parse(entry_date)
    gy, gm, gd = _parse(gold_date)
    if gold_precision == "year":
        return ey == gy
    if gold_precision == "month":
        return em is not None and (ey, em) == (gy, gm)
    if em is None or ed is None or gm is None or gd is None:
        return False
    return abs((date(ey, em, ed) - date(gy, gm, gd)).days) <= 1


def date_exact(entry_date: str, gold_date: str, gold_precision: str) -> bool:
    """The entry date equals the gold date at the gold precision."""
    length = {"year": 4, "month": 7, "day": 10}[gold_precision]
    return len(entry_date) >= length and entry_date[:length] == gold_date[:length]


def _entry_countries(entry: TimelineEntry) -> set[str]:
    return {actor_country(a) for a in [*entry.actors, entry.source_actor, entry.target_actor] if a}


def compatible(entry: TimelineEntry, gold: dict[str, Any]) -> bool:
    if str(entry.cameo_root) != str(gold["cameo_root"]):
        return False
    if not date_agrees(entry.date, str(gold["date"]), str(gold["date_precision"])):
        return False
    gold_countries = {actor_country(a) for a in gold.get("actors") or []}
    return gold_countries <= _entry_countries(entry)


def _fit(entry: TimelineEntry, gold: dict[str, Any]) -> float:
    score = 0.0
    if date_exact(entry.date, str(gold["date"]), str(gold["date_precision"])):
        score += 2.0
    if gold.get("cameo_code") and entry.cameo_code == gold["cameo_code"]:
        score += 1.0
    if entry.date_precision == gold["date_precision"]:
        score += 0.5
    return score


def score(
    entries: Sequence[TimelineEntry],
    gold: Sequence[dict[str, Any]],
    corpus_article_ids: set[str] | None = None,
) -> EvalReport:
    """Precision, recall and F1 of entries against gold, one-to-one maximum matching.

    With ``corpus_article_ids`` only gold events evidenced by at least one of those articles
    are expected (a run over part of a corpus is not blamed for the rest).
    """
    if corpus_article_ids is not None:
        gold = [
            g
            for g in gold
            if set(g.get("articles") or [e.get("article_id") for e in g.get("evidence", [])])
            & corpus_article_ids
        ]
    edges: list[list[tuple[float, int]]] = []
    for entry in entries:
        row = [(_fit(entry, g), j) for j, g in enumerate(gold) if compatible(entry, g)]
        row.sort(key=lambda x: -x[0])
        edges.append(row)
    match_of_gold: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for _fit_value, j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in match_of_gold or augment(match_of_gold[j], seen):
                match_of_gold[j] = i
                return True
        return False

    order = sorted(range(len(entries)), key=lambda i: -(edges[i][0][0] if edges[i] else -1))
    for i in order:
        augment(i, set())
    matched = [(entries[i].id, str(gold[j]["gold_id"])) for j, i in match_of_gold.items()]
    n_matched = len(matched)
    precision = n_matched / len(entries) if entries else 0.0
    recall = n_matched / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    exact = sum(
        1
        for j, i in match_of_gold.items()
        if date_exact(entries[i].date, str(gold[j]["date"]), str(gold[j]["date_precision"]))
    )
    matched_gold = set(match_of_gold)
    per_gold = sum(1 for row in edges if any(j in matched_gold for _, j in row))
    matched_entries = set(match_of_gold.values())
    return EvalReport(
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(f1, 4),
        date_accuracy=round(exact / n_matched, 4) if n_matched else 0.0,
        entries_per_gold=round(per_gold / n_matched, 4) if n_matched else 0.0,
        n_entries=len(entries),
        n_gold=len(gold),
        n_matched=n_matched,
        matches=sorted(matched, key=lambda m: m[1]),
        unmatched_entries=[e.id for i, e in enumerate(entries) if i not in matched_entries],
        unmatched_gold=[str(g["gold_id"]) for j, g in enumerate(gold) if j not in matched_gold],
    )
