"""Feed poller logic without a network or a broker: decoding, parsing, URL safety, backoff,
the fetcher against httpx.MockTransport, and one poller cycle with a fake producer."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from producers.articles import stable_article_id
from producers.checkpoints import CheckpointStore
from producers.feeds import (
    FeedPoller,
    Fetcher,
    FetchError,
    Limits,
    backoff_delay,
    check_url,
    decode_body,
    extract_page,
    feeds_from_mapping,
    is_public_address,
    load_feeds,
    looks_like_html,
    parse_feed,
    redact_text,
    redact_url,
    retry_after_seconds,
    sniff_single_byte,
    success_delay,
)
from producers.kafka_producer import DeliveryReport
from producers.metrics import FeedMetrics
from schemas.models import RawArticle

REPO = Path(__file__).resolve().parents[3]
PUBLIC = "93.184.216.34"

# Invented text, written for these tests.
RU = ("Делегация северного соседа прибыла в приморский город для переговоров о торговле. "
      "Стороны обсудили поставки зерна, морские перевозки и обмен студентами.")
BG = "Министрите обсъдиха нови споразумения за сътрудничество в областта на енергетиката."


def public(host: str, port: int) -> list[str]:
    return [PUBLIC]


# ============================================================================================
# decoding
# ============================================================================================
@pytest.mark.parametrize("encoding", ["cp1251", "koi8_r", "utf-8"])
def test_undeclared_cyrillic_is_decoded(encoding: str) -> None:
    text, used = decode_body(RU.encode(encoding))
    assert text == RU
    assert used == ("utf-8" if encoding == "utf-8" else encoding)


def test_bulgarian_in_windows_1251_is_not_taken_for_koi8() -> None:
    assert sniff_single_byte(BG.encode("cp1251")) == "cp1251"


def test_utf8_bom_is_stripped() -> None:
    text, used = decode_body(b"\xef\xbb\xbf" + RU.encode())
    assert text == RU and used == "utf-8"


def test_western_single_byte_text_is_windows_1252() -> None:
    sample = "Le ministre a visité la région côtière, déjà célèbre."
    assert decode_body(sample.encode("cp1252")) == (sample, "cp1252")


def test_http_charset_and_in_document_declarations() -> None:
    assert decode_body(RU.encode("koi8_r"), "text/html; charset=KOI8-R")[0] == RU
    xml = f'<?xml version="1.0" encoding="windows-1251"?><a>{RU}</a>'
    assert decode_body(xml.encode("cp1251"))[1] == "cp1251"
    html = f'<html><head><meta charset="koi8-r"></head><body>{RU}</body></html>'
    assert RU in decode_body(html.encode("koi8_r"))[0]
    meta = ('<html><head><meta http-equiv="Content-Type" content="text/html; '
            f'charset=windows-1251"></head><body>{RU}</body></html>')
    assert RU in decode_body(meta.encode("cp1251"))[0]


def test_a_lying_declaration_is_ignored() -> None:
    text, used = decode_body(RU.encode("cp1251"), "text/html; charset=utf-8")
    assert text == RU and used == "cp1251"


def test_forced_encoding_wins() -> None:
    assert decode_body(RU.encode("koi8_r"), "text/html; charset=utf-8", forced="koi8-r")[0] == RU


# ============================================================================================
# parsing
# ============================================================================================
def rss(items: str, *, encoding: str = "utf-8", lang: str = "ru") -> str:
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>Тестовая лента</title><language>{lang}</language>{items}</channel></rss>")


ITEMS = (
    "<item><title>Первая</title><link>https://example.org/a/1?utm_source=rss</link>"
    f"<description>{RU}</description><pubDate>Mon, 03 Jun 2024 10:00:00 +0300</pubDate>"
    "<guid>one</guid></item>"
    "<item><title>Вторая</title><link>/a/2</link><description>кратко</description>"
    "<content:encoded><![CDATA[<p>Полный текст второй</p>]]></content:encoded></item>"
    "<item><title>Без ссылки</title><guid isPermaLink=\"false\">tag:x,2024:3</guid>"
    "<description>текст</description></item>"
)


def test_rss_items_ids_dates_content() -> None:
    feed = parse_feed(rss(ITEMS).encode(), feed_id="f", base_url="https://example.org/rss")
    assert feed.kind == "rss" and feed.language == "ru" and feed.title == "Тестовая лента"
    first, second, third = feed.items
    assert first.item_id == stable_article_id({"url": "https://example.org/a/1"})
    assert first.published == "2024-06-03T07:00:00+00:00"
    assert first.content is None and first.summary == RU and first.lang == "ru"
    assert second.link == "https://example.org/a/2"
    assert second.content == "<p>Полный текст второй</p>" and second.content_is_html
    assert third.link is None and third.item_id.startswith("g")


def test_windows_1251_feed_declared_and_undeclared() -> None:
    declared = rss(ITEMS, encoding="windows-1251").encode("cp1251")
    assert parse_feed(declared, feed_id="f", base_url="https://e.org/").items[0].summary == RU
    undeclared = rss(ITEMS).replace(' encoding="utf-8"', "").encode("cp1251")
    feed = parse_feed(undeclared, feed_id="f", base_url="https://e.org/")
    assert feed.encoding == "cp1251" and feed.items[0].title == "Первая"
    koi = rss(ITEMS).replace(' encoding="utf-8"', "").encode("koi8_r")
    assert parse_feed(koi, feed_id="f", base_url="https://e.org/").items[0].summary == RU


def test_atom_and_json_feed() -> None:
    atom = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
            'xml:lang="bg"><title>A</title><id>urn:a</id><updated>2024-06-19T09:00:00Z</updated>'
            '<entry><title>E</title><link href="https://example.org/e"/><id>urn:e</id>'
            f"<updated>2024-06-19T12:14:00+03:00</updated><summary>{BG}</summary></entry></feed>")
    entry = parse_feed(atom.encode(), feed_id="f", base_url="https://example.org/").items[0]
    assert entry.link == "https://example.org/e" and entry.summary == BG
    assert entry.published == "2024-06-19T09:14:00+00:00" and entry.lang == "bg"
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "language": "ru",
           "items": [{"id": "1", "url": "https://example.org/j", "content_html": "<p>x</p>",
                      "date_published": "2024-06-19T12:14:00+03:00"},
                     {"id": "2", "summary": "только кратко"}, "junk"]}
    feed = parse_feed(json.dumps(doc).encode(), feed_id="f", base_url="https://example.org/",
                      content_type="application/feed+json")
    assert feed.kind == "json" and [i.guid for i in feed.items] == ["1", "2"]
    assert feed.items[0].content_is_html
    assert str(feed.items[0].published).startswith("2024-06-19T09")


@pytest.mark.parametrize("body, kind", [
    (b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>a</ti', "malformed"),
    (b"<<<not xml at all", "malformed"),
    (b"<html><body><p>a page, not a feed</p></body></html>", "not_a_feed"),
    (b'{"hello": "world"}', "not_a_feed"),
    (b"{broken json", "malformed"),
])
def test_unusable_bodies_raise_with_a_kind(body: bytes, kind: str) -> None:
    with pytest.raises(FetchError) as err:
        parse_feed(body, feed_id="f", base_url="https://e.org/")
    assert err.value.kind == kind


def test_a_partly_broken_feed_keeps_the_readable_items() -> None:
    body = rss(ITEMS)[:-len("</channel></rss>")] + "<item><title>обрыв"
    feed = parse_feed(body.encode(), feed_id="f", base_url="https://example.org/")
    assert feed.problem and len(feed.items) >= 2


def test_non_http_links_fall_back_to_the_guid() -> None:
    items = "<item><title>t</title><link>javascript:alert(1)</link><guid>g1</guid></item>"
    item = parse_feed(rss(items).encode(), feed_id="f", base_url="https://e.org/").items[0]
    assert item.link is None and item.item_id.startswith("g")


# ============================================================================================
# URL safety
# ============================================================================================
@pytest.mark.parametrize("url", [
    "http://127.0.0.1/feed", "http://10.0.0.5/", "http://192.168.1.1/", "http://[::1]/",
    "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/", "http://0.0.0.0/",
    "http://[::ffff:10.0.0.1]/", "http://100.64.0.1/", "http://224.0.0.1/",
])
def test_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(FetchError) as err:
        check_url(url, allow_private=False, resolver=public)
    assert err.value.kind == "refused_address"


@pytest.mark.parametrize("url", ["ftp://example.org/f", "file:///etc/passwd", "gopher://x/",
                                 "data:text/plain,hi", "//example.org/x"])
def test_other_schemes_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(FetchError) as err:
        check_url(url, allow_private=True)
    assert err.value.kind == "refused_scheme"


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    with pytest.raises(FetchError) as err:
        check_url("https://rebind.example/", allow_private=False,
                  resolver=lambda h, p: [PUBLIC, "127.0.0.1"])
    assert err.value.kind == "refused_address" and "127.0.0.1" in err.value.reason


def test_allowed_private_and_public_targets() -> None:
    local = check_url("http://user:pw@127.0.0.1:8080/f?x=1", allow_private=True)
    assert local.addresses == () and local.url == "http://127.0.0.1:8080/f?x=1"
    assert (local.username, local.password) == ("user", "pw")
    target = check_url("https://Example.org/feed", allow_private=False, resolver=public)
    assert target.addresses == (PUBLIC,) and target.port == 443
    assert is_public_address(PUBLIC) and not is_public_address("fd00::1")


def test_dns_failure_is_its_own_kind() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(FetchError) as err:
        check_url("https://nowhere.invalid/", allow_private=False, resolver=fail)
    assert err.value.kind == "dns"


def test_credentials_never_reach_log_text() -> None:
    assert redact_url("https://bob:hunter2@example.org/f?api_key=s3&page=2") == (
        "https://***@example.org/f?api_key=***&page=2")
    assert "hunter2" not in redact_text("error for https://bob:hunter2@example.org/x")
    assert "hunter2" not in FetchError("connect", "https://bob:hunter2@h/x").reason


# ============================================================================================
# backoff
# ============================================================================================
def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(7)
    for failures in range(1, 12):
        raw = min(600.0, 10.0 * 2 ** (failures - 1))
        delays = [backoff_delay(failures, 10.0, 600.0, rng) for _ in range(200)]
        assert all(raw / 2 <= d <= raw for d in delays)
        assert len({round(d, 6) for d in delays}) > 150  # jittered
    assert backoff_delay(0, 10, 600) == 0.0
    assert backoff_delay(1, 10, 600, rng, retry_after=120) == 120
    assert backoff_delay(1, 10, 600, rng, retry_after=10_000) == 600
    assert all(90 <= success_delay(100, rng) <= 110 for _ in range(100))


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# ============================================================================================
# the fetcher, on httpx.MockTransport
# ============================================================================================
def fetcher(handler: Any) -> Fetcher:
    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False)
    return Fetcher(client, resolver=public)


def test_requests_go_to_the_checked_address_with_the_real_host() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"ok")

    response = fetcher(handler).get("https://example.org/feed", limits=Limits())
    assert response.body == b"ok" and response.url == "https://example.org/feed"
    assert seen[0].url.host == PUBLIC and seen[0].headers["host"] == "example.org"
    assert seen[0].extensions["sni_hostname"] == "example.org"


def test_conditional_get_sends_validators_and_understands_304() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        return httpx.Response(200, content=b"body", headers={"ETag": '"v1"'})

    f = fetcher(handler)
    first = f.get("https://example.org/f", limits=Limits())
    assert first.status == 200 and first.headers["etag"] == '"v1"'
    second = f.get("https://example.org/f", limits=Limits(), etag='"v1"',
                   last_modified="Mon, 03 Jun 2024 10:00:00 GMT")
    assert second.not_modified and second.body == b""


def test_redirects_are_followed_checked_and_capped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/loop":
            return httpx.Response(302, headers={"Location": "/loop"})
        if path == "/private":
            return httpx.Response(301, headers={"Location": "http://127.0.0.1/admin"})
        if path == "/old":
            return httpx.Response(301, headers={"Location": "/new"})
        return httpx.Response(200, content=path.encode())

    f = fetcher(handler)
    moved = f.get("https://example.org/old", limits=Limits())
    assert moved.body == b"/new" and moved.url == "https://example.org/new"
    with pytest.raises(FetchError) as err:
        f.get("https://example.org/loop", limits=Limits(max_redirects=3))
    assert err.value.kind == "too_many_redirects"
    with pytest.raises(FetchError) as err:
        f.get("https://example.org/private", limits=Limits())
    assert err.value.kind == "refused_address"


def test_credentials_go_to_their_origin_only() -> None:
    auth: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        auth[request.headers["host"]] = request.headers.get("authorization")
        if request.headers["host"] == "a.example":
            return httpx.Response(302, headers={"Location": "https://b.example/x"})
        return httpx.Response(200, content=b"x")

    fetcher(handler).get("https://u:p@a.example/feed", limits=Limits())
    assert auth["a.example"] is not None and auth["a.example"].startswith("Basic ")
    assert auth["b.example"] is None


def test_size_cap_by_header_and_by_stream() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/declared":
            return httpx.Response(200, content=b"x" * 5000)
        return httpx.Response(200, stream=httpx.ByteStream(b"y" * 5000))

    f = fetcher(handler)
    for path in ("/declared", "/streamed"):
        with pytest.raises(FetchError) as err:
            f.get(f"https://example.org{path}", limits=Limits(max_bytes=1000))
        assert err.value.kind == "too_large"


def test_http_errors_and_timeouts_have_kinds() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/500":
            return httpx.Response(503, headers={"Retry-After": "90"})
        if request.url.path == "/404":
            return httpx.Response(404)
        if request.url.path == "/429":
            return httpx.Response(429)
        raise httpx.ReadTimeout("slow", request=request)

    f = fetcher(handler)
    kinds = {}
    for path in ("/500", "/404", "/429", "/slow"):
        with pytest.raises(FetchError) as err:
            f.get(f"https://example.org{path}", limits=Limits())
        kinds[path] = (err.value.kind, err.value.retry_after, err.value.transient)
    assert kinds == {"/500": ("http_5xx", 90.0, True), "/404": ("http_4xx", None, False),
                     "/429": ("http_429", None, True), "/slow": ("timeout", None, True)}


def test_html_detection() -> None:
    assert looks_like_html("text/html; charset=utf-8", b"")
    assert not looks_like_html("application/pdf", b"%PDF-1.7")
    assert looks_like_html("", b"<!DOCTYPE html><html>")
    assert not looks_like_html("application/octet-stream", b"\x00\x01binary")


def page_html(title: str, body: str, *, charset: str | None = "utf-8") -> str:
    meta = f'<meta charset="{charset}">' if charset else ""
    paragraphs = "".join(f"<p>{body} Абзац номер {i} продолжает рассказ.</p>" for i in range(4))
    return (f'<!DOCTYPE html><html lang="ru"><head>{meta}<title>{title}</title>'
            '<meta property="article:published_time" content="2024-06-19T10:00:00+03:00">'
            f"</head><body><nav>Главная | Разделы | Поиск</nav><article><h1>{title}</h1>"
            f"{paragraphs}</article><footer>Подвал сайта</footer></body></html>")


def test_extract_page_main_text_title_date_language() -> None:
    page = extract_page(page_html("Заголовок", RU), url="https://example.org/a")
    assert page is not None
    assert RU[:40] in page.text and "Подвал" not in page.text
    assert page.title == "Заголовок" and page.lang == "ru" and page.date == "2024-06-19"
    assert extract_page("<html><body></body></html>") is None


# ============================================================================================
# FEEDS.yaml
# ============================================================================================
def test_defaults_merge_override_and_validation() -> None:
    cfg = feeds_from_mapping({
        "defaults": {"interval": 600, "allow_private": True},
        "feeds": [{"id": "a", "url": "http://127.0.0.1/a"},
                  {"id": "b", "url": "https://e.org/b", "interval": 60, "allow_private": False}],
    })
    a, b = cfg.feeds
    assert (a.interval, a.allow_private, b.interval, b.allow_private) == (600, True, 60, False)
    assert [f.interval for f in feeds_from_mapping(
        {"feeds": [{"id": "a", "url": "https://e.org/"}]}, interval=5).feeds] == [5]
    for bad in ({"feeds": [{"id": "a", "url": "ftp://e.org/"}]},
                {"feeds": [{"id": "a", "url": "https://e.org/", "intervall": 5}]},
                {"defaults": {"typo": 1}, "feeds": []},
                {"feeds": [{"id": "a", "url": "https://e.org/"}, {"id": "a", "url": "https://f/"}]},
                {"feeds": [{"id": "a b", "url": "https://e.org/"}]},
                {"feeds": [{"id": "a", "url": "https://e.org/", "encoding": "klingon"}]}):
        with pytest.raises(ValueError):
            feeds_from_mapping(bad)


def test_example_feeds_file_is_valid() -> None:
    cfg = load_feeds(REPO / "examples" / "FEEDS.yaml")
    assert cfg.feeds and len({f.id for f in cfg.feeds}) == len(cfg.feeds)


# ============================================================================================
# one poll with a fake producer
# ============================================================================================
class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.errbacks: list[Any] = []

    def add_callback(self, fn: Any) -> FakeFuture:
        self.callbacks.append(fn)
        return self

    def add_errback(self, fn: Any) -> FakeFuture:
        self.errbacks.append(fn)
        return self


class FakeProducer:
    """Records sends; acks (or fails) them when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]], FakeFuture]] = []
        self.offset = 0

    def send(self, topic: str, key: bytes, value: bytes, headers: Any) -> FakeFuture:
        future = FakeFuture()
        self.sent.append((topic, key, value, headers, future))
        return future

    def ack_all(self) -> None:
        for _topic, _key, _value, _headers, future in self.sent:
            meta = type("Meta", (), {"partition": 0, "offset": self.offset})()
            self.offset += 1
            for fn in future.callbacks:
                fn(meta)
            future.callbacks.clear()

    def fail_all(self) -> None:
        for *_rest, future in self.sent:
            for fn in future.errbacks:
                fn(RuntimeError("broker down"))
            future.errbacks.clear()
            future.callbacks.clear()

    def flush(self, timeout: float | None = None) -> None:
        self.ack_all()


class Site:
    """An in-memory web site for MockTransport: path → (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.hits.append(request.url.path)
        status, headers, body = self.routes.get(request.url.path, (404, {}, b""))
        etag = headers.get("ETag")
        if etag and request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(status, headers=headers, content=body)


def make_poller(site: Site, tmp_path: Path, **feed: Any) -> tuple[FeedPoller, FakeProducer]:
    cfg = feeds_from_mapping({"feeds": [{"id": "t", "url": "https://news.example/rss",
                                         "backoff_base": 10, "page_retries": 1, **feed}]})
    producer = FakeProducer()
    poller = FeedPoller(cfg, store=CheckpointStore(tmp_path / "s.sqlite3"),
                        producer=producer,
                        report=DeliveryReport(), topic="articles.raw", metrics=FeedMetrics(),
                        fetcher=fetcher(site.handler), rng=random.Random(1))
    return poller, producer


def feed_body(*numbers: int, summary_only: bool = True) -> bytes:
    items = ""
    for n in numbers:
        body = ("" if summary_only else
                f"<content:encoded><![CDATA[<p>{RU} Полная версия {n}.</p>]]></content:encoded>")
        items += (f"<item><title>Заметка {n}</title><link>https://news.example/n/{n}</link>"
                  f"<description>Кратко {n}</description>{body}"
                  f"<pubDate>Mon, 0{n} Jun 2024 10:00:00 +0000</pubDate></item>")
    return rss(items).encode()


def poll(poller: FeedPoller) -> float:
    return poller.apply(poller.poll_feed(poller.feeds[0]))


def test_poll_pushes_new_items_once_and_fetches_pages_for_summaries(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {"Content-Type": "application/rss+xml", "ETag": '"1"'},
                           feed_body(1, 2))
    for n in (1, 2, 3):
        site.routes[f"/n/{n}"] = (200, {"Content-Type": "text/html"},
                                  page_html(f"Страница {n}", RU, charset=None).encode("cp1251"))
    poller, producer = make_poller(site, tmp_path)
    assert 0 < poll(poller) <= 330
    assert [json.loads(v)["title"] for _t, _k, v, _h, _f in producer.sent] == [
        "Заметка 1", "Заметка 2"]  # oldest first
    _topic, key, value, headers, _ = producer.sent[0]
    article = RawArticle.model_validate_json(value)
    assert key.decode() == article.id == stable_article_id({"url": "https://news.example/n/1"})
    assert article.content_type == "text" and RU[:30] in article.text  # from the cp1251 page
    assert article.source == "feed:t" and article.outlet == "Тестовая лента"
    assert dict(headers)["relwatch-feed"] == b"t" and b"T" in dict(headers)["relwatch-fetched-at"]
    producer.ack_all()
    assert poller.store.counts("t") == {"acked": 2}

    poll(poller)  # 304
    assert len(producer.sent) == 2
    assert poller.metrics.value("relwatch_feed_not_modified_total", feed="t") == 1

    site.routes["/rss"] = (200, {"Content-Type": "application/rss+xml", "ETag": '"2"'},
                           feed_body(1, 2, 3))
    poll(poller)
    assert [json.loads(v)["title"] for _t, _k, v, _h, _f in producer.sent[2:]] == ["Заметка 3"]
    assert poller.metrics.value("relwatch_feed_items_seen_total", feed="t") == 2
    assert poller.metrics.value("relwatch_feed_items_new_total", feed="t") == 3


def test_pending_items_are_not_pushed_twice_and_failed_ones_are_redelivered(
        tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {}, feed_body(1, summary_only=False))
    poller, producer = make_poller(site, tmp_path, fetch_page="auto")
    poll(poller)
    poll(poller)  # still pending: seen, not re-sent
    assert len(producer.sent) == 1
    producer.fail_all()
    assert poller.report.failed == 1 and poller.store.pending_count() == 1
    assert poller.redeliver() == 1 and len(producer.sent) == 2
    producer.ack_all()
    assert poller.store.pending_count() == 0 and poller.redeliver() == 0


def test_transient_page_errors_defer_then_fall_back_to_the_summary(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {"ETag": '"e"'}, feed_body(1))
    site.routes["/n/1"] = (503, {}, b"")
    poller, producer = make_poller(site, tmp_path)
    poll(poller)
    assert producer.sent == [] and poller.store.feed_state("t").etag is None  # deferred
    poll(poller)  # second transient failure: page_retries=1 exhausted → summary
    article = RawArticle.model_validate_json(producer.sent[0][2])
    assert article.text == "Кратко 1" and article.content_type == "html"
    assert poller.metrics.value("relwatch_feed_errors_total", feed="t", kind="page_http_5xx") == 2
    assert poller.store.feed_state("t").etag == '"e"'


def test_permanent_page_problems_fall_back_at_once(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {}, feed_body(1, 2))
    site.routes["/n/1"] = (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4")
    site.routes["/n/2"] = (404, {}, b"")
    poller, producer = make_poller(site, tmp_path)
    poll(poller)
    assert [RawArticle.model_validate_json(v).text for _t, _k, v, _h, _f in producer.sent] == [
        "Кратко 1", "Кратко 2"]
    assert poller.metrics.value("relwatch_feed_errors_total", feed="t", kind="page_not_html") == 1


def test_fetch_page_never_and_private_links_refused(tmp_path: Path) -> None:
    site = Site()
    items = ("<item><title>x</title><link>http://10.0.0.7/internal</link>"
             "<description>Кратко</description></item>")
    site.routes["/rss"] = (200, {}, rss(items).encode())
    poller, producer = make_poller(site, tmp_path)
    poll(poller)
    assert "/internal" not in site.hits and len(producer.sent) == 1
    assert poller.metrics.value("relwatch_feed_errors_total", feed="t",
                                kind="page_refused_address") == 1
    site2 = Site()
    site2.routes["/rss"] = (200, {}, feed_body(1))
    poller2, producer2 = make_poller(site2, tmp_path / "2", fetch_page="never")
    poll(poller2)
    assert site2.hits == ["/rss"] and len(producer2.sent) == 1


def test_failures_back_off_and_are_counted(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (500, {}, b"")
    poller, _producer = make_poller(site, tmp_path)
    delays = [poll(poller) for _ in range(4)]
    assert [round(d / 10) for d in delays] != [1, 1, 1, 1]
    assert all(lo / 2 <= d <= lo for d, lo in zip(delays, (10, 20, 40, 80), strict=True))
    assert poller.store.feed_state("t").failures == 4
    assert poller.metrics.value("relwatch_feed_errors_total", feed="t", kind="http_5xx") == 4
    site.routes["/rss"] = (200, {}, feed_body(1))
    assert poll(poller) > 200 and poller.store.feed_state("t").failures == 0


def test_malformed_feed_is_an_error_not_a_crash(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {}, b"<rss><channel><item><title>oops</chan")
    poller, producer = make_poller(site, tmp_path)
    poll(poller)
    assert producer.sent == []
    assert poller.metrics.value("relwatch_feed_errors_total", feed="t", kind="malformed") == 1


def test_initial_delays_follow_the_stored_state(tmp_path: Path) -> None:
    site = Site()
    site.routes["/rss"] = (200, {}, feed_body(1))
    poller, _ = make_poller(site, tmp_path, interval=100)
    assert poller.initial_delays() == {"t": 0.0}
    poll(poller)
    assert 95 <= poller.initial_delays()["t"] <= 100


# ============================================================================================
# command line
# ============================================================================================
def test_cli_wiring_and_bad_feed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from producers.cli import add_ingest_commands, cmd_ingest_dir, cmd_ingest_feeds

    parser = argparse.ArgumentParser()
    add_ingest_commands(parser.add_subparsers(dest="source", required=True))
    args = parser.parse_args(["feeds", "F.yaml", "--once", "--interval", "5", "--state", "s.db",
                              "--metrics-port", "9100"])
    assert args.func is cmd_ingest_feeds and args.once and args.interval == 5.0
    assert (args.feeds_file, args.state, args.metrics_port) == ("F.yaml", "s.db", 9100)
    assert parser.parse_args(["dir", "archive"]).func is cmd_ingest_dir

    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds:\n  - id: x\n    url: file:///etc/passwd\n")
    for path in (bad, tmp_path / "missing.yaml"):
        assert cmd_ingest_feeds(parser.parse_args(["feeds", str(path)])) == 2
    assert "http or https" in capsys.readouterr().err
    assert cmd_ingest_dir(parser.parse_args(["dir", str(tmp_path / "nowhere")])) == 2


def test_a_second_poller_on_the_same_state_file_refuses_to_start(tmp_path: Path) -> None:
    import fcntl

    from producers.feeds import run_feeds

    state = tmp_path / "state.sqlite3"
    cfg = feeds_from_mapping({"feeds": [{"id": "a", "url": "https://e.org/"}]})
    with open(f"{state}.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert run_feeds(cfg, bootstrap_servers="127.0.0.1:1", topic="t", state_path=state,
                         once=True, install_signals=False) == 2
