"""The pipeline must give the same timeline in every process.

Workers re-process messages after a crash or a rebalance, possibly in another process, so a
result that depends on the process (Python's per-process string hash seed orders sets) would
break the exactly-the-same-timeline guarantee of docs/delivery-semantics.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys
from producers.articles import raw_article_from_record
from streams.pipeline import run_in_process
from bench.stream import build_stream
records = [json.loads(line) for path in sys.argv[1:] for line in open(path, encoding="utf-8")]
raws = [raw_article_from_record(r, ingested_at=1_790_000_000.0) for r in records]
raws += [item.article for item in build_stream(600, seed=29)]  # mixes of corpus sentences
from streams import enrich, extract, normalize
for raw in raws:  # every article's mentions, reposts included
    for mention in extract.extract_events(normalize.normalize(raw)):
        print(enrich.enrich(mention).model_dump_json())
for entry in run_in_process(raws):
    print(entry.model_dump_json())
"""


def _timeline_in_a_process(hash_seed: str, paths: list[Path]) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, RELWATCH_LOG_LEVEL="ERROR")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, paths)], env=env, capture_output=True,
        text=True, timeout=300, check=True, cwd=Path(__file__).resolve().parents[3],
    )
    return done.stdout


def test_same_timeline_whatever_the_hash_seed(dev_dir: Path, seeds_dir: Path) -> None:
    paths = [dev_dir / "articles.jsonl", seeds_dir / "articles.jsonl"]
    first = _timeline_in_a_process("0", paths)
    assert first.count("\n") > 20
    for seed in ("1", "3"):
        assert _timeline_in_a_process(seed, paths) == first, f"PYTHONHASHSEED={seed} differs"


@pytest.fixture(autouse=True)
def _no_seed_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
