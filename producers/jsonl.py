"""`relwatch ingest jsonl PATH|-`: push corpus-format JSON lines onto `articles.raw`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog
from tqdm import tqdm

from schemas.models import RawArticle
from schemas.topics import ARTICLES_RAW

from .articles import raw_article_from_record
from .kafka_producer import DeliveryReport, delivering, send

log = structlog.get_logger(__name__)


@dataclass
class IngestSummary:
    pushed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    @property
    def ok(self) -> bool:
        return self.delivery.failed == 0 and sum(self.skipped.values()) == 0


def read_articles(stream: IO[str], source: str) -> Iterator[tuple[int, RawArticle | str]]:
    """(line number, article) for every usable line; (line number, reason) for the others."""
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("line is not a JSON object")
            yield lineno, raw_article_from_record(record, source=source)
        except (ValueError, TypeError) as exc:  # JSONDecodeError and ValidationError included
            yield lineno, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def ingest_jsonl(
    path: str,
    bootstrap_servers: str,
    topic: str = ARTICLES_RAW.name,
    progress: bool = True,
    **producer_kwargs: object,
) -> IngestSummary:
    summary = IngestSummary()
    source = "stdin" if path == "-" else f"jsonl:{Path(path).name}"
    stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        with delivering(bootstrap_servers, **producer_kwargs) as (producer, report):
            summary.delivery = report
            bar = tqdm(desc="ingest", unit="art", disable=not progress, file=sys.stderr)
            for lineno, item in read_articles(stream, source):
                if isinstance(item, str):
                    summary.skipped[item.split(":")[0]] += 1
                    log.warning("line_skipped", path=path, line=lineno, reason=item)
                    continue
                send(producer, report, topic, item.id.encode(), item.model_dump_json().encode())
                summary.pushed += 1
                bar.update(1)
            bar.close()
    finally:
        if stream is not sys.stdin:
            stream.close()
    log.info(
        "ingest_done", path=path, pushed=summary.pushed, delivered=summary.delivery.delivered,
        failed=summary.delivery.failed, skipped=dict(summary.skipped),
    )
    return summary
