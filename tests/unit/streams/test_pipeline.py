"""The whole pure pipeline (normalize → dedupe → extract + enrich → timeline merge) against the
gold events: the floor the issue sets (F1 ≥ 0.8, ≥ 0.9 of matched events with the exact date),
held on the seeds and the dev corpus. ``relwatch eval`` runs the same through the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.jsonl import read_articles
from streams.evaluate import EvalReport, load_gold, score
from streams.pipeline import run_in_process

from .test_extract import DEV, SEEDS, require


def _report(corpus: Path) -> EvalReport:
    with open(require(corpus) / "articles.jsonl", encoding="utf-8") as fh:
        raws = [a for _, a in read_articles(fh, "eval") if not isinstance(a, str)]
    return score(run_in_process(raws), load_gold(corpus / "gold_events.jsonl"))


@pytest.mark.parametrize(("corpus", "f1_floor"), [
    (SEEDS, 0.85),  # 0.903 measured (session 3)
    (DEV, 0.90),  # 0.923 measured (session 3)
], ids=["seeds", "dev"])
def test_the_timeline_meets_the_extraction_targets(corpus: Path, f1_floor: float) -> None:
    report = _report(corpus)
    assert report.f1 >= f1_floor, report.summary()
    assert report.date_accuracy >= 0.9, report.summary()
    assert report.entries_per_gold <= 1.15, report.summary()
