"""The scorer: one-to-one matching on root, date at gold precision and countries."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.models import TimelineEntry
from streams.evaluate import actor_country, date_agrees, load_gold, score


def entry(
    eid: str, code: str, day: str, actors: list[str], precision: str = "day"
) -> TimelineEntry:
    return TimelineEntry(
        id=eid,
        date=day,
        date_precision=precision,
        cameo_code=code,
        cameo_root=code[:2],  # type: ignore[arg-type]
        actors=actors,
        source_actor=actors[0],
        target_actor=actors[-1],
        summary="",
        significance=0.5,
        mentions=[],
        mention_count=1,
        independent_source_count=1,
        confidence=0.5,
        first_seen=0.0,
        updated=0.0,
        extractor_version="t",
    )


GOLD = [
    {
        "gold_id": "G1",
        "date": "2024-06-19",
        "date_precision": "day",
        "cameo_root": "05",
        "cameo_code": "057",
        "actors": ["RUSGOV", "PRKGOV"],
        "articles": ["a1"],
    },
    {
        "gold_id": "G2",
        "date": "2024-03",
        "date_precision": "month",
        "cameo_root": "12",
        "cameo_code": None,
        "actors": ["RUS", "UNO"],
        "articles": ["a2"],
    },
    {
        "gold_id": "G3",
        "date": "1961",
        "date_precision": "year",
        "cameo_root": "05",
        "cameo_code": "057",
        "actors": ["RUS", "PRK"],
        "articles": ["a1"],
        "background": True,
    },
]


def test_actor_country() -> None:
    assert actor_country("RUSGOV") == "RUS" and actor_country("UNO") == "UNO"


def test_date_agreement_at_gold_precision() -> None:
    assert date_agrees("2024-06-18", "2024-06-19", "day")
    assert not date_agrees("2024-06-17", "2024-06-19", "day")
    assert not date_agrees("2024-06", "2024-06-19", "day")
    assert date_agrees("2024-03-28", "2024-03", "month")
    assert not date_agrees("2024", "2024-03", "month")
    assert date_agrees("1961-05", "1961", "year")


def test_perfect_run() -> None:
    entries = [
        entry("e1", "057", "2024-06-19", ["RUSGOV", "PRKGOV"]),
        entry("e2", "120", "2024-03-28", ["RUSGOV", "UNO", "PRK"]),
        entry("e3", "057", "1961", ["RUS", "PRK"], "year"),
    ]
    report = score(entries, GOLD)
    assert (report.precision, report.recall, report.f1) == (1.0, 1.0, 1.0)
    assert report.date_accuracy == 1.0 and report.entries_per_gold == 1.0


def test_duplicates_wrong_roots_and_missing_countries_are_false_positives() -> None:
    entries = [
        entry("e1", "057", "2024-06-18", ["RUSGOV", "PRKGOV"]),  # within a day, inexact
        entry("dup", "057", "2024-06-19", ["RUS", "PRK"]),  # a second entry for G1
        entry("root", "046", "2024-06-19", ["RUSGOV", "PRKGOV"]),
        entry("noun", "120", "2024-03-28", ["RUSGOV", "PRK"]),  # UNO missing
    ]
    report = score(entries, GOLD)
    assert report.n_matched == 1 and report.precision == 0.25
    assert report.recall == round(1 / 3, 4)
    assert report.entries_per_gold == 2.0
    assert report.unmatched_gold == ["G2", "G3"]


def test_maximum_matching_prefers_a_complete_assignment() -> None:
    gold = [
        {
            "gold_id": "A",
            "date": "2024-06-19",
            "date_precision": "day",
            "cameo_root": "04",
            "actors": ["RUS", "PRK"],
        },
        {
            "gold_id": "B",
            "date": "2024-06-18",
            "date_precision": "day",
            "cameo_root": "04",
            "actors": ["RUS", "PRK"],
        },
    ]
    entries = [
        entry("x", "042", "2024-06-18", ["RUS", "PRK"]),
        entry("y", "043", "2024-06-17", ["RUS", "PRK"]),
    ]
    assert score(entries, gold).n_matched == 2


def test_corpus_filter_and_loader(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(g) for g in GOLD) + "\n\n", encoding="utf-8")
    gold = load_gold(path)
    assert len(gold) == 3
    report = score([entry("e2", "120", "2024-03-28", ["RUS", "UNO"])], gold, {"a2"})
    assert report.n_gold == 1 and report.f1 == 1.0
