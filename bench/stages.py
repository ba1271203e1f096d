"""``python -m bench.stages``: the cost of each pure stage per article, in-process, one core.

Runs every article of the shared corpora (dev + seeds; examples/ otherwise) through
normalize, dedupe, extract + enrich and the timeline merge, ``--repeat`` times, and prints the
median and p95 milliseconds per stage; then the memory of the dedupe state, extrapolated to
100k articles from a generated stream. Figures, not assertions: see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc

from bench.stream import build_stream, load_records
from producers.articles import raw_article_from_record
from streams import dedupe, enrich, extract, normalize, timeline


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stage_costs(repeat: int) -> dict[str, dict[str, float]]:
    raws = [raw_article_from_record(r, ingested_at=1_790_000_000.0) for r in load_records()]
    normalize.warm_up()
    costs: dict[str, list[float]] = {"normalize": [], "dedupe": [], "extract+enrich": [],
                                     "timeline": []}
    for _ in range(repeat):
        dstate = dedupe.DedupeState(exact={}, signatures={})
        tstate = timeline.TimelineState.in_memory()
        for raw in raws:
            t0 = time.perf_counter()
            article = normalize.normalize(raw)
            t1 = time.perf_counter()
            verdict = dedupe.check_and_remember(article, dstate, now=article.ingested_at)
            t2 = time.perf_counter()
            mentions = [] if verdict.is_duplicate else [
                enrich.enrich(m) for m in extract.extract_events(article)]
            t3 = time.perf_counter()
            for mention in mentions:
                timeline.apply_mention(tstate, mention)
            t4 = time.perf_counter()
            costs["normalize"].append((t1 - t0) * 1000)
            costs["dedupe"].append((t2 - t1) * 1000)
            if not verdict.is_duplicate:
                costs["extract+enrich"].append((t3 - t2) * 1000)
            costs["timeline"].append((t4 - t3) * 1000)
    return {name: {"median_ms": statistics.median(v), "p95_ms": pct(v, 0.95)}
            for name, v in costs.items()}


def dedupe_memory_per_100k(n: int) -> float:
    items = build_stream(n, seed=3)
    articles = [normalize.normalize(i.article) for i in items]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    state = dedupe.DedupeState(exact={}, signatures={})
    for article in articles:
        dedupe.check_and_remember(article, state, now=article.ingested_at)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return grown / n * 100_000 / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-articles", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    stages = stage_costs(args.repeat)
    result: dict[str, object] = {"stages": stages}
    print("[bench.stages] measuring dedupe state memory", file=sys.stderr)
    result["dedupe_state_mb_per_100k"] = dedupe_memory_per_100k(args.memory_articles)
    for name, figures in stages.items():
        print(f"{name:<16} median {figures['median_ms']:7.2f} ms   p95 {figures['p95_ms']:7.2f} ms")
    print(f"dedupe state per 100k articles: {result['dedupe_state_mb_per_100k']:.0f} MB")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
