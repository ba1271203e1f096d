"""The feed poller against a real local HTTP server and the real broker.

The server (http.server on 127.0.0.1, in a thread) serves feeds and pages written for these
tests; feeds that point at it set ``allow_private: true`` except where the refusal is tested.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from producers.articles import stable_article_id
from producers.checkpoints import CheckpointStore, OutboxItem
from producers.feeds import FEED_HEADER, FeedPoller, feeds_from_mapping, run_feeds
from producers.kafka_producer import delivering
from producers.metrics import FeedMetrics
from producers.topics import ensure_topics
from schemas.models import RawArticle
from streams.kafka_io import Record, read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Invented sentences, written for these tests.
RU_SENTENCES = [
    "Делегация прибыла в портовый город для переговоров о поставках зерна.",
    "Стороны договорились открыть новый паромный маршрут к осени.",
    "Министры обсудили обмен студентами и совместные выставки.",
    "На встрече подписан протокол о сотрудничестве в области медицины.",
]


# ============================================================================================
# a small web site
# ============================================================================================
@dataclass
class Route:
    body: bytes | Callable[[], bytes] = b""
    status: int = 200
    content_type: str | None = "application/rss+xml"
    etag: bool = True
    delay: float = 0.0          # seconds before the status line
    trickle: float = 0.0        # seconds between body bytes (a slow server)
    truncate: bool = False      # announce more bytes than are sent, then hang up


@dataclass
class Site:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def hit(self, path: str, status: int) -> None:
        with self.lock:
            self.hits.setdefault(path, []).append((time.monotonic(), status))

    def statuses(self, path: str) -> list[int]:
        with self.lock:
            return [s for _t, s in self.hits.get(path, [])]

    def times(self, path: str) -> list[float]:
        with self.lock:
            return [t for t, _s in self.hits.get(path, [])]


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            route = site.routes.get(path)
            if route is None:
                site.hit(path, 404)
                self._send(404, b"", None, None)
                return
            if route.delay:
                time.sleep(route.delay)
            body = route.body() if callable(route.body) else route.body
            etag = f'"{hash(body) & 0xFFFFFFFF:x}"' if route.etag else None
            if route.status == 200 and etag and self.headers.get("If-None-Match") == etag:
                site.hit(path, 304)
                self._send(304, b"", None, etag)
                return
            site.hit(path, route.status)
            self._send(route.status, body if route.status == 200 else b"error",
                       route.content_type, etag, route.trickle, route.truncate)

        def _send(self, status: int, body: bytes, ctype: str | None, etag: str | None,
                  trickle: float = 0.0, truncate: bool = False) -> None:
            try:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body) + (500 if truncate else 0)))
                if truncate:
                    self.close_connection = True
                self.end_headers()
                if trickle:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(trickle)
                else:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(s))
    server.daemon_threads = True
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def raw_topic(kafka_bootstrap: str, namespace: str) -> str:
    ensure_topics(kafka_bootstrap, namespace)
    return f"{namespace}.articles.raw"


# ============================================================================================
# content
# ============================================================================================
def rss(items: list[str], *, encoding: str = "utf-8", declare: bool = True) -> str:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if declare else '<?xml version="1.0"?>'
    return (f'{decl}\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel><title>Тестовая лента</title><language>ru</language>{''.join(items)}"
            "</channel></rss>")


def item(base: str, n: int, *, full: bool = True, prefix: str = "n") -> str:
    text = RU_SENTENCES[n % len(RU_SENTENCES)]
    content = (f"<content:encoded><![CDATA[<p>{text} Заметка {n}.</p>]]></content:encoded>"
               if full else "")
    return (f"<item><title>Заметка {n}</title><link>{base}/{prefix}/{n}</link>"
            f"<description>Кратко о заметке {n}</description>{content}"
            f"<pubDate>Mon, 03 Jun 2024 {n // 60 % 24:02d}:{n % 60:02d}:00 +0000</pubDate>"
            "</item>")


def page(n: int, *, charset: str | None) -> str:
    meta = f'<meta charset="{charset}">' if charset else ""
    paragraphs = "".join(f"<p>{s} Абзац {i} страницы {n}.</p>"
                         for i, s in enumerate(RU_SENTENCES))
    return (f'<!DOCTYPE html><html lang="ru"><head>{meta}<title>Страница {n}</title></head>'
            f"<body><nav>Главная | Разделы</nav><article><h1>Страница {n}</h1>{paragraphs}"
            "</article><footer>Подвал</footer></body></html>")


def url_id(url: str) -> str:
    return stable_article_id({"url": url})


def records(bootstrap: str, topic: str) -> list[Record]:
    return list(read_topic(bootstrap, topic, timeout_s=30))


def config(feeds: list[dict[str, Any]], **top: Any) -> Any:
    defaults = {"allow_private": True, "connect_timeout": 2, "read_timeout": 2,
                "total_timeout": 5, "backoff_base": 0.5, "backoff_max": 4, "interval": 60}
    return feeds_from_mapping({"defaults": defaults, "feeds": feeds, **top})


def run_once(cfg: Any, bootstrap: str, topic: str, state: Path) -> int:
    return run_feeds(cfg, bootstrap_servers=bootstrap, topic=topic, state_path=state, once=True,
                     install_signals=False)


# ============================================================================================
# tests
# ============================================================================================
def test_304_and_a_growing_feed_push_only_new_items(
        site: Site, kafka_bootstrap: str, raw_topic: str, tmp_path: Path) -> None:
    numbers = [1, 2, 3]
    site.routes["/feed"] = Route(lambda: rss([item(site.base, n) for n in numbers]).encode())
    cfg = config([{"id": "grow", "url": f"{site.base}/feed"}])
    state = tmp_path / "state.sqlite3"

    assert run_once(cfg, kafka_bootstrap, raw_topic, state) == 0
    assert run_once(cfg, kafka_bootstrap, raw_topic, state) == 0
    assert site.statuses("/feed") == [200, 304]
    numbers.extend([4, 5])
    assert run_once(cfg, kafka_bootstrap, raw_topic, state) == 0
    assert site.statuses("/feed") == [200, 304, 200]

    got = records(kafka_bootstrap, raw_topic)
    assert [r.key.decode() for r in got if r.key] == [
        url_id(f"{site.base}/n/{n}") for n in (1, 2, 3, 4, 5)]
    first = RawArticle.model_validate_json(got[0].value or b"")
    assert first.source == "feed:grow" and first.content_type == "html"
    assert "Делегация" in first.text or "Стороны" in first.text
    assert got[0].headers[FEED_HEADER] == b"grow" and b"relwatch-fetched-at" in {
        k.encode() for k in got[0].headers}


def test_errors_timeouts_and_a_slow_server_back_off_without_holding_back_others(
        site: Site, kafka_bootstrap: str, raw_topic: str, tmp_path: Path) -> None:
    good_numbers = [1]
    site.routes["/good"] = Route(lambda: rss([item(site.base, n) for n in good_numbers]).encode())
    site.routes["/500"] = Route(status=500)
    site.routes["/timeout"] = Route(b"<rss/>", delay=3.0)             # > read_timeout 1 s
    site.routes["/slow"] = Route(rss([item(site.base, 99)]).encode(), trickle=0.05)  # > total
    site.routes["/broken"] = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><item>'
                                   b"<title>oops</titl")
    site.routes["/truncated"] = Route(rss([item(site.base, 98)]).encode(), truncate=True)
    cfg = config(
        [{"id": "good", "url": f"{site.base}/good", "interval": 0.5},
         {"id": "e500", "url": f"{site.base}/500", "interval": 0.5},
         {"id": "timeout", "url": f"{site.base}/timeout", "interval": 0.5, "read_timeout": 1},
         {"id": "slow", "url": f"{site.base}/slow", "interval": 0.5, "total_timeout": 1.5},
         {"id": "broken", "url": f"{site.base}/broken", "interval": 0.5},
         {"id": "trunc", "url": f"{site.base}/truncated", "interval": 0.5}],
        summary_interval=2, max_workers=8,
    )
    metrics = FeedMetrics()
    store = CheckpointStore(tmp_path / "state.sqlite3")
    with delivering(kafka_bootstrap) as (producer, report):
        poller = FeedPoller(cfg, store=store, producer=producer, report=report, topic=raw_topic,
                            metrics=metrics, rng=random.Random(3))
        runner = threading.Thread(target=poller.run)
        runner.start()
        try:
            for n in range(2, 9):  # the good feed grows while the others fail
                time.sleep(0.7)
                good_numbers.append(n)
            time.sleep(2.0)
        finally:
            poller.stop_event.set()
            runner.join(30)
    assert not runner.is_alive()
    store.close()

    keys = [r.key.decode() for r in records(kafka_bootstrap, raw_topic) if r.key]
    assert keys == [url_id(f"{site.base}/n/{n}") for n in range(1, 9)]  # all, once, in order
    assert len(site.times("/good")) >= 8  # polled on schedule all along

    def errors(feed: str, kind: str) -> float:
        return metrics.value("relwatch_feed_errors_total", feed=feed, kind=kind)

    assert errors("e500", "http_5xx") >= 3
    assert errors("timeout", "timeout") >= 1 and errors("slow", "timeout") >= 1
    assert errors("broken", "malformed") >= 3
    assert errors("trunc", "truncated") >= 1
    gaps = [b - a for a, b in zip(site.times("/500"), site.times("/500")[1:], strict=False)]
    assert gaps[-1] > 2 * gaps[0] and max(gaps) <= 4.5  # exponential, capped at backoff_max
    assert metrics.value("relwatch_feed_last_success_timestamp_seconds", feed="good") > 0
    assert metrics.value("relwatch_feed_last_success_timestamp_seconds", feed="e500") == 0


def test_windows_1251_feed_and_pages(
        site: Site, kafka_bootstrap: str, raw_topic: str, tmp_path: Path) -> None:
    site.routes["/feed-1251"] = Route(
        rss([item(site.base, n, full=False, prefix="p") for n in (1, 2)],
            encoding="windows-1251").encode("cp1251"),
        content_type="application/rss+xml",  # no charset: the XML declaration says it
    )
    site.routes["/feed-undeclared"] = Route(
        rss([item(site.base, 3, full=False, prefix="p")], declare=False).encode("cp1251"),
        content_type="text/xml",
    )
    site.routes["/p/1"] = Route(page(1, charset="windows-1251").encode("cp1251"),
                                content_type="text/html")
    site.routes["/p/2"] = Route(page(2, charset=None).encode("cp1251"),  # declared nowhere
                                content_type="text/html")
    site.routes["/p/3"] = Route(page(3, charset=None).encode("koi8_r"), content_type="text/html")
    cfg = config([{"id": "w1251", "url": f"{site.base}/feed-1251"},
                  {"id": "undecl", "url": f"{site.base}/feed-undeclared"}])
    assert run_once(cfg, kafka_bootstrap, raw_topic, tmp_path / "s.sqlite3") == 0

    by_url = {a.url: a for a in (RawArticle.model_validate_json(r.value or b"")
                                 for r in records(kafka_bootstrap, raw_topic))}
    assert set(by_url) == {f"{site.base}/p/{n}" for n in (1, 2, 3)}
    for n in (1, 2, 3):
        article = by_url[f"{site.base}/p/{n}"]
        assert article.content_type == "text" and article.title == f"Заметка {n}"
        assert RU_SENTENCES[0] in article.text and "Подвал" not in article.text
        assert article.lang == "ru"


def test_private_address_refused_without_allow_private(
        site: Site, kafka_bootstrap: str, raw_topic: str, tmp_path: Path) -> None:
    site.routes["/allowed"] = Route(rss([item(site.base, 1)]).encode())
    site.routes["/refused"] = Route(rss([item(site.base, 2)]).encode())
    cfg = config([{"id": "allowed", "url": f"{site.base}/allowed"},
                  {"id": "refused", "url": f"{site.base}/refused", "allow_private": False},
                  {"id": "localhost", "url": f"http://localhost:{site.base.rsplit(':', 1)[1]}"
                   "/refused", "allow_private": False}])
    metrics = FeedMetrics()
    store = CheckpointStore(tmp_path / "s.sqlite3")
    with delivering(kafka_bootstrap) as (producer, report):
        poller = FeedPoller(cfg, store=store, producer=producer, report=report, topic=raw_topic,
                            metrics=metrics)
        assert poller.run(once=True) == 0
    store.close()
    assert site.statuses("/refused") == []  # never even connected
    assert site.statuses("/allowed") == [200]
    for feed in ("refused", "localhost"):
        assert metrics.value("relwatch_feed_errors_total", feed=feed,
                             kind="refused_address") == 1
    assert [r.key.decode() for r in records(kafka_bootstrap, raw_topic) if r.key] == [
        url_id(f"{site.base}/n/1")]


def test_records_sent_before_a_crash_are_found_not_resent(
        kafka_bootstrap: str, raw_topic: str, tmp_path: Path) -> None:
    """The crash window between Kafka's ack and the checkpoint commit, made deterministic."""
    state = tmp_path / "s.sqlite3"
    store = CheckpointStore(state)
    cfg = config([{"id": "f", "url": "http://127.0.0.1:9/never"}])
    landed = OutboxItem("f", "id-landed", raw_topic, b"id-landed", b'{"x": 1}',
                        [(FEED_HEADER, b"f")], 1.0)
    lost = OutboxItem("f", "id-lost", raw_topic, b"id-lost", b'{"x": 2}', [(FEED_HEADER, b"f")],
                      2.0)
    with delivering(kafka_bootstrap) as (producer, report):
        poller = FeedPoller(cfg, store=store, producer=producer, report=report, topic=raw_topic)
        poller.recover(kafka_bootstrap)  # first start: the scan starts at the current end
        store.record_poll("f", "u", new_items=[landed, lost])
        # the "previous process" got `landed` onto the topic, then died before recording it
        producer.send(raw_topic, key=landed.key, value=landed.value, headers=landed.headers)
        producer.flush()
        # a different feed's record with the same key must not count
        producer.send(raw_topic, key=lost.key, value=b"{}", headers=[(FEED_HEADER, b"other")])
        producer.flush()
        found, resent = poller.recover(kafka_bootstrap)
        producer.flush()
    assert (found, resent) == (1, 1)
    assert store.pending_count() == 0
    got = [(r.key, r.headers.get(FEED_HEADER)) for r in records(kafka_bootstrap, raw_topic)]
    assert got == [(b"id-landed", b"f"), (b"id-lost", b"other"), (b"id-lost", b"f")]
    store.close()


def _start_poller(feeds_file: Path, state: Path, bootstrap: str, namespace: str,
                  log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELWATCH_LOG_FORMAT": "json", "RELWATCH_LOG_LEVEL": "INFO",
           "PYTHONPATH": str(REPO)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "producers.feeds", "--bootstrap", bootstrap,
             "--namespace", namespace, str(feeds_file), "--state", str(state),
             "--interval", "0.3", *extra],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_kill_and_restart_mid_run_nothing_twice_nothing_lost(
        site: Site, kafka_bootstrap: str, namespace: str, raw_topic: str,
        tmp_path: Path) -> None:
    total = 80
    started = time.monotonic()

    def published() -> int:  # one new item every 100 ms
        return min(total, 5 + int((time.monotonic() - started) / 0.1))

    site.routes["/live"] = Route(lambda: rss(
        [item(site.base, n, full=n % 2 == 0, prefix="a") for n in range(published(), 0, -1)]
    ).encode())
    for n in range(1, total + 1):
        site.routes[f"/a/{n}"] = Route(page(n, charset="utf-8").encode(),
                                       content_type="text/html", delay=0.02)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(yaml.safe_dump({
        "summary_interval": 1,
        "defaults": {"allow_private": True, "read_timeout": 2, "total_timeout": 5},
        "feeds": [{"id": "live", "url": f"{site.base}/live"}],
    }))
    state = tmp_path / "state.sqlite3"
    log = tmp_path / "poller.log"
    rng = random.Random(11)

    for _ in range(3):  # three hard kills at random moments
        proc = _start_poller(feeds_file, state, kafka_bootstrap, namespace, log)
        time.sleep(rng.uniform(2.0, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.3)  # items keep being published while the poller is down

    metrics_port = _free_port()
    proc = _start_poller(feeds_file, state, kafka_bootstrap, namespace, log,
                         "--metrics-port", str(metrics_port))
    try:
        deadline = time.monotonic() + 90
        want = {url_id(f"{site.base}/a/{n}") for n in range(1, total + 1)}
        keys: list[str] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            keys = [r.key.decode() for r in records(kafka_bootstrap, raw_topic) if r.key]
            if published() == total and want <= set(keys):
                break
            time.sleep(0.5)
        time.sleep(1.5)  # a few more polls: nothing more may come
        exposition = _scrape(metrics_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]
    keys = [r.key.decode() for r in records(kafka_bootstrap, raw_topic) if r.key]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert duplicates == [], log.read_text()[-3000:]
    assert set(keys) == want
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "feeds_cycle" for line in lines)
    assert any(line.get("event") == "feeds_stopping" for line in lines)
    with CheckpointStore(state) as store:
        assert store.pending_count() == 0 and store.counts("live") == {"acked": total}
    assert 'relwatch_feed_fetches_total{feed="live"}' in exposition
    assert 'relwatch_feed_last_success_timestamp_seconds{feed="live"}' in exposition


def test_ingest_dir_backfill(kafka_bootstrap: str, namespace: str, raw_topic: str,
                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from producers.cli import cmd_ingest_dir

    root = tmp_path / "archive"
    (root / "2024").mkdir(parents=True)
    (root / "2024" / "2024-06-19_visit.txt").write_bytes(
        f"---\nurl: https://example.org/a/1\ntitle: Визит\n---\n{RU_SENTENCES[0]}".encode("cp1251"))
    (root / "2024" / "page.html").write_text(page(5, charset="utf-8"), encoding="utf-8")
    (root / "records.json").write_text(json.dumps([{"id": "j1", "text": RU_SENTENCES[1]},
                                                   {"id": "j2", "text": RU_SENTENCES[2]}]))
    (root / "bad.json").write_text("{")
    (root / "notes.md").write_text("not an article")
    args = argparse.Namespace(path=str(root), no_progress=True, bootstrap=kafka_bootstrap,
                              namespace=namespace)
    assert cmd_ingest_dir(args) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (summary["pushed"], summary["delivered"], summary["delivery_failed"]) == (4, 4, 0)
    assert summary["skipped"] == {"unsupported_extension": 1}
    assert summary["failed"] == {"bad_json": 1}
    got = {r.key.decode(): r for r in records(kafka_bootstrap, raw_topic) if r.key}
    first = RawArticle.model_validate_json(got[url_id("https://example.org/a/1")].value or b"")
    assert first.text == RU_SENTENCES[0] and first.published == "2024-06-19"
    assert first.title == "Визит" and first.content_type == "text"
    assert {"j1", "j2"} <= set(got) and len(got) == 4
