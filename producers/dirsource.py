"""`relwatch ingest dir PATH`: backfill a directory of .txt, .html and .json files.

Where the metadata comes from, weakest first:

* the file name: a leading date (``2024-06-19_slug.txt``, ``2024-06-19T10-30_slug.html``) gives
  ``published``; a percent-encoded URL as the whole name (``https%3A%2F%2Fexample.org%2Fa.txt``)
  gives ``url``;
* in an HTML file, ``<link rel="canonical">`` or ``<meta property="og:url">`` gives ``url``;
* a YAML front matter block at the very top of a .txt or .html file (between two ``---``
  lines) may set ``url``, ``published``, ``title``, ``outlet``, ``lang`` and ``id``;
* a .json file is one corpus-format record (the ``ingest jsonl`` fields) or a list of them.

Text is decoded like feed bodies (BOM, declared charset, UTF-8, else a sniffed windows-1251 /
KOI8-R / windows-1252). The key is the article's stable id (canonical-URL hash, else a hash of
the text). Files that are not articles are *skipped* (other extensions, hidden files, a second
file with an id already pushed in this run); files that should be articles but cannot be read
*fail*; both are counted by reason, and every failure is logged with its path.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import structlog
import yaml
from tqdm import tqdm

from schemas.models import RawArticle
from schemas.topics import ARTICLES_RAW

from .articles import raw_article_from_record
from .feeds import FETCHED_AT_HEADER, decode_body
from .kafka_producer import DeliveryReport, delivering, send

log = structlog.get_logger(__name__)

SUFFIXES = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".json": "json"}
MAX_FILE_BYTES = 20 * 1024 * 1024
FILE_HEADER = "relwatch-file"
SOURCE_HEADER = "relwatch-source"
_META_KEYS = ("id", "url", "outlet", "lang", "published", "title")
_NAME_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T_ ](\d{2})[-:.](\d{2})(?:[-:.](\d{2}))?(?![0-9]))?"
)
_CANONICAL = re.compile(
    r"<link\b(?=[^>]*\brel\s*=\s*[\"']?canonical)[^>]*\bhref\s*=\s*[\"']([^\"'>\s]+)",
    re.IGNORECASE,
)
_OG_URL = re.compile(
    r"<meta\b(?=[^>]*\bproperty\s*=\s*[\"']og:url)[^>]*\bcontent\s*=\s*[\"']([^\"'>\s]+)",
    re.IGNORECASE,
)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",
                           re.DOTALL | re.MULTILINE)


class FileRejected(ValueError):
    """A file that should be an article but is not usable; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DirSummary:
    pushed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), first 100
    delivery: DeliveryReport = field(default_factory=DeliveryReport)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pushed": self.pushed,
            "delivered": self.delivery.delivered,
            "delivery_failed": self.delivery.failed,
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failures[:20]],
        }


def meta_from_filename(name: str) -> dict[str, str]:
    """``published`` from a leading date, ``url`` from a percent-encoded URL file name."""
    stem = name.rsplit(".", 1)[0] if Path(name).suffix.lower() in SUFFIXES else name
    meta: dict[str, str] = {}
    decoded = unquote(stem)
    if re.match(r"(?i)https?://\S+$", decoded):
        meta["url"] = decoded
        return meta
    match = _NAME_DATE.match(stem)
    if match:
        day, hour, minute, second = match.groups()
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return meta
        if hour is not None:
            meta["published"] = f"{day}T{hour}:{minute}:{second or '00'}"
        else:
            meta["published"] = day
    return meta


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a text that may start with a ``---`` YAML block."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise FileRejected("bad_front_matter", str(exc).splitlines()[0]) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FileRejected("bad_front_matter", "front matter is not a mapping")
    return meta, text[match.end():]


def _clean_meta(meta: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _META_KEYS:
        value = meta.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


def html_url(html: str) -> str | None:
    """The page's canonical URL (``<link rel=canonical>``, else ``og:url``), if absolute."""
    head = html[:20000]
    for pattern in (_CANONICAL, _OG_URL):
        match = pattern.search(head)
        if match and re.match(r"(?i)https?://", match.group(1)):
            return match.group(1)
    return None


def records_from_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> list[dict[str, Any]]:
    """Corpus-format records from one file; raises :class:`FileRejected`."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise FileRejected("unsupported_extension", path.suffix)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileRejected("too_large", f"{size} bytes > {max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise FileRejected("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from None
    if not data.strip():
        raise FileRejected("empty")
    from_name = meta_from_filename(path.name)
    if kind == "json":
        return _json_records(data, from_name)
    text, _encoding = decode_body(data, None)
    if "\x00" in text:
        raise FileRejected("binary", "NUL characters in a text file")
    meta, body = split_front_matter(text)
    record: dict[str, Any] = {**from_name}
    if kind == "html":
        found = html_url(body)
        if found:
            record["url"] = found
    record.update(_clean_meta(meta))
    if not body.strip():
        raise FileRejected("empty", "no text after the front matter")
    record["text"] = body.strip("\n") if kind == "text" else body
    record["content_type"] = kind
    return [record]


def _json_records(data: bytes, from_name: dict[str, str]) -> list[dict[str, Any]]:
    try:
        doc = json.loads(decode_body(data, "application/json; charset=utf-8")[0])
    except ValueError as exc:
        raise FileRejected("bad_json", str(exc)[:200]) from None
    items = doc if isinstance(doc, list) else [doc]
    records = []
    for item in items:
        if not isinstance(item, dict):
            raise FileRejected("bad_json", "expected an object or a list of objects")
        if not isinstance(item.get("text"), str) or not item["text"].strip():
            raise FileRejected("no_text", "a record has no 'text'")
        # the name's metadata only for a single record: a list shares one file name
        records.append({**(from_name if len(items) == 1 else {}), **item})
    return records


def iter_candidates(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), sorted, hidden ones included."""
    if root.is_file():
        yield root
        return
    yield from sorted(p for p in root.rglob("*") if p.is_file())


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if root.is_dir() else path.name
    except ValueError:
        return str(path)


def read_dir(
    root: Path, summary: DirSummary, tick: Callable[[], None] | None = None
) -> Iterator[tuple[str, RawArticle]]:
    """(relative path, article) for every usable record under ``root``; counts the rest.

    ``tick`` is called once per file looked at (the progress bar).
    """
    source = f"dir:{root.resolve().name}"
    seen_ids: set[str] = set()
    for path in iter_candidates(root):
        yield from _read_one(path, root, source, seen_ids, summary)
        if tick is not None:
            tick()


def _read_one(
    path: Path, root: Path, source: str, seen_ids: set[str], summary: DirSummary
) -> Iterator[tuple[str, RawArticle]]:
    rel = _relative(path, root)
    if any(part.startswith(".") for part in Path(rel).parts):
        summary.skipped["hidden"] += 1
        return
    if path.suffix.lower() not in SUFFIXES:
        summary.skipped["unsupported_extension"] += 1
        return
    try:
        records = records_from_file(path)
        articles = [raw_article_from_record(r, source=source) for r in records]
    except FileRejected as exc:
        _fail(summary, rel, exc.reason, str(exc))
        return
    except (ValueError, TypeError) as exc:  # pydantic ValidationError included
        _fail(summary, rel, "invalid_record", str(exc).splitlines()[0][:200])
        return
    for article in articles:
        if article.id in seen_ids:
            summary.skipped["duplicate_id"] += 1
            log.info("file_skipped", path=rel, reason="duplicate_id", id=article.id)
            continue
        seen_ids.add(article.id)
        yield rel, article


def _fail(summary: DirSummary, rel: str, reason: str, detail: str) -> None:
    summary.failed[reason] += 1
    if len(summary.failures) < 100:
        summary.failures.append((rel, detail))
    log.warning("file_failed", path=rel, reason=reason, detail=detail)


def ingest_dir(
    path: str | Path,
    bootstrap_servers: str,
    topic: str = ARTICLES_RAW.name,
    progress: bool = True,
    **producer_kwargs: Any,
) -> DirSummary:
    """Push every article file under ``path`` onto ``topic``; returns the summary."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(str(root))
    summary = DirSummary()
    total = sum(1 for _ in iter_candidates(root))
    with delivering(bootstrap_servers, client_id="relwatch-dir", **producer_kwargs) as (
            producer, report):
        summary.delivery = report
        with tqdm(total=total, desc="ingest dir", unit="file", disable=not progress,
                  file=sys.stderr) as bar:
            for rel, article in read_dir(root, summary, tick=lambda: bar.update(1)):
                headers = [(SOURCE_HEADER, (article.source or "").encode()),
                           (FILE_HEADER, rel.encode("utf-8", "replace")),
                           (FETCHED_AT_HEADER, _now_iso().encode())]
                send(producer, report, topic, article.id.encode(),
                     article.model_dump_json().encode(), headers)
                summary.pushed += 1
    log.info("ingest_dir_done", path=str(root), **summary.as_dict())
    return summary


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
