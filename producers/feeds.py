"""`relwatch ingest feeds FEEDS.yaml`: poll RSS 2.0, Atom and JSON Feed sources onto `articles.raw`.

One process polls many feeds. Each feed has its own schedule (interval after a success, jittered
exponential backoff after a failure); fetches run on worker threads, so a slow or dead
server delays nobody else. Per feed and poll:

1. conditional GET (ETag / Last-Modified) with connect, read and total timeouts, a size cap,
   redirects followed by hand (each hop checked) up to a cap;
2. the body is decoded (BOM, HTTP charset, XML/HTML declaration, else UTF-8 or a sniffed
   single-byte Cyrillic code page) and parsed (feedparser for XML, ``json`` for JSON Feed);
3. items already pushed (by any feed) are skipped; for an item that carries only a summary the
   linked page is fetched and its main text extracted with trafilatura (per-feed
   ``fetch_page``);
4. the new records and the response's validators are committed to the checkpoint store in one
   transaction, then sent; an item is marked delivered only when Kafka acknowledges it
   (``producers/checkpoints.py`` explains why that loses and repeats nothing across crashes).

Security: only http and https; a host that resolves to a private, loopback, link-local or
otherwise non-public address is refused unless the feed sets ``allow_private: true``, and the
connection then goes to the address that was checked (no DNS rebinding between check and
connect); credentials in a URL are sent as Basic auth to that origin only and never logged.
"""

from __future__ import annotations

import codecs
import concurrent.futures as cf
import fcntl
import functools
import hashlib
import ipaddress
import json
import random
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import structlog
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.models import RawArticle
from streams.security import client_security

from .articles import stable_article_id
from .checkpoints import CheckpointStore, OutboxItem
from .kafka_producer import DeliveryReport
from .metrics import FeedMetrics

log = structlog.get_logger(__name__)

MB = 1024 * 1024
DEFAULT_USER_AGENT = "relwatch-feeds/0.1"
FEED_HEADER = "relwatch-feed"
FETCHED_AT_HEADER = "relwatch-fetched-at"
ACCEPT_FEED = ("application/rss+xml, application/atom+xml, application/feed+json, "
               "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
ACCEPT_PAGE = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
TRANSIENT_KINDS = frozenset(
    {"timeout", "connect", "dns", "truncated", "protocol", "http_5xx", "http_429"}
)


# ============================================================================================
# Configuration: FEEDS.yaml
# ============================================================================================
class FeedOptions(BaseModel):
    """Per-feed settings; the ``defaults:`` block of FEEDS.yaml takes the same keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(300.0, ge=0.1, description="Seconds between polls after a success")
    fetch_page: Literal["auto", "always", "never"] = Field(
        "auto", description="Fetch the linked page: auto = when an item has only a summary"
    )
    allow_private: bool = Field(False, description="Allow private/loopback/link-local hosts")
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(20.0, gt=0, description="Longest wait for any one read")
    total_timeout: float = Field(60.0, gt=0, description="Longest whole response (slow servers)")
    max_bytes: int = Field(10 * MB, gt=0, description="Largest feed body accepted")
    max_page_bytes: int = Field(5 * MB, gt=0, description="Largest linked page accepted")
    max_redirects: int = Field(5, ge=0, le=20)
    backoff_base: float = Field(30.0, gt=0, description="First delay after a failure")
    backoff_max: float = Field(3600.0, gt=0, description="Longest delay between failed polls")
    max_pages_per_poll: int = Field(30, ge=0, description="Linked pages fetched per poll")
    page_retries: int = Field(2, ge=0, description="Polls that retry a page after a "
                              "transient error before the item goes out with its summary")
    encoding: str | None = Field(None, description="Force this charset (broken servers)")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")
    outlet: str | None = None
    lang: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None and _codec(value) is None:
            raise ValueError(f"unknown encoding {value!r}")
        return value


class FeedConfig(FeedOptions):
    """One entry of ``feeds:``."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    url: str
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        scheme = urlsplit(value.strip()).scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"feed URLs must be http or https, not {scheme or 'relative'!r}")
        if not urlsplit(value.strip()).hostname:
            raise ValueError("feed URL has no host")
        return value.strip()


class FeedsFile(BaseModel):
    """The whole FEEDS.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_agent: str = DEFAULT_USER_AGENT
    max_workers: int = Field(8, ge=1, le=64)
    summary_interval: float = Field(60.0, gt=0)
    redeliver_interval: float = Field(30.0, gt=0)
    seen_bound: int = Field(10_000, ge=100)
    state: str | None = None
    feeds: list[FeedConfig]


def load_feeds(path: str | Path, *, interval: float | None = None) -> FeedsFile:
    """Read and validate FEEDS.yaml; ``interval`` (``--interval``) overrides every feed's."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with a 'feeds' list")
    return feeds_from_mapping(raw, interval=interval, base_dir=Path(path).parent)


def feeds_from_mapping(
    raw: Mapping[str, Any], *, interval: float | None = None, base_dir: Path | None = None
) -> FeedsFile:
    """Validate a parsed FEEDS.yaml mapping (``defaults`` merged into every feed)."""
    data = dict(raw)
    defaults = data.pop("defaults", None) or {}
    FeedOptions.model_validate(defaults)  # typos in defaults fail here, with their own path
    feeds = []
    for entry in data.get("feeds") or []:
        if not isinstance(entry, dict):
            raise ValueError("every entry of 'feeds' must be a mapping")
        merged = {**defaults, **entry}
        if interval is not None:
            merged["interval"] = interval
        feeds.append(merged)
    data["feeds"] = feeds
    config = FeedsFile.model_validate(data)
    ids = [f.id for f in config.feeds]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate feed ids: {', '.join(dupes)}")
    if config.state and base_dir is not None and not Path(config.state).is_absolute():
        config = config.model_copy(update={"state": str(base_dir / config.state)})
    return config


# ============================================================================================
# URL safety
# ============================================================================================
class FetchError(Exception):
    """A fetch or parse failure with a short, metric-friendly kind."""

    def __init__(self, kind: str, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = redact_text(reason)
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT_KINDS


Resolver = Callable[[str, int], list[str]]

_SECRET_PARAMS = re.compile(
    r"(?i)^(?:access_token|api_?key|apikey|auth|key|pass(?:word)?|secret|sig(?:nature)?|token)$"
)
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact_url(url: str) -> str:
    """``url`` fit for a log line: user info replaced, secret-looking query values hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        (f"{k}=***" if _SECRET_PARAMS.match(k) else q)
        for q in parts.query.split("&") if q
        for k in [q.split("=", 1)[0]]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Hide URL credentials anywhere in a message (exception texts may quote URLs)."""
    return _USERINFO_IN_TEXT.sub(r"\1***@", text)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks, split for the request."""

    url: str                     # without user info
    host: str
    port: int
    scheme: str
    addresses: tuple[str, ...]   # checked addresses to connect to; () = let httpx resolve
    username: str | None = None
    password: str | None = None


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve_host) -> Target:
    """Refuse non-http(s) schemes and, unless allowed, hosts with a non-public address."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError("bad_url", str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("refused_scheme", f"scheme {scheme or 'none'!r} is not http(s)")
    host = parts.hostname
    if not host:
        raise FetchError("bad_url", "no host")
    port = port or (443 if scheme == "https" else 80)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    clean = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    user = parts.username
    password = parts.password
    if allow_private:
        return Target(clean, host, port, scheme, (), user, password)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchError("dns", f"{host}: {exc}") from None
    if not addresses:
        raise FetchError("dns", f"{host}: no address")
    bad = [a for a in addresses if not is_public_address(a)]
    if bad:
        raise FetchError("refused_address",
                         f"{host} resolves to non-public {', '.join(bad)} (allow_private is off)")
    return Target(clean, host, port, scheme, tuple(addresses), user, password)


# ============================================================================================
# Decoding
# ============================================================================================
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})[\"']")
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,300}?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]{1,40})", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_COMMON_CYRILLIC = frozenset("оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъёіїєґ")


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def content_type_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, if any."""
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def declared_charset(data: bytes) -> str | None:
    """The encoding an XML declaration or an HTML <meta> names in the first 4 kB."""
    head = data[:4096]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _cyrillic_score(text: str) -> float:
    """How much a decoding looks like Cyrillic prose: frequent lower-case letters score."""
    score = 0.0
    for ch in text:
        if "\u0400" <= ch <= "\u04ff":
            low = ch.lower()
            if ch == low:
                score += 2.0 if low in _COMMON_CYRILLIC else 1.0
            else:
                score -= 0.5
        elif "\u2500" <= ch <= "\u259f":  # box drawing: what KOI8-R's upper half decodes to
            score -= 2.0
    return score


def sniff_single_byte(data: bytes) -> str:
    """windows-1251, KOI8-R or windows-1252 for bytes that are not UTF-8.

    Cyrillic words are runs of high bytes; Western text has isolated ones. Between the two
    Cyrillic code pages, the right one yields mostly lower-case, frequent letters (the wrong
    one swaps case, because the pages put upper and lower case in opposite halves).
    """
    high = [i for i, b in enumerate(data) if b >= 0x80]
    if not high:
        return "utf-8"
    positions = set(high)
    in_runs = sum(1 for i in high if i - 1 in positions or i + 1 in positions)
    if in_runs / len(high) < 0.5:
        return "cp1252"
    return max(("cp1251", "koi8_r"),
               key=lambda enc: _cyrillic_score(data.decode(enc, errors="replace")))


def decode_body(
    data: bytes, content_type: str | None = None, *, forced: str | None = None
) -> tuple[str, str]:
    """(text, encoding): forced charset, BOM, HTTP charset, in-document declaration, UTF-8, sniff.

    A declared charset that fails to decode strictly is ignored (servers lie); the fallbacks
    never fail (replacement characters at worst).
    """
    if forced:
        enc = _codec(forced) or "utf-8"
        return data.decode(enc, errors="replace"), enc
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(enc, errors="replace"), enc
    for candidate in (content_type_charset(content_type), declared_charset(data)):
        codec = _codec(candidate)
        if codec is None:
            continue
        enc = codec
        if enc in ("latin-1", "iso8859-1", "ascii"):
            enc = "cp1252"  # as browsers do (WHATWG encoding standard)
        try:
            return data.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        enc = sniff_single_byte(data)
        return data.decode(enc, errors="replace"), enc


# ============================================================================================
# HTTP
# ============================================================================================
@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * MB
    max_redirects: int = 5

    @classmethod
    def for_feed(cls, feed: FeedOptions, *, page: bool = False) -> Limits:
        return cls(feed.connect_timeout, feed.read_timeout, feed.total_timeout,
                   feed.max_page_bytes if page else feed.max_bytes, feed.max_redirects)


@dataclass(frozen=True)
class Response:
    url: str                      # the final URL (after redirects), without user info
    status: int
    headers: httpx.Headers
    body: bytes = b""

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", ""))


_REDIRECTS = (301, 302, 303, 307, 308)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _classify(exc: Exception) -> FetchError:
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return FetchError("timeout", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.ConnectError):
        return FetchError("connect", str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        kind = "truncated" if ("incomplete" in text or "peer closed" in text) else "protocol"
        return FetchError(kind, text)
    if isinstance(exc, httpx.DecodingError):
        return FetchError("decode", str(exc))
    if isinstance(exc, httpx.HTTPError | OSError):
        return FetchError("http", f"{type(exc).__name__}: {exc}")
    return FetchError("error", f"{type(exc).__name__}: {exc}")


class Fetcher:
    """GET with the poller's rules: checked hops, pinned addresses, caps, no logged secrets.

    ``client`` may be any ``httpx.Client`` (tests pass one with a ``MockTransport``); it must
    not follow redirects itself. ``resolver`` maps (host, port) to addresses.
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        resolver: Resolver = resolve_host,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.client = client or httpx.Client(
            follow_redirects=False,
            trust_env=False,
            # no connection reuse: a pinned connection carries one host's TLS session
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.resolver = resolver
        self.user_agent = user_agent

    def close(self) -> None:
        self.client.close()

    def get(
        self,
        url: str,
        *,
        limits: Limits,
        allow_private: bool = False,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = ACCEPT_FEED,
        headers: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> Response:
        """Fetch ``url``; raises :class:`FetchError` (kind + reason) on any failure."""
        deadline = time.monotonic() + limits.total_timeout
        current = url
        origin: tuple[str, str, int] | None = None
        auth: httpx.BasicAuth | None = None
        for _hop in range(limits.max_redirects + 1):
            target = check_url(current, allow_private=allow_private, resolver=self.resolver)
            if origin is None:
                origin = (target.scheme, target.host, target.port)
                if target.username is not None:
                    auth = httpx.BasicAuth(target.username, target.password or "")
            request_headers = {"User-Agent": self.user_agent, "Accept": accept,
                               "Accept-Encoding": "gzip, deflate", **(headers or {})}
            if etag:
                request_headers["If-None-Match"] = etag
            if last_modified:
                request_headers["If-Modified-Since"] = last_modified
            same_origin = origin == (target.scheme, target.host, target.port)
            try:
                response = self._get_once(
                    target, request_headers, auth if same_origin else None, limits, deadline,
                    cancel,
                )
            except Exception as exc:  # every failure becomes a FetchError with a kind
                raise _classify(exc) from None
            if isinstance(response, str):  # a redirect: its Location, resolved
                current = urljoin(target.url, response)
                continue
            return response
        raise FetchError("too_many_redirects", f"more than {limits.max_redirects} redirects")

    def _get_once(
        self,
        target: Target,
        headers: dict[str, str],
        auth: httpx.BasicAuth | None,
        limits: Limits,
        deadline: float,
        cancel: threading.Event | None,
    ) -> Response | str:
        timeout = httpx.Timeout(connect=limits.connect_timeout, read=limits.read_timeout,
                                write=limits.read_timeout, pool=limits.connect_timeout)
        attempts = target.addresses[:3] or (None,)
        for n, address in enumerate(attempts):
            request_url = httpx.URL(target.url)
            extensions: dict[str, Any] = {}
            send_headers = dict(headers)
            if address is not None:  # connect to the checked address, talk to the named host
                send_headers["Host"] = request_url.netloc.decode("ascii")
                extensions["sni_hostname"] = request_url.raw_host.decode("ascii")
                request_url = request_url.copy_with(host=address)
            request = self.client.build_request(
                "GET", request_url, headers=send_headers, timeout=timeout,
                extensions=extensions,
            )
            try:
                response = self.client.send(request, stream=True, auth=auth,
                                            follow_redirects=False)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if n + 1 < len(attempts):
                    continue
                raise
            try:
                return self._read(target, response, limits, deadline, cancel)
            finally:
                response.close()
        raise FetchError("connect", "no address to connect to")  # pragma: no cover

    @staticmethod
    def _read(
        target: Target,
        response: httpx.Response,
        limits: Limits,
        deadline: float,
        cancel: threading.Event | None,
    ) -> Response | str:
        status = response.status_code
        if status in _REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise FetchError("protocol", f"HTTP {status} without Location")
            return str(location)
        if status == 304:
            return Response(target.url, status, response.headers)
        if status >= 400:
            kind = "http_429" if status == 429 else ("http_5xx" if status >= 500 else "http_4xx")
            raise FetchError(kind, f"HTTP {status}",
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
        if status != 200:
            raise FetchError("http_status", f"HTTP {status}")
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            raise FetchError("too_large", f"Content-Length {declared} > {limits.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limits.max_bytes:
                raise FetchError("too_large", f"body over {limits.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"response not complete in {limits.total_timeout}s")
            if cancel is not None and cancel.is_set():
                raise FetchError("cancelled", "shutting down")
            chunks.append(chunk)
        return Response(target.url, status, response.headers, b"".join(chunks))


# ============================================================================================
# Parsing feeds
# ============================================================================================
@dataclass(frozen=True)
class FeedItem:
    """One feed entry, format-independent."""

    item_id: str                 # the article id: hash of the canonical link, else of the guid
    link: str | None
    guid: str | None
    title: str | None
    content: str | None          # full content (content:encoded, Atom content, content_html)
    content_is_html: bool
    summary: str | None
    published: str | None        # ISO 8601 UTC when the feed's date parsed, else as given
    published_ts: float | None
    lang: str | None


@dataclass(frozen=True)
class ParsedFeed:
    kind: Literal["rss", "atom", "json", "unknown"]
    title: str | None
    language: str | None
    items: list[FeedItem]
    encoding: str
    problem: str | None = None   # a recoverable parse problem (the feed was partly readable)


def item_id_for(feed_id: str, link: str | None, guid: str | None) -> str | None:
    """The article id: the canonical-URL hash of the link, else a hash of feed and guid."""
    if link:
        return stable_article_id({"url": link})
    if guid:
        return "g" + hashlib.sha1(f"{feed_id}\0{guid}".encode()).hexdigest()[:20]
    return None


def _http_link(link: Any, base: str) -> str | None:
    if not isinstance(link, str) or not link.strip():
        return None
    absolute = urljoin(base, link.strip())
    return absolute if urlsplit(absolute).scheme.lower() in ("http", "https") else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _lang(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip().replace("_", "-").split("-")[0].lower() or None
    return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_feed(
    data: bytes, *, feed_id: str, base_url: str, content_type: str | None = None,
    forced_encoding: str | None = None,
) -> ParsedFeed:
    """Parse RSS 2.0, Atom or JSON Feed bytes; raises ``FetchError`` for unusable bodies."""
    text, encoding = decode_body(data, content_type, forced=forced_encoding)
    head = text.lstrip()[:1]
    if "json" in (content_type or "").lower() or head == "{":
        return _parse_json_feed(text, encoding, feed_id=feed_id, base_url=base_url)
    return _parse_xml_feed(text, encoding, feed_id=feed_id, base_url=base_url)


def _parse_json_feed(text: str, encoding: str, *, feed_id: str, base_url: str) -> ParsedFeed:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise FetchError("malformed", f"JSON: {exc}") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not (isinstance(version, str) and version.startswith("https://jsonfeed.org/version/")
            and isinstance(doc.get("items"), list)):
        raise FetchError("not_a_feed", "JSON without a JSON Feed version and items")
    feed_lang = _lang(doc.get("language"))
    items: list[FeedItem] = []
    for raw in doc["items"]:
        if not isinstance(raw, dict):
            continue
        link = _http_link(raw.get("url"), base_url) or _http_link(raw.get("external_url"),
                                                                   base_url)
        guid = str(raw["id"]) if raw.get("id") not in (None, "") else None
        item_id = item_id_for(feed_id, link, guid)
        if item_id is None:
            continue
        html = _text(raw.get("content_html"))
        published = _text(raw.get("date_published")) or _text(raw.get("date_modified"))
        published_ts: float | None = None
        if published:
            try:
                when = datetime.fromisoformat(published.replace("Z", "+00:00"))
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                published_ts = when.timestamp()
                published = _iso(published_ts)
            except ValueError:
                pass
        items.append(FeedItem(
            item_id=item_id, link=link, guid=guid, title=_text(raw.get("title")),
            content=html or _text(raw.get("content_text")), content_is_html=html is not None,
            summary=_text(raw.get("summary")), published=published, published_ts=published_ts,
            lang=_lang(raw.get("language")) or feed_lang,
        ))
    return ParsedFeed("json", _text(doc.get("title")), feed_lang, items, encoding)


_XML_DECL_ENCODING = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2")
_BENIGN_BOZO = ("CharacterEncodingOverride", "NonXMLContentType", "CharacterEncodingUnknown")


def _parse_xml_feed(text: str, encoding: str, *, feed_id: str, base_url: str) -> ParsedFeed:
    import io

    import feedparser

    # We decoded the bytes ourselves (feedparser guesses windows-1252 for undeclared bytes):
    # hand it UTF-8 and say so, in the header and in the XML declaration.
    utf8 = _XML_DECL_ENCODING.sub(r"\1\2utf-8\2", text, count=1).encode("utf-8")
    parsed: Any = feedparser.parse(
        io.BytesIO(utf8),
        response_headers={"content-type": "application/xml; charset=utf-8",
                          "content-location": base_url},
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    version = str(parsed.get("version") or "")
    problem: str | None = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        if type(exc).__name__ not in _BENIGN_BOZO:
            problem = f"{type(exc).__name__}: {exc}"[:300]
    entries = list(parsed.get("entries") or [])
    if problem and not entries:
        raise FetchError("malformed", problem)
    if not version and not entries:
        if problem:
            raise FetchError("malformed", problem)
        raise FetchError("not_a_feed", "no RSS, Atom or JSON Feed found")
    feed_meta = parsed.get("feed") or {}
    feed_lang = _lang(feed_meta.get("language"))
    items: list[FeedItem] = []
    for entry in entries:
        link = _http_link(entry.get("link"), base_url)
        guid = _text(entry.get("id"))
        item_id = item_id_for(feed_id, link, guid)
        if item_id is None:
            continue
        content = None
        content_is_html = False
        content_lang = None
        for part in entry.get("content") or []:
            value = _text(part.get("value"))
            if value:
                content = value
                content_is_html = "html" in str(part.get("type") or "")
                content_lang = _lang(part.get("language"))
                break
        summary_detail = entry.get("summary_detail") or {}
        published_ts: float | None = None
        struct = entry.get("published_parsed") or entry.get("updated_parsed")
        if struct:
            year, month, day, hour, minute, second = (int(v) for v in struct[:6])
            published_ts = datetime(year, month, day, hour, minute, second,
                                    tzinfo=UTC).timestamp()
        published = _iso(published_ts) if published_ts is not None else (
            _text(entry.get("published")) or _text(entry.get("updated")))
        items.append(FeedItem(
            item_id=item_id, link=link, guid=guid, title=_text(entry.get("title")),
            content=content, content_is_html=content_is_html,
            summary=_text(entry.get("summary")) if content is None or
            entry.get("summary") != content else None,
            published=published, published_ts=published_ts,
            lang=content_lang or _lang(summary_detail.get("language")) or feed_lang,
        ))
    if problem and not items:
        raise FetchError("malformed", problem)
    kind: Literal["rss", "atom", "unknown"] = (
        "atom" if version.startswith("atom") else "rss" if version.startswith("rss") else "unknown"
    )
    return ParsedFeed(kind, _text(feed_meta.get("title")), feed_lang, items, encoding, problem)


# ============================================================================================
# Linked pages
# ============================================================================================
@dataclass(frozen=True)
class PageContent:
    text: str
    title: str | None
    date: str | None
    lang: str | None


_HTML_LANG = re.compile(r"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)",
                        re.IGNORECASE)
_CONTENT_LANGUAGE = re.compile(
    r"<meta[^>]*http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*content\s*=\s*[\"']?([A-Za-z-]+)",
    re.IGNORECASE,
)


def looks_like_html(content_type: str, data: bytes) -> bool:
    """HTML by Content-Type, or (missing/generic type) by its first tags."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        return True
    if ctype and ctype not in ("application/octet-stream", "text/plain"):
        return False
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


def extract_page(html: str, url: str | None = None) -> PageContent | None:
    """Main text, title, date and language of an article page (trafilatura), or None."""
    import trafilatura

    match = _HTML_LANG.search(html[:5000]) or _CONTENT_LANGUAGE.search(html[:5000])
    lang = _lang(match.group(1)) if match else None
    try:
        doc: Any = trafilatura.bare_extraction(
            html, url=url, fast=True, with_metadata=True, include_comments=False,
            include_images=False, include_links=False, include_formatting=False,
            deduplicate=False,
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
    except Exception:  # trafilatura raises assorted errors on broken markup
        return None
    text = str(getattr(doc, "text", None) or "").strip() if doc is not None else ""
    if not text:
        return None
    return PageContent(
        text=text,
        title=_text(getattr(doc, "title", None)),
        date=_text(getattr(doc, "date", None)),
        lang=lang or _lang(getattr(doc, "language", None)),
    )


# ============================================================================================
# Scheduling
# ============================================================================================
def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None,
                  retry_after: float | None = None) -> float:
    """Delay after ``failures`` consecutive failures: exponential, capped, "equal jitter".

    The delay lies in [d/2, d] for d = min(cap, base * 2**(failures-1)); a server's Retry-After
    is honoured (up to ``cap``).
    """
    if failures <= 0:
        return 0.0
    uniform = rng.uniform if rng is not None else random.uniform
    raw = min(cap, base * 2 ** min(failures - 1, 30))
    delay: float = raw / 2 + uniform(0, raw / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def success_delay(interval: float, rng: random.Random | None = None) -> float:
    """The next poll after a success: the interval ±10 % so that feeds drift apart."""
    uniform = rng.uniform if rng is not None else random.uniform
    delay: float = interval * uniform(0.9, 1.1)
    return delay


# ============================================================================================
# The poller
# ============================================================================================
@dataclass
class PollOutcome:
    """What one poll of one feed produced (computed on a worker thread)."""

    feed: FeedConfig
    fetched_at: float
    error: FetchError | None = None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    new_items: list[OutboxItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seen: int = 0
    deferred: int = 0
    problem: str | None = None
    nbytes: int = 0


class Stopping(Exception):
    """Raised inside a poll when the poller is shutting down."""


class FeedPoller:
    """Polls every feed of a FeedsFile onto ``topic`` through ``producer``.

    ``producer`` is a kafka-python producer (see ``kafka_producer.delivering``); records are
    sent only after the checkpoint store holds them, and marked delivered in the ack callback.
    """

    def __init__(
        self,
        config: FeedsFile,
        *,
        store: CheckpointStore,
        producer: KafkaProducer,
        report: DeliveryReport,
        topic: str,
        metrics: FeedMetrics | None = None,
        fetcher: Fetcher | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.feeds = [f for f in config.feeds if f.enabled]
        self.store = store
        self.producer = producer
        self.report = report
        self.topic = topic
        self.metrics = metrics or FeedMetrics()
        self.fetcher = fetcher or Fetcher(user_agent=config.user_agent)
        self.rng = rng or random.Random()
        self.stop_event = threading.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._page_attempts: dict[tuple[str, str], int] = {}
        self._slots = threading.BoundedSemaphore(config.max_workers)
        self._cycle = 0

    # -- one poll (worker thread) ----------------------------------------------------------
    def poll_feed(self, feed: FeedConfig) -> PollOutcome:
        """Fetch, parse and prepare one feed's new records; never raises."""
        started = time.time()
        outcome = PollOutcome(feed, started)
        try:
            self._poll(feed, outcome)
        except FetchError as exc:
            outcome.error = exc
        except Stopping:
            outcome.error = FetchError("cancelled", "shutting down")
        except Exception as exc:  # a bug or a library surprise must not stop the poller
            if self.stop_event.is_set():  # the store or the client closed under us
                outcome.error = FetchError("cancelled", "shutting down")
            else:
                log.exception("feed_poll_crashed", feed=feed.id)
                outcome.error = FetchError("internal", f"{type(exc).__name__}: {exc}")
        return outcome

    def _poll(self, feed: FeedConfig, outcome: PollOutcome) -> None:
        state = self.store.feed_state(feed.id)
        same_url = state.url == redact_url(feed.url)
        self.metrics.fetch(feed.id)
        response = self.fetcher.get(
            feed.url, limits=Limits.for_feed(feed), allow_private=feed.allow_private,
            etag=state.etag if same_url else None,
            last_modified=state.last_modified if same_url else None,
            headers=feed.headers, cancel=self.stop_event,
        )
        outcome.nbytes = len(response.body)
        self.metrics.body(feed.id, outcome.nbytes)
        outcome.etag = response.headers.get("etag") or (state.etag if same_url else None)
        outcome.last_modified = response.headers.get("last-modified") or (
            state.last_modified if same_url else None)
        if response.not_modified:
            outcome.not_modified = True
            return
        parsed = parse_feed(response.body, feed_id=feed.id, base_url=response.url,
                            content_type=response.content_type, forced_encoding=feed.encoding)
        outcome.problem = parsed.problem
        unique = list({item.item_id: item for item in parsed.items}.values())
        already = self.store.seen(item.item_id for item in unique)
        outcome.seen = sum(1 for item in unique if item.item_id in already)
        fresh = [item for item in unique if item.item_id not in already]
        # oldest first: feeds list newest first, and the topic should follow publication order
        fresh.reverse()
        fresh.sort(key=lambda item: item.published_ts or 0.0)
        pages_left = feed.max_pages_per_poll
        fetched_at = _iso(outcome.fetched_at)
        for item in fresh:
            if self.stop_event.is_set():
                raise Stopping
            page: PageContent | None = None
            wants_page = feed.fetch_page == "always" or (
                feed.fetch_page == "auto" and not item.content)
            if item.link is not None and wants_page:
                if pages_left <= 0:
                    outcome.deferred += 1
                    continue
                pages_left -= 1
                try:
                    page = self._fetch_page(feed, item, item.link)
                except FetchError as exc:
                    key = (feed.id, item.item_id)
                    tries = self._page_attempts.get(key, 0) + 1
                    if exc.transient and tries <= feed.page_retries:
                        self._page_attempts[key] = tries
                        outcome.deferred += 1
                        continue
                    self._page_attempts.pop(key, None)
            article = self._article(feed, parsed, item, page)
            if article is None:
                outcome.skipped.append(item.item_id)
                self.metrics.error(feed.id, "empty_item")
                continue
            outcome.new_items.append(OutboxItem(
                feed_id=feed.id, item_id=item.item_id, topic=self.topic,
                key=article.id.encode(), value=article.model_dump_json().encode(),
                headers=[(FEED_HEADER, feed.id.encode()),
                         (FETCHED_AT_HEADER, fetched_at.encode())],
                created_at=article.ingested_at,
            ))

    def _fetch_page(self, feed: FeedConfig, item: FeedItem, link: str) -> PageContent:
        try:
            response = self.fetcher.get(
                link, limits=Limits.for_feed(feed, page=True),
                allow_private=feed.allow_private, accept=ACCEPT_PAGE, headers=feed.headers,
                cancel=self.stop_event,
            )
            self.metrics.page(feed.id, len(response.body))
            if not looks_like_html(response.content_type, response.body):
                raise FetchError("not_html", f"Content-Type {response.content_type or 'none'}")
            html, _enc = decode_body(response.body, response.content_type)
            page = extract_page(html, url=response.url)
            if page is None:
                raise FetchError("extract_empty", "no main text in the page")
        except FetchError as exc:
            if exc.kind == "cancelled":
                raise Stopping from None
            self.metrics.error(feed.id, f"page_{exc.kind}")
            log.warning("page_failed", feed=feed.id, url=redact_url(link), kind=exc.kind,
                        reason=exc.reason)
            raise
        self._page_attempts.pop((feed.id, item.item_id), None)
        return page

    @staticmethod
    def _article(feed: FeedConfig, parsed: ParsedFeed, item: FeedItem,
                 page: PageContent | None) -> RawArticle | None:
        title = item.title or (page.title if page else None)
        content_type: Literal["text", "html"]
        if page is not None:
            text, content_type = page.text, "text"
        elif item.content:
            text, content_type = item.content, ("html" if item.content_is_html else "text")
        elif item.summary:
            text, content_type = item.summary, "html"
        elif title:
            text, content_type = title, "text"
        else:
            return None
        return RawArticle(
            id=item.item_id,
            url=item.link,
            outlet=feed.outlet or parsed.title,
            lang=feed.lang or item.lang or (page.lang if page else None),
            published=item.published or (page.date if page else None),
            title=title,
            text=text,
            content_type=content_type,
            source=f"feed:{feed.id}",
            ingested_at=time.time(),
        )

    # -- applying a poll (main thread) -----------------------------------------------------
    def apply(self, outcome: PollOutcome) -> float:
        """Record ``outcome``, send its records; returns the delay until the feed's next poll."""
        feed = outcome.feed
        url = redact_url(feed.url)
        if outcome.error is not None:
            if outcome.error.kind == "cancelled":
                return 0.0
            failures = self.store.record_failure(feed.id, url, at=outcome.fetched_at)
            self.metrics.error(feed.id, outcome.error.kind)
            self.metrics.failure_streak(feed.id, failures)
            delay = backoff_delay(failures, feed.backoff_base, feed.backoff_max, self.rng,
                                  outcome.error.retry_after)
            log.warning("feed_failed", feed=feed.id, url=url, kind=outcome.error.kind,
                        reason=outcome.error.reason, failures=failures,
                        retry_in_s=round(delay, 1))
            return delay
        if outcome.problem:
            self.metrics.error(feed.id, "malformed")
            log.warning("feed_partly_malformed", feed=feed.id, url=url, reason=outcome.problem,
                        items=len(outcome.new_items))
        self.store.record_poll(
            feed.id, url, new_items=outcome.new_items, skipped_ids=outcome.skipped,
            etag=outcome.etag, last_modified=outcome.last_modified,
            save_validators=not (outcome.deferred or outcome.problem), at=outcome.fetched_at,
        )
        self.metrics.success(feed.id, outcome.fetched_at)
        if outcome.not_modified:
            self.metrics.not_modified_response(feed.id)
        else:
            self.metrics.items(feed.id, len(outcome.new_items), outcome.seen)
        log.debug("feed_polled", feed=feed.id, not_modified=outcome.not_modified,
                  new=len(outcome.new_items), seen=outcome.seen, deferred=outcome.deferred,
                  bytes=outcome.nbytes)
        for item in outcome.new_items:
            self.deliver(item)
        return success_delay(feed.interval, self.rng)

    # -- delivery ------------------------------------------------------------------------
    def deliver(self, item: OutboxItem) -> None:
        """Send one stored record; the ack marks it delivered, a failure leaves it pending."""
        key = (item.feed_id, item.item_id)
        with self._lock:
            if key in self._in_flight:
                return
            self._in_flight.add(key)
        self.report.sent += 1
        try:
            future = self.producer.send(item.topic, key=item.key, value=item.value,
                                        headers=item.headers)
        except Exception as exc:  # buffer full, closed producer...: counted, kept, retried
            self._on_failure(item, exc)
            return
        future.add_callback(functools.partial(self._on_ack, item))
        future.add_errback(functools.partial(self._on_failure, item))

    def _on_ack(self, item: OutboxItem, metadata: Any) -> None:
        try:
            self.store.mark_acked(item.feed_id, item.item_id, item.topic,
                                  int(metadata.partition), int(metadata.offset))
        finally:
            with self._lock:
                self._in_flight.discard((item.feed_id, item.item_id))
            self.report.on_success(metadata)
            self.metrics.delivery(item.feed_id, True)

    def _on_failure(self, item: OutboxItem, exc: BaseException) -> None:
        with self._lock:
            self._in_flight.discard((item.feed_id, item.item_id))
        self.report.on_failure(item.key, exc)
        self.metrics.delivery(item.feed_id, False)

    def redeliver(self) -> int:
        """Send again every stored record that is neither acknowledged nor in flight."""
        with self._lock:
            busy = set(self._in_flight)
        waiting = [i for i in self.store.pending(self.topic)
                   if (i.feed_id, i.item_id) not in busy]
        for item in waiting:
            self.deliver(item)
        return len(waiting)

    def recover(self, bootstrap_servers: str, timeout_s: float = 60.0) -> tuple[int, int]:
        """Before the first poll: settle records a previous run stored but did not see acked.

        Records found on the topic (same key, same feed header) after the scan start are marked
        delivered; the others are sent again. Returns (found, resent).
        """
        pending = self.store.pending(self.topic)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers.split(","), group_id=None,
                                 **client_security(),
                                 enable_auto_commit=False, client_id="relwatch-feeds-recover")
        found = 0
        try:
            partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            end = consumer.end_offsets(tps) if tps else {}
            if pending and tps:
                wanted = {(i.feed_id, i.key): i for i in pending}
                found = self._scan(consumer, tps, end, wanted, timeout_s)
            self.store.set_scan_start(self.topic, {tp.partition: int(o) for tp, o in end.items()})
        finally:
            consumer.close()
        resent = self.redeliver()
        if pending:
            log.info("outbox_recovered", topic=self.topic, pending=len(pending), found=found,
                     resent=resent)
        return found, resent

    def _scan(self, consumer: KafkaConsumer, tps: list[TopicPartition], end: dict[Any, int],
              wanted: dict[tuple[str, bytes], OutboxItem], timeout_s: float) -> int:
        starts = self.store.scan_start(self.topic)
        begin = consumer.beginning_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(starts.get(tp.partition, 0), begin[tp]))
        remaining = {tp for tp in tps if end[tp] > consumer.position(tp)}
        deadline = time.monotonic() + timeout_s
        found = 0
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not scan {self.topic} to its end in {timeout_s}s")
            for tp, messages in consumer.poll(timeout_ms=500, max_records=5000).items():
                for msg in messages:
                    if msg.offset >= end[tp]:
                        continue
                    feed = dict(msg.headers or []).get(FEED_HEADER, b"").decode("utf-8",
                                                                                "replace")
                    item = wanted.pop((feed, msg.key), None)
                    if item is not None:
                        self.store.mark_acked(item.feed_id, item.item_id, self.topic,
                                              msg.partition, msg.offset)
                        found += 1
            for tp in list(remaining):
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return found

    # -- the loop ------------------------------------------------------------------------
    def initial_delays(self, now: float | None = None) -> dict[str, float]:
        """Seconds until each feed's first poll, from the stored last attempt and failures."""
        now = time.time() if now is None else now
        delays: dict[str, float] = {}
        for feed in self.feeds:
            state = self.store.feed_state(feed.id)
            if state.last_attempt is None:
                delays[feed.id] = 0.0
                continue
            wait = (backoff_delay(state.failures, feed.backoff_base, feed.backoff_max, self.rng)
                    if state.failures else feed.interval)
            delays[feed.id] = max(0.0, state.last_attempt + wait - now)
        return delays

    def run(self, *, once: bool = False, shutdown_grace_s: float = 5.0) -> int:
        """Poll until :attr:`stop_event` is set (or each feed once); returns an exit status.

        0 when every record was acknowledged at the end, 1 when some remain pending (they are
        kept and sent by the next run).
        """
        start = time.monotonic()
        due = {fid: start + d for fid, d in self.initial_delays().items()}
        if once:
            due = dict.fromkeys(due, start)
        polled: set[str] = set()
        running: dict[cf.Future[PollOutcome], FeedConfig] = {}
        next_summary = start + self.config.summary_interval
        next_redeliver = start + self.config.redeliver_interval
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                busy = {f.id for f in running.values()}
                for feed in self.feeds:
                    if feed.id in busy or (once and feed.id in polled) or due[feed.id] > now:
                        continue
                    polled.add(feed.id)
                    running[self._spawn(feed)] = feed
                if once and not running:
                    break
                waits = [next_summary - now, next_redeliver - now, 0.5]
                busy = {f.id for f in running.values()}
                waits += [due[f.id] - now for f in self.feeds if f.id not in busy]
                done, _ = cf.wait(list(running), timeout=max(0.01, min(waits)),
                                  return_when=cf.FIRST_COMPLETED)
                for future in done:
                    feed = running.pop(future)
                    due[feed.id] = time.monotonic() + self.apply(future.result())
                now = time.monotonic()
                if now >= next_redeliver:
                    self.redeliver()
                    next_redeliver = now + self.config.redeliver_interval
                if now >= next_summary:
                    self._summary()
                    next_summary = now + self.config.summary_interval
        finally:
            self.stop_event.set()
            for future in running:
                future.cancel()  # polls still waiting for a slot never start
            if running:  # let polls that are about done finish; the rest is refetched later
                done, _ = cf.wait(list(running), timeout=shutdown_grace_s)
                for future in done:
                    if not future.cancelled():
                        self.apply(future.result())
            self.fetcher.close()
            try:
                self.producer.flush(timeout=30)
            except Exception as exc:  # reported; the outbox keeps the records
                log.error("flush_failed", error=repr(exc))
        pending = self.store.pending_count()
        self._summary(final=True)
        return 0 if pending == 0 else 1

    def _spawn(self, feed: FeedConfig) -> cf.Future[PollOutcome]:
        """Poll ``feed`` on a daemon thread, at most ``max_workers`` at a time.

        Daemon threads, not a ThreadPoolExecutor: a fetch stuck in a read must not keep the
        process alive after SIGTERM (the executor's workers are joined at exit).
        """
        future: cf.Future[PollOutcome] = cf.Future()

        def work() -> None:
            with self._slots:
                if future.set_running_or_notify_cancel():
                    future.set_result(self.poll_feed(feed))

        threading.Thread(target=work, name=f"feed-{feed.id}", daemon=True).start()
        return future

    def _summary(self, final: bool = False) -> None:
        self._cycle += 1
        self.metrics.summary(pending=self.store.pending_count(), cycle=self._cycle,
                             extra={"final": True} if final else None)


# ============================================================================================
# Entry point
# ============================================================================================
def default_state_path(data_dir: Path, namespace: str) -> Path:
    """Where the checkpoint file lives unless FEEDS.yaml or ``--state`` says otherwise."""
    return data_dir / f"feeds-{namespace or 'default'}.sqlite3"


def run_feeds(
    config: FeedsFile,
    *,
    bootstrap_servers: str,
    topic: str,
    state_path: Path,
    once: bool = False,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    fetcher: Fetcher | None = None,
    install_signals: bool = True,
    **producer_kwargs: Any,
) -> int:
    """Run the poller until SIGTERM/SIGINT (or one pass with ``once``); returns an exit status.

    0 = every record acknowledged, 1 = some remain pending, 2 = the state file is in use.
    """
    from .kafka_producer import delivering

    state_path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(f"{state_path}.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        log.error("state_in_use", state=str(state_path),
                  reason="another poller holds this checkpoint file")
        return 2
    metrics = FeedMetrics()
    server = serve_metrics_quietly(metrics, metrics_port, metrics_host)
    store = CheckpointStore(state_path, seen_bound=config.seen_bound)
    status = 1
    try:
        with delivering(bootstrap_servers, client_id="relwatch-feeds",
                        **producer_kwargs) as (producer, report):
            poller = FeedPoller(config, store=store, producer=producer, report=report,
                                topic=topic, metrics=metrics, fetcher=fetcher)
            with _stop_on_signals(poller.stop_event, install_signals):
                log.info("feeds_start", feeds=len(poller.feeds), topic=topic,
                         state=str(state_path), once=once)
                poller.recover(bootstrap_servers)
                status = poller.run(once=once)
        # delivering() flushed and closed the producer: every ack has been recorded now
        if store.pending_count():
            status = 1
        log.info("feeds_stopped", status=status, pending=store.pending_count(),
                 sent=report.sent, delivered=report.delivered, failed=report.failed)
    finally:
        store.close()
        if server is not None:
            server.shutdown()
        lock.close()  # releases the lock
    return status


def serve_metrics_quietly(metrics: FeedMetrics, port: int | None, host: str) -> Any:
    if port is None:
        return None
    from .metrics import serve_metrics

    return serve_metrics(metrics, port, host)


class _stop_on_signals:
    """SIGTERM and SIGINT set ``event`` (main thread only; elsewhere this does nothing)."""

    def __init__(self, event: threading.Event, enabled: bool = True) -> None:
        self.event = event
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        log.info("feeds_stopping", signal=signal.Signals(signum).name)
        self.event.set()

    def __enter__(self) -> _stop_on_signals:
        if self.enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m producers.feeds [--bootstrap B] [--namespace N] FEEDS.yaml [options]``."""
    from .cli import feeds_main

    return feeds_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FeedConfig", "FeedItem", "FeedOptions", "FeedPoller", "FeedsFile", "FetchError", "Fetcher",
    "Limits", "PageContent", "ParsedFeed", "PollOutcome", "Response", "Target",
    "backoff_delay", "check_url", "decode_body", "extract_page", "is_public_address",
    "load_feeds", "parse_feed", "redact_url", "run_feeds",
]
