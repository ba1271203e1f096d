"""Stream stage 1, pure part: a raw article becomes a clean, dated, language-tagged article.

``normalize(raw) -> CleanArticle`` chains the public pieces, each usable alone:

* ``clean_html``: main text, title, date and language of an HTML page (trafilatura, fast mode);
* ``clean_text``: removes page junk from plain text (code tails, "read also" lines, credits,
  bylines, stray Latin lines) and repairs words glued by lost line breaks. The per-language
  phrase lists live in ``streams/data/boilerplate.yaml``;
* ``detect_language``: py3langid restricted to the expected languages, by script, with an
  alphabet check for short Cyrillic and Latin texts; Korean, Japanese and Chinese by script;
* ``resolve_publication_time``: metadata, else the dateline in the text's header, else the
  ingest time (all UTC);
* ``content_hash``: sha1 of the casefolded, punctuation-free, whitespace-collapsed text.

Input the stage refuses raises ``RejectedInput`` ("empty_text", "binary_text", "no_text").
Nothing here imports Faust or Kafka; models and data files load lazily, once per process.
"""

from __future__ import annotations

import email.utils
import hashlib
import html as html_lib
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Literal

import numpy as np

from schemas.models import CleanArticle, PublishedSource, RawArticle

from .datafiles import load_yaml
from .dates import LoweredSearch, lowered_search, pattern_finds_nothing
from .errors import RejectedInput
from .gazetteer import morph_analyzer, simplemma_lookups

__all__ = [
    "DEFAULT_MAX_CHARS",
    "ExtractedPage",
    "clean_html",
    "clean_text",
    "content_hash",
    "detect_language",
    "normalize",
    "parse_published",
    "resolve_publication_time",
    "warm_up",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_MAX_CHARS = 1_000_000
"""Longer texts are cut to this many characters (at a line or word break) before cleaning."""

_BINARY_SAMPLE = 65_536
_BINARY_RATIO = 0.10
_LANG_SAMPLE = 1_200

Precision = Literal["time", "day", "month", "year"]


# ============================================================================================
# Public types
# ============================================================================================
@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """What ``clean_html`` finds in a page."""

    text: str
    title: str | None = None
    date: str | None = None
    language: str | None = None


# ============================================================================================
# normalize
# ============================================================================================
def normalize(raw: RawArticle, *, max_chars: int = DEFAULT_MAX_CHARS) -> CleanArticle:
    """Clean, date and language-tag one raw article.

    Raises ``RejectedInput`` for empty, binary or letter-free input. Texts longer than
    ``max_chars`` are truncated, not rejected.
    """
    text = raw.text
    if not text or text.isspace():
        raise RejectedInput("empty_text", "the article body is empty")
    if _looks_binary(text):
        raise RejectedInput("binary_text", "the body is mostly control or replacement characters")
    text = _truncate(text, max_chars)

    hint = _norm_lang(raw.lang)
    title = raw.title
    page_date: str | None = None
    if raw.content_type == "html" or _looks_like_html(text):
        page = clean_html(text, url=raw.url)
        body = page.text
        title = title or page.title
        page_date = page.date
        hint = hint or _norm_lang(page.language)
    else:
        body = text

    cleaned = _clean_text_cached(body, hint)
    if not _HAS_LETTER.search(cleaned):
        raise RejectedInput("no_text", "no letters left after cleaning")

    lang = detect_language(cleaned, hint)
    published, source, has_year = resolve_publication_time(raw, cleaned, page_date, lang=lang)
    precision = _metadata_precision(raw.published, page_date, published, lang) if (
        source == "metadata") else "day"
    title = " ".join(title.split()) if title else None
    return CleanArticle(
        id=raw.id,
        url=raw.url,
        outlet=raw.outlet,
        lang=lang,
        lang_hint=raw.lang,
        title=title or None,
        text=cleaned,
        published=published,
        published_source=source,
        published_has_year=has_year,
        published_precision=precision,
        content_hash=content_hash(cleaned),
        ingested_at=raw.ingested_at,
    )


@lru_cache(maxsize=256)
def _clean_text_cached(body: str, hint: str | None) -> str:
    """``clean_text``, cached: exact reposts (the same body under another outlet) are common."""
    return clean_text(body, lang_hint=hint)


def _metadata_precision(
    published_meta: str | None, page_date: str | None, resolved: datetime, lang: str
) -> Literal["day", "month", "year"]:
    """How precise the metadata date that ``resolve_publication_time`` chose is."""
    for value in (published_meta, page_date):
        parsed = parse_published(value, lang=lang)
        if parsed is not None and parsed[0] == resolved:
            return "day" if parsed[1] in ("time", "day") else parsed[1]  # type: ignore[return-value]
    return "day"


def warm_up() -> None:
    """Load the language model, the data files and the patterns now rather than on the first
    article (about 1 s and 120 MB). The ru/uk/bg dictionaries used to confirm glue repairs
    still load on first use."""
    _identifier()
    _class_table()
    _boilerplate()
    _lang_data()
    _date_patterns()


# ============================================================================================
# Guards
# ============================================================================================
_BAD_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def _looks_binary(text: str) -> bool:
    sample = text[:_BINARY_SAMPLE]
    bad = len(_BAD_CHARS.findall(sample))
    return bad > _BINARY_RATIO * len(sample)


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    brk = max(cut.rfind("\n", max_chars - 2000), cut.rfind(" ", max_chars - 200))
    return cut[:brk] if brk > 0 else cut


_HTML_SNIFF = re.compile(
    r"\s*(?:<!doctype\s+html|<html\b|<head\b|<body\b|<(?:p|div|article|section|span|br)\b[^>]*>)",
    re.IGNORECASE,
)


def _looks_like_html(text: str) -> bool:
    return bool(_HTML_SNIFF.match(text[:1000])) and text.count("</") >= 1


# ============================================================================================
# HTML
# ============================================================================================
_HTML_LANG = re.compile(
    r"""<html\b[^>]*?\blang\s*=\s*["']?([A-Za-z]{2,3})\b"""
    r"""|<meta\b[^>]*?(?:http-equiv\s*=\s*["']?content-language|property\s*=\s*["']og:locale)"""
    r"""[^>]*?content\s*=\s*["']?([A-Za-z]{2,3})\b""",
    re.IGNORECASE,
)
_SCRIPT_STYLE = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.IGNORECASE | re.S)
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|table|section|article|header|footer|blockquote)\b[^>]*>",
    re.IGNORECASE,
)
_ANY_TAG = re.compile(r"<[^>]{0,2000}>")


def clean_html(html: str, url: str | None = None) -> ExtractedPage:
    """Main text, title, publication date and language of an HTML page.

    trafilatura in fast mode (no fallback extractors, no comments, links or images); if it finds
    no main text (a fragment, a feed item's HTML description) the tags are stripped instead.
    """
    import trafilatura  # heavy import: only pages that are HTML pay for it

    lang_match = _HTML_LANG.search(html[:5000])
    language = _norm_lang((lang_match.group(1) or lang_match.group(2)) if lang_match else None)
    text = ""
    title: str | None = None
    date: str | None = None
    try:
        doc: Any = trafilatura.bare_extraction(
            html,
            url=url,
            fast=True,
            with_metadata=True,
            include_comments=False,
            include_images=False,
            include_links=False,
            include_formatting=False,
            deduplicate=False,
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
    except Exception:  # trafilatura raises assorted errors on broken markup
        doc = None
    if doc is not None:
        text = str(getattr(doc, "text", None) or "")
        title = getattr(doc, "title", None) or None
        date = getattr(doc, "date", None) or None
        language = language or _norm_lang(getattr(doc, "language", None))
    if not text.strip():
        text = _strip_tags(html)
    return ExtractedPage(text=text, title=title, date=date, language=language)


def _strip_tags(html: str) -> str:
    body = _SCRIPT_STYLE.sub(" ", html)
    body = _BLOCK_TAG.sub("\n", body)
    body = _ANY_TAG.sub(" ", body)
    return html_lib.unescape(body)


# ============================================================================================
# Plain-text cleaning
# ============================================================================================
_SPACE_CHARS = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000\t"
)
_TRANSLATE: dict[int, str | None] = {
    **{ord(c): " " for c in _SPACE_CHARS},
    **{c: None for c in range(0x00, 0x20) if c not in (0x0A, 0x0B, 0x0C, 0x0D)},
    **{c: None for c in range(0x7F, 0xA0)},
    0x0B: "\n",
    0x0C: "\n",
    0x0D: "\n",
    0x2028: "\n",
    0x2029: "\n",
    0x00AD: None,  # soft hyphen
    0x200B: None,
    0x200C: None,
    0x200D: None,
    0x2060: None,
    0xFEFF: None,
    0xFFFD: None,
}

_CODE_START = re.compile(
    r"""window\s*\[\s*['"]|window\.[\w$]+\s*=|\b(?:var|let|const)\s+[\w$]+\s*=\s*[\[{'"\w]"""
    r"""|\bfunction\s*[\w$]*\s*\([^)]{0,80}\)\s*\{|document\.(?:write|getElementById|querySelector)"""
    r"""|<script\b|<style\b|\{\s*"[\w$@.-]{1,40}"\s*:|\[\s*\{\s*"|!function\s*\(|\(function\s*\("""
    r"""|@media\s|\.[\w-]{1,40}\s*\{[^}\n]{0,80}:[^}\n]{0,80};"""
)
_CODE_CHARS = re.compile(r"""[{}\[\]<>=;"\\|$_/@#*+^~`]""")
_CODE_WINDOW = 400
_CODE_DENSITY = 0.12
_LINE_CODE_DENSITY = 0.2
_PROSE_DENSITY = 0.05

_DATE_MARKER = re.compile(r"^\s*(date \d{4}-\d{2}(?:-\d{2})?)\s+(?=\S)")
_TIME_GLUE = re.compile(r"(?<![\d:])([0-2]?\d:[0-5]\d)(?=[^\W\d_])")
_DATELINE_PREFIX = re.compile(r"^[\d\s.,:/|\-–—]*$")
_SENT_GLUE = re.compile(r"""([^\W\d_]|[)\]»”’"'\d])([.!?…]+)(["”»’]?)(["«„“]?)([^\W\d_]+)""")
_CASE_GLUE = re.compile(r"([a-zà-ÿа-яёђ-џіїєґў])([A-ZÀ-ÞА-ЯЁЂ-ЏІЇЄҐЎ])")
_ANY_SENTENCE_END = re.compile(r"[.!?…].")
_ANY_DIGIT = re.compile(r"\d")
_GLUED_TOKEN = re.compile(
    r"(?<![^\W\d_])[^\W\d_]*[a-zà-ÿа-яёђ-џіїєґў][A-ZÀ-ÞА-ЯЁЂ-ЏІЇЄҐЎ][^\W\d_]*"
)
_RIGHT_PART = re.compile(r"[^\W\d_][^\W\d_]*?(?=[A-ZÀ-ÞА-ЯЁЂ-ЏІЇЄҐЎ]|$)")
_DIGIT_GLUE_CYR = re.compile(r"(\d)([А-ЯЁІЇЄҐ][а-яёіїєґ]{2,})")
_DIGIT_GLUE_LAT = re.compile(r"(\d{2,})([A-Z][a-z]{2,})")
_DROP_CAP = re.compile(r"^([A-ZА-ЯЁІЇЄҐ]) ([a-zа-яёіїєґ]{2,})")
_ONE_LETTER_WORDS = frozenset("AIАВИКОСУЯЕЖ")
# Domain endings that are no common word: 'News.Az' is a site name, not 'News. Az'.
_TLDS = frozenset(
    ("com", "net", "org", "info", "biz", "ru", "ua", "az", "bg", "kr", "kp", "fr", "uk", "io",
     "kz", "uz", "ge", "md", "rs", "mk", "pl", "cz", "eu", "tr", "jp", "cn", "lu", "ch", "nl",
     "su", "rf", "рф", "укр", "бг")
)  # fmt: skip
_BULLET_CHARS = frozenset("*•>·▪►-–—")
_BULLET = re.compile(r"^(?:[*•>·▪►]+|[-–—]\s)\s*")
_SENTENCE_END = re.compile(r"[.!?…]")
_ALNUM = re.compile(r"[^\W_]+")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
_CYR_LETTER = re.compile(r"[\u0400-\u052f]")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_A-Za-z\u00c0-\u024f]")
_BYLINE_WORD = re.compile(r"^(?:By|От|Від|Von|Par|Автор|Author|Текст)\s*:?\s+")
_CAPITALISED = re.compile(r"^[A-ZА-ЯЁІЇЄҐ]")
_NAME_JOINERS = frozenset(
    ("и", "і", "й", "and", "und", "et", "of", "the", "de", "von", "van", "der", "da", "ap",
     "associated", "press", "reuters", "afp")
)  # fmt: skip
_TRAILING_PIPE = re.compile(r"\s*\|\s*$")


@dataclass(frozen=True, slots=True)
class _Boilerplate:
    prefix: re.Pattern[str]  # groups: trend, link, credit
    inline: re.Pattern[str]
    credit_tail: re.Pattern[str]
    exact: frozenset[str]
    author_box: re.Pattern[str]
    inline_patterns: re.Pattern[str]
    line_start: re.Pattern[str]
    """The junk-line patterns (``line_patterns`` and ``author_boxes`` of the data file) that
    begin with '^', as one pattern tried at the line's start only."""
    line_anywhere: re.Pattern[str]
    """The other junk-line patterns, searched: together the verdict of all of them."""
    anywhere_lowered: LoweredSearch | None = None
    """``line_anywhere`` for a lower-cased line, when its patterns allow (a faster no)."""


def _phrase_alternation(phrases: Iterable[str]) -> str:
    parts = []
    for phrase in sorted(set(phrases), key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in phrase.split())
        if _HAS_LETTER.match(phrase[-1]):
            body += r"(?![^\W\d_])"
        parts.append(body)
    return "|".join(parts)


def _anchored_and_free(patterns: Sequence[str], flags: int) -> tuple[list[str], list[str]]:
    """Split regexes into those anchored at the start ('^...' without a top-level '|') and the
    rest: an anchored one can only match at position 0, so searching it further is wasted."""
    anchored: list[str] = []
    free: list[str] = []
    for pattern in patterns:
        items = sre_parse.parse(pattern, flags).data
        starts = bool(items) and items[0] == (sre_constants.AT, sre_constants.AT_BEGINNING)
        (anchored if starts else free).append(pattern)
    return anchored, free


def _alternation(patterns: Sequence[str], flags: int) -> re.Pattern[str]:
    """One pattern matching where any of ``patterns`` does ('(?!)', never, for none)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", flags)


def _flatten(section: Any) -> list[str]:
    if isinstance(section, dict):
        return [str(p) for values in section.values() for p in (values or [])]
    return [str(p) for p in (section or [])]


@cache
def _boilerplate() -> _Boilerplate:
    data = load_yaml((DATA_DIR / "boilerplate.yaml").read_text(encoding="utf-8"))
    links = _phrase_alternation(_flatten(data.get("related")) + _flatten(data.get("promo")))
    credits = _phrase_alternation(_flatten(data.get("credits")))
    flags = re.IGNORECASE
    trending = _phrase_alternation(_flatten(data.get("trending")))
    junk_lines = _flatten(data.get("line_patterns")) + _flatten(data.get("author_boxes"))
    line_start, line_anywhere = _anchored_and_free(junk_lines, flags)
    anywhere = _alternation(line_anywhere, flags)
    return _Boilerplate(
        prefix=re.compile(
            rf"^(?:(?P<trend>{trending})|(?P<link>{links})|(?P<credit>{credits}))", flags
        ),
        inline=re.compile(rf"(?<=[.!?…\"»”])\s*(?:{links})(?:(?<=:)|\s*[:\-–—»>|])", flags),
        credit_tail=re.compile(rf"(?<=[.!?…\"»”)])\s+(?:{credits})(?P<rest>.*)$", flags),
        exact=frozenset(_exact_key(p) for p in _flatten(data.get("exact_lines"))),
        author_box=_alternation(_flatten(data.get("author_boxes")), flags),
        inline_patterns=_alternation(_flatten(data.get("inline_patterns")), 0),
        line_start=_alternation(line_start, flags),
        line_anywhere=anywhere,
        anywhere_lowered=lowered_search(anywhere),
    )


def _exact_key(line: str) -> str:
    words = _ALNUM.findall(line.casefold())
    return " ".join(dict.fromkeys(words))


def clean_text(text: str, lang_hint: str | None = None) -> str:
    """Remove page junk from plain text and repair glued words; never drops a real sentence.

    Paragraphs stay separated by a blank line, other lines by a newline. ``lang_hint`` only
    chooses the dictionaries (pymorphy3 for ru/uk, simplemma for bg) that confirm a
    lowercase→Uppercase split inside a Cyrillic word; without a hint all three are tried.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n")).translate(_TRANSLATE)
    text = _cut_code(text)
    raw_lines = [" ".join(line.split()) for line in text.split("\n")]
    main_script = _main_script(text[:5_000])
    dict_langs = _dictionary_languages(lang_hint)

    lines: list[str] = []
    for index, line in enumerate(raw_lines):
        if not line:
            lines.append("")
            continue
        if index < 3:
            line = _strip_breadcrumbs(line)
        line = _DATE_MARKER.sub(r"\1\n", line)
        line = _split_byline_dateline(line)
        for part in _fix_glue(line, dict_langs).split("\n"):
            lines.append(part.strip())

    kept = _filter_lines(lines, main_script)
    out: list[str] = []
    for line in kept:
        if not line:
            if out and out[-1]:
                out.append("")
        else:
            out.append(line)
    return "\n".join(out).strip()


def _cut_code(text: str) -> str:
    """Cut JavaScript / JSON / CSS regions found by a start marker plus symbol density."""
    pos = 0
    while True:
        match = _CODE_START.search(text, pos)
        if match is None:
            return text
        start = match.start()
        window = text[start : start + _CODE_WINDOW]
        if _count(_CODE_RUNS, window) < _CODE_DENSITY * len(window):
            pos = match.end()
            continue
        end = _code_region_end(text, start)
        text = text[:start] + "\n" + text[end:]
        pos = start + 1


def _code_region_end(text: str, start: int) -> int:
    """The first line after ``start`` that reads as prose (else the end of the text)."""
    nl = text.find("\n", start)
    while nl != -1:
        nxt = text.find("\n", nl + 1)
        line = text[nl + 1 : nxt if nxt != -1 else len(text)]
        stripped = line.strip()
        if len(stripped) >= 40 and _count(_CODE_RUNS, stripped) < _PROSE_DENSITY * len(
            stripped
        ):
            return nl
        nl = nxt
    return len(text)


def _main_script(sample: str) -> str:
    counts = _ScriptCounts.of(sample).counts
    latin, other = counts[_LATIN], counts[_NON_LATIN]
    if latin + other == 0:
        return "none"
    return "latin" if latin >= 0.5 * (latin + other) else "other"


def _dictionary_languages(hint: str | None) -> tuple[str, ...]:
    if hint in ("ru", "uk", "bg"):
        return (hint,)
    return ("ru", "uk", "bg")


def _strip_breadcrumbs(line: str) -> str:
    """'Headline | section | site' in the first lines → 'Headline'."""
    if " | " not in line:
        return line
    parts = [p.strip() for p in line.split(" | ")]
    head = parts[0]
    tail = parts[1:]
    if len(head.split()) >= 4 and all(
        len(p.split()) <= 3 and not any(ch.isdigit() for ch in p) for p in tail
    ):
        return head
    return line


def _split_byline_dateline(line: str) -> str:
    """'By NAME Agency and NAME Agency, 19 June 2024, 12:14 Text…' → the dateline, a line break,
    the text: the names go, the date stays for ``resolve_publication_time``."""
    lead = _BYLINE_WORD.match(line)
    if lead is None:
        return line
    found = _first_date_match(line[:250], full_only=True)
    if found is None:
        return line
    start, end = found
    names = line[lead.end() : start].rstrip(" ,;")
    words = names.replace(",", " ").split()
    if not words or len(words) > 16 or _SENTENCE_END.search(names.replace(".", "")):
        return line
    named = sum(1 for w in words if _CAPITALISED.match(w) or w.casefold() in _NAME_JOINERS)
    if named < 0.8 * len(words):
        return line
    rest = line[end:]
    suffix = re.match(r"\s*(?:ч\.|год\.|h\b|Uhr\b)?", rest)
    cut = end + (suffix.end() if suffix else 0)
    return line[start:cut].strip() + "\n" + line[cut:].strip()


def _fix_glue(line: str, dict_langs: Sequence[str]) -> str:
    if line[1:2] == " ":
        line = _DROP_CAP.sub(_drop_cap, line)
    if ":" in line:
        line = _TIME_GLUE.sub(lambda m: _time_glue(m, line), line)
    if _ANY_SENTENCE_END.search(line):
        line = _SENT_GLUE.sub(_SentenceGlue(), line)
    if _ANY_DIGIT.search(line):
        line = _DIGIT_GLUE_CYR.sub(r"\1 \2", line)
        line = _DIGIT_GLUE_LAT.sub(r"\1 \2", line)
    if _CASE_GLUE.search(line):
        line = _split_case_glue(line, dict_langs)
    return line


def _drop_cap(match: re.Match[str]) -> str:
    letter, rest = match.group(1), match.group(2)
    if letter in _ONE_LETTER_WORDS:
        return match.group(0)
    return letter + rest


def _time_glue(match: re.Match[str], line: str) -> str:
    prefix = line[: match.start()]
    nxt = line[match.end() : match.end() + 1]
    if _DATELINE_PREFIX.match(prefix) and nxt.isupper():
        return match.group(1) + "\n"
    return match.group(1) + " "


class _SentenceGlue:
    """``re.sub`` callback for '(ISW).Пока' → '(ISW). Пока'; counts straight quotes as it goes
    (left to right, linear) to tell an opening '"' from a closing one."""

    __slots__ = ("pos", "quotes")

    def __init__(self) -> None:
        self.pos = 0
        self.quotes = 0

    def __call__(self, match: re.Match[str]) -> str:
        left, punct, close_q, open_q, word = match.groups()
        whole = match.group(0)
        self.quotes += match.string.count('"', self.pos, match.start(3))
        self.pos = match.start(3)
        if not word[0].isupper():
            return whole
        following = match.string[match.end() : match.end() + 1]
        if len(word) == 1 and following and not following.isspace():
            return whole  # 'U.S.A'
        if len(word) > 1 and not any(ch.islower() for ch in word[1:]) and not left.islower():
            return whole  # 'NATO.EU'
        if punct == "." and not close_q and not open_q and word.casefold() in _TLDS:
            return whole  # 'News.Az'
        if close_q == '"' and not open_q and self.quotes % 2 == 0:
            return f"{left}{punct} {close_q}{word}"  # an even count before it: it opens
        return f"{left}{punct}{close_q} {open_q}{word}"


def _split_case_glue(line: str, dict_langs: Sequence[str]) -> str:
    out: list[str] = []
    pos = 0
    for token in _GLUED_TOKEN.finditer(line):
        for cut in _token_cuts(token.group(0), tuple(dict_langs)):
            out.append(line[pos : token.start() + cut])
            out.append("\n")
            pos = token.start() + cut
    out.append(line[pos:])
    return "".join(out)


@lru_cache(maxsize=65_536)
def _token_cuts(word: str, dict_langs: tuple[str, ...]) -> tuple[int, ...]:
    """Where to break a word with lowercase→Uppercase inside ('угрозуПодписывайтесь')."""
    cuts: list[int] = []
    start = 0
    for match in _CASE_GLUE.finditer(word):
        cut = match.start(2)
        right = _RIGHT_PART.match(word, cut)
        right_word = right.group(0) if right else word[cut:]
        if _should_split(word[start:cut], right_word, dict_langs):
            cuts.append(cut)
            start = cut
    return tuple(cuts)


def _should_split(left: str, right: str, dict_langs: Sequence[str]) -> bool:
    left_cyr = bool(_CYR_LETTER.match(left[-1]))
    right_cyr = bool(_CYR_LETTER.match(right[0]))
    if left_cyr != right_cyr:
        return len(left) >= 2 and len(right) >= 2  # 'NetworkВсичко': a script change
    if not left_cyr:
        return False  # Latin camel case is usually a brand name (YouTube, iPhone)
    if len(left) < 2 or len(right) < 2 or not right[1:].islower():
        return False
    return any(_known_word(left, lang) and _known_word(right, lang) for lang in dict_langs)


@lru_cache(maxsize=65_536)
def _known_word(word: str, lang: str) -> bool:
    """Is ``word`` a dictionary word of ``lang``? pymorphy3 for ru/uk, simplemma otherwise."""
    lowered = word.lower()
    try:
        if lang in ("ru", "uk"):
            return bool(morph_analyzer(lang).word_is_known(lowered))
        return simplemma_lookups()[1](lowered, lang)
    except Exception:  # a language without a dictionary
        return False


def _filter_lines(lines: list[str], main_script: str) -> list[str]:
    rules = _boilerplate()
    total = sum(len(line) + 1 for line in lines) or 1
    offset = 0
    seen: set[str] = set()
    kept: list[str] = []
    for line in lines:
        position = offset / total
        offset += len(line) + 1
        if not line:
            kept.append("")
            continue
        line = rules.inline_patterns.sub("", line).strip()
        probe = _BULLET.sub("", line) if line[0] in _BULLET_CHARS else line
        if not probe:
            continue
        prefix = rules.prefix.match(probe)
        if prefix is not None and prefix.group("trend") and len(probe) < 60:
            if position >= 0.5:
                break
            continue
        if _is_junk_line(probe, rules, main_script, prefix):
            if _is_author_box(probe, rules) and kept and probe.startswith(kept[-1]):
                kept.pop()
            continue
        line = _cut_inline(line, rules)
        if not line or (not _HAS_LETTER.search(line) and not _is_dateline(line)):
            continue
        key_words = _ALNUM.findall(line.casefold())
        key = " ".join(key_words)
        if len(key_words) >= 4:
            if key in seen:
                continue
            seen.add(key)
        kept.append(line)
    return kept


def _is_author_box(line: str, rules: _Boilerplate) -> bool:
    return rules.author_box.search(line) is not None


def _is_junk_line(
    line: str, rules: _Boilerplate, main_script: str, prefix: re.Match[str] | None
) -> bool:
    size = len(line)
    if not _HAS_LETTER.search(line):
        return not _is_dateline(line)
    if size <= 60 and _exact_key(line) in rules.exact:
        return True
    if prefix is not None and (
        (prefix.group("link") and size < 300) or (prefix.group("credit") and size < 200)
    ):
        return True
    if size < 300 and (
        rules.line_start.match(line)
        or not pattern_finds_nothing(rules.line_anywhere, rules.anywhere_lowered, line)
    ):
        return True
    if _is_byline(line):
        return True
    if size <= 40:
        letters = _count(_LETTER_RUNS, line)
        if letters < 0.4 * (size - line.count(" ")) and not _is_dateline(line):
            return True  # widgets: '+ ↺ − 16 px'
    if size >= 60 and _count(_CODE_RUNS, line) >= _LINE_CODE_DENSITY * size:
        return True  # code or markup without a known start marker
    return (
        main_script == "other"
        and size <= 60
        and len(line.split()) <= 6
        and not _NON_LATIN_LETTER.search(line)
        and not _SENTENCE_END.search(line.rstrip(".!?…"))
        and not _is_dateline(line)
    )  # a short Latin-only line inside Cyrillic / Korean text: 'cristiano mbappe'


_CLOCK = re.compile(r"(?<!\d)[0-2]?\d:[0-5]\d(?!\d)")
_YEAR_MONTH = re.compile(r"(?<!\d)(?:19|20)\d{2}-[01]\d(?!\d)")


def _is_dateline(line: str) -> bool:
    """A short line that carries a date or a time ('2024-6-23 09:25 |', '12:33, 21 августа')."""
    if len(line) > 80:
        return False
    if _CLOCK.search(line) or _YEAR_MONTH.search(line):
        return True
    return _first_date_match(line, full_only=False) is not None


def _is_byline(line: str) -> bool:
    lead = _BYLINE_WORD.match(line)
    if lead is None or len(line) > 80:
        return False
    rest = line[lead.end() :]
    if re.search(r"[!?;]|\.\s+\S{3,}", rest):
        return False
    words = rest.replace(",", " ").split()
    if not words or len(words) > 8:
        return False
    named = sum(1 for w in words if _CAPITALISED.match(w) or w.casefold() in _NAME_JOINERS)
    return named == len(words)


def _cut_inline(line: str, rules: _Boilerplate) -> str:
    match = rules.inline.search(line)
    if match is not None:
        line = line[: match.start()].rstrip()
    tail = rules.credit_tail.search(line)
    if tail is not None:
        rest = tail.group("rest")
        if len(rest) < 100 and not _SENTENCE_END.search(rest):
            line = line[: tail.start()].rstrip()
    if line.endswith("|"):
        head = _TRAILING_PIPE.sub("", line)
        last_end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("다. "))
        if last_end != -1 and len(head) - last_end < 60:
            head = head[: last_end + 1] if head[last_end] in ".!?" else head[: last_end + 2]
        line = head.rstrip()
    return line


# ============================================================================================
# Language
# ============================================================================================
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")


def _runs(char_class: re.Pattern[str]) -> re.Pattern[str]:
    """Maximal runs of a one-character class: counting their lengths counts the characters
    without a match object and a string per character."""
    return re.compile(f"(?:{char_class.pattern})+", char_class.flags)


def _count(runs: re.Pattern[str], text: str) -> int:
    """How many characters of ``text`` the class of ``runs`` (see ``_runs``) matches."""
    return sum(map(len, runs.findall(text)))


_LETTER_RUNS = _runs(_HAS_LETTER)
_CODE_RUNS = _runs(_CODE_CHARS)
_LATIN_RUNS = _runs(_LATIN_LETTER)
_NON_LATIN_RUNS = _runs(_NON_LATIN_LETTER)
_CYR_RUNS = _runs(_CYR_LETTER)
_HANGUL_RUNS = _runs(_HANGUL)
_KANA_RUNS = _runs(_KANA)
_HAN_RUNS = _runs(_HAN)
# The script classes a language decision counts, as bits of one byte per BMP character: made
# by the patterns above from every character's run, so that counting by the table gives what
# counting the patterns' matches gives (a character beyond the BMP is classed by the patterns).
_CLASS_PATTERNS = (
    (1, _LETTER_RUNS), (2, _LATIN_RUNS), (4, _NON_LATIN_RUNS), (8, _CYR_RUNS),
    (16, _HANGUL_RUNS), (32, _KANA_RUNS), (64, _HAN_RUNS),
)
_BITS = tuple(bit for bit, _ in _CLASS_PATTERNS)
_LETTER, _LATIN, _NON_LATIN, _CYR, _HANGUL_BIT, _KANA_BIT, _HAN_BIT = _BITS
_BMP = 0x10000
# row v, column i: whether class value v holds the i-th bit (a count per value, times this,
# is the count per bit)
_CLASS_BITS = (np.arange(128)[:, None] & np.array(_BITS)[None, :] != 0).astype(np.int64)


def _class_of(char: str) -> int:
    return sum(bit for bit, runs in _CLASS_PATTERNS if runs.fullmatch(char))


@cache
def _class_table() -> Any:
    """Each BMP character's class bits (64 kB, built in a few ms from the patterns' runs)."""
    table = np.zeros(_BMP, dtype=np.uint8)
    every = "".join(map(chr, range(_BMP)))
    for bit, runs in _CLASS_PATTERNS:
        for match in runs.finditer(every):
            table[match.start() : match.end()] |= bit
    return table


@dataclass(frozen=True, slots=True)
class _ScriptCounts:
    """How many characters of a text each script class holds (``_count`` of each pattern),
    in one pass over the text's code points instead of one regex pass per class."""

    codes: Any
    classes: Any
    counts: dict[int, int]

    @classmethod
    def of(cls, text: str) -> _ScriptCounts:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        table = _class_table()
        if codes.size and int(codes.max()) >= _BMP:
            classes = table[np.minimum(codes, _BMP - 1)]
            beyond = np.flatnonzero(codes >= _BMP)
            classes[beyond] = [_class_of(chr(code)) for code in codes[beyond].tolist()]
        else:
            classes = table[codes]
        per_class = np.bincount(classes, minlength=128) @ _CLASS_BITS
        return cls(codes, classes, dict(zip(_BITS, per_class.tolist(), strict=True)))

    def chars(self, bit: int) -> str:
        """The characters of class ``bit``, in order (``"".join`` of its pattern's runs)."""
        picked: bytes = self.codes[(self.classes & bit) != 0].tobytes()
        return picked.decode("utf-32-le", "surrogatepass")


_LANG_3_TO_2 = {
    "rus": "ru", "ukr": "uk", "bul": "bg", "eng": "en", "kor": "ko", "fra": "fr", "fre": "fr",
    "deu": "de", "ger": "de", "bel": "be", "srp": "sr", "mkd": "mk", "jpn": "ja", "zho": "zh",
    "chi": "zh", "spa": "es", "ita": "it", "pol": "pl",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _LangData:
    expected: frozenset[str]
    scripts: dict[str, tuple[str, ...]]
    alphabets: dict[str, dict[str, frozenset[str]]]
    tolerance: dict[str, float]
    confidence: float
    foreign_min_letters: int
    foreign_min_probability: float


@cache
def _lang_data() -> _LangData:
    data = load_yaml((DATA_DIR / "normalize_languages.yaml").read_text(encoding="utf-8"))
    return _LangData(
        expected=frozenset(data["expected"]),
        scripts={k: tuple(v) for k, v in data["scripts"].items()},
        alphabets={
            script: {lang: frozenset(letters) for lang, letters in table.items()}
            for script, table in data["alphabets"].items()
        },
        tolerance={k: float(v) for k, v in data["tolerance"].items()},
        confidence=float(data["confidence"]),
        foreign_min_letters=int(data["foreign"]["min_letters"]),
        foreign_min_probability=float(data["foreign"]["min_probability"]),
    )


_IDENTIFIER: Any = None
_IDENTIFIER_LOCK = threading.Lock()


def _identifier() -> Any:
    """py3langid's full model with probabilities, loaded once per process (``langid_model``:
    the same scores, computed faster)."""
    global _IDENTIFIER
    if _IDENTIFIER is None:
        with _IDENTIFIER_LOCK:
            if _IDENTIFIER is None:
                from .langid_model import load_identifier

                _IDENTIFIER = load_identifier()
    return _IDENTIFIER


def _norm_lang(code: str | None) -> str | None:
    if not code:
        return None
    head = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    head = _LANG_3_TO_2.get(head, head)
    return head if re.fullmatch(r"[a-z]{2,3}", head) else None


def detect_language(text: str, hint: str | None = None) -> str:
    """ISO 639-1 code of ``text``; ``hint`` decides only when the detector is unsure.

    Hangul means Korean, kana Japanese, Han alone Chinese. Cyrillic and Latin texts are scored
    by py3langid among the expected languages of their script that their alphabet allows.
    Any other script is identified among all of py3langid's languages. Returns the hint, else
    "und", when the text has no letters.
    """
    return _detect_sample(text[:_LANG_SAMPLE], _norm_lang(hint))


@lru_cache(maxsize=1_024)
def _detect_sample(sample: str, hint: str | None) -> str:
    """``detect_language`` of the first _LANG_SAMPLE characters: cached, as reposts and
    syndicated copies of a story begin alike."""
    script_counts = _ScriptCounts.of(sample)
    counts = script_counts.counts
    letters = counts[_LETTER]
    if letters == 0:
        return hint or "und"
    hangul = counts[_HANGUL_BIT]
    if hangul >= 0.3 * letters:
        return "ko"
    kana = counts[_KANA_BIT]
    han = counts[_HAN_BIT]
    if kana >= 0.1 * letters or (han >= 0.5 * letters and kana >= 0.05 * han):
        return "ja"
    if han >= 0.5 * letters:
        return "zh"
    # the letters of each script, in order, as one string
    cyr_letters = script_counts.chars(_CYR)
    lat_letters = script_counts.chars(_LATIN)
    data = _lang_data()
    ranked: list[tuple[str, float]] = _identifier().rank(sample)
    if len(cyr_letters) + len(lat_letters) < 0.5 * letters:
        return str(ranked[0][0])
    if len(cyr_letters) >= len(lat_letters):
        script, script_letters = "cyrillic", cyr_letters
    else:
        script, script_letters = "latin", lat_letters
    top_lang, top_p = ranked[0]
    if (
        top_lang not in data.expected
        and top_p >= data.foreign_min_probability
        and len(script_letters) >= data.foreign_min_letters
    ):
        return str(top_lang)
    allowed = _alphabet_candidates(script, script_letters, data)
    probs = {lang: p for lang, p in ranked if lang in allowed}
    total = sum(probs.values())
    if total <= 0.0:
        return hint if hint in allowed else allowed[0]
    best = max(probs, key=lambda lang: probs[lang])
    if probs[best] / total < data.confidence and hint in probs:
        return hint
    return best


def _alphabet_candidates(script: str, letters: str, data: _LangData) -> tuple[str, ...]:
    candidates = data.scripts[script]
    alphabets = data.alphabets[script]
    joined = letters.lower()
    distinct = set(joined)
    limit = data.tolerance[script] * len(letters)
    allowed = tuple(
        lang
        for lang in candidates
        if not (foreign := distinct - alphabets[lang])
        or sum(joined.count(ch) for ch in foreign) <= limit
    )
    return allowed or candidates


# ============================================================================================
# Publication time
# ============================================================================================
@dataclass(frozen=True, slots=True)
class _DateHit:
    start: int
    end: int
    when: datetime
    has_year: bool


@dataclass(frozen=True, slots=True)
class _DateData:
    header_chars: int
    month_word: str
    month_of: tuple[tuple[int, re.Pattern[str]], ...]


@cache
def _date_data() -> _DateData:
    data = load_yaml((DATA_DIR / "normalize_dates.yaml").read_text(encoding="utf-8"))
    months = {int(k): [str(f) for f in v] for k, v in data["months"].items()}
    every = sorted((f for frags in months.values() for f in frags), key=len, reverse=True)
    return _DateData(
        header_chars=int(data["header_chars"]),
        month_word="|".join(every),
        month_of=tuple(
            (n, re.compile("(?:" + "|".join(frags) + r")\.?", re.IGNORECASE))
            for n, frags in sorted(months.items())
        ),
    )


_TIME = (
    r"(?:\s*(?:[,|/–—-]|\bв\b|\bо\b|\bat\b|\bum\b|\bà\b|T)?\s*(?:(?P<kap>오전|오후)\s*)?"
    r"(?P<H>[0-2]?\d)[:h](?P<Mi>[0-5]\d)(?::[0-5]\d)?(?:\s*(?P<ap>[ap]\.?\s?m\.?)(?![^\W\d_]))?)?"
)
_D = r"(?P<d>[0-3]?\d)"
_Y = r"(?P<y>(?:19|20)\d{2})"
_YEAR_SUFFIX = r"(?:\s*(?:г\.|года|год\.?|року|р\.|г(?![^\W\d_])))?"


@cache
def _date_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    mon = rf"(?<![^\W\d_])(?P<mon>{_date_data().month_word})(?![^\W\d_])\.?"
    flags = re.IGNORECASE
    specs = [
        ("ymd", rf"(?<![\d.]){_Y}-(?P<mo>[01]?\d)-{_D}(?!\d){_TIME}"),
        ("ymd", rf"(?<![\d.]){_Y}\.\s?(?P<mo>[01]?\d)\.\s?{_D}(?![\d])\.?{_TIME}"),
        ("ymd", rf"{_Y}\s*년\s*(?P<mo>[01]?\d)\s*월\s*{_D}\s*일{_TIME}"),
        ("dmy", rf"(?<![\d.]){_D}\.(?P<mo>[01]?\d)\.{_Y}(?!\d){_TIME}"),
        ("slash", rf"(?<![\d/])(?P<a>[0-3]?\d)/(?P<b>[0-3]?\d)/{_Y}(?![\d/]){_TIME}"),
        ("dMy", rf"(?<![\d.]){_D}\.?\s+{mon},?\s+{_Y}(?!\d){_YEAR_SUFFIX},?{_TIME}"),
        ("Mdy", rf"{mon}\s+{_D}(?:st|nd|rd|th)?,?\s+{_Y}(?!\d){_TIME}"),
        ("dM", rf"(?<![\d.]){_D}\.?\s+{mon}(?!\s*,?\s*\d{{4}})"),
        ("Md", rf"{mon}\s+{_D}(?:st|nd|rd|th)?(?![\d,]*\s*\d{{4}})(?!\d)"),
    ]
    return tuple((kind, re.compile(p, flags)) for kind, p in specs)


_TIME_BEFORE = re.compile(r"(?P<H>[0-2]?\d):(?P<Mi>[0-5]\d)\s*[,|]?\s*$")
_TZ_TAIL = re.compile(r"(?:\s*(?:GMT|UTC))?\s*([+-])(\d{2}):?(\d{2})\s*$")


def _month_number(word: str) -> int | None:
    for number, pattern in _date_data().month_of:
        if pattern.fullmatch(word):
            return number
    return None


def _find_dates(text: str, lang: str | None, reference: datetime | None) -> list[_DateHit]:
    hits: list[_DateHit] = []
    if not _ANY_DIGIT.search(text):
        return hits  # every date pattern needs a digit (a day or a year)
    for kind, pattern in _date_patterns():
        for m in pattern.finditer(text):
            hit = _hit_from_match(kind, m, text, lang, reference)
            if hit is not None:
                hits.append(hit)
    hits.sort(key=lambda h: (not h.has_year, h.start, -(h.end - h.start)))
    return hits


def _first_date_match(text: str, *, full_only: bool) -> tuple[int, int] | None:
    hits = [h for h in _find_dates(text, None, None) if h.has_year or not full_only]
    if not hits:
        return None
    first = min(hits, key=lambda h: (h.start, -(h.end - h.start)))
    return first.start, first.end


def _hit_from_match(
    kind: str, m: re.Match[str], text: str, lang: str | None, reference: datetime | None
) -> _DateHit | None:
    groups = m.groupdict()
    has_year = kind not in ("dM", "Md")
    if kind == "slash":
        a, b = int(groups["a"]), int(groups["b"])
        if a > 12:
            day, month = a, b
        elif b > 12 or lang in (None, "en"):
            month, day = a, b
        else:
            day, month = a, b
    elif groups.get("mon"):
        found = _month_number(groups["mon"])
        if found is None:
            return None
        month, day = found, int(groups["d"])
    else:
        month, day = int(groups["mo"]), int(groups["d"])
    if has_year:
        year = int(groups["y"])
    elif reference is not None:
        year = reference.year
    else:
        year = 2000  # a leap year, so that 29 February parses; callers only use the span
    hour = minute = 0
    if groups.get("H") is not None:
        hour, minute = int(groups["H"]), int(groups["Mi"])
        ampm = (groups.get("ap") or "").lower().replace(".", "").replace(" ", "")
        if (ampm == "pm" or groups.get("kap") == "오후") and hour < 12:
            hour += 12
        elif (ampm == "am" or groups.get("kap") == "오전") and hour == 12:
            hour = 0
    else:
        before = _TIME_BEFORE.search(text, max(0, m.start() - 12), m.start())
        if before is not None:
            hour, minute = int(before.group("H")), int(before.group("Mi"))
    try:
        when = datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    if not has_year and reference is not None and when > reference + timedelta(days=2):
        try:
            when = when.replace(year=year - 1)
        except ValueError:
            return None
    return _DateHit(m.start(), m.end(), when, has_year)


def parse_published(
    value: str | datetime | None, *, lang: str | None = None
) -> tuple[datetime, Precision] | None:
    """A publication time as a source gave it → (UTC datetime, precision), or None.

    Handles ISO 8601 (also '2023-10' and '2024'), RFC 2822, Unix seconds or milliseconds,
    'DD.MM.YYYY', '19 юни 2024 г.', 'June 19, 2024' and, last, whatever dateparser reads.
    Naive times are taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return _as_utc(value), "time"
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"(?:19|20)\d{2}", text):
        return datetime(int(text), 1, 1, tzinfo=UTC), "year"
    month_only = re.fullmatch(r"((?:19|20)\d{2})[-/.](0?[1-9]|1[0-2])", text)
    if month_only:
        return datetime(int(month_only[1]), int(month_only[2]), 1, tzinfo=UTC), "month"
    if re.fullmatch(r"\d{9,11}(?:\.\d+)?", text):
        return datetime.fromtimestamp(float(text), tz=UTC), "time"
    if re.fullmatch(r"\d{12,14}", text):
        return datetime.fromtimestamp(int(text) / 1000.0, tz=UTC), "time"
    parsers: tuple[Callable[[str, str | None], tuple[datetime, Precision] | None], ...] = (
        _parse_iso,
        _parse_rfc2822,
        _parse_with_patterns,
        _parse_with_dateparser,
    )
    for parser in parsers:
        parsed = parser(text, lang)
        if parsed is not None and 1990 <= parsed[0].year <= 2100:
            return parsed
    return None


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _parse_iso(text: str, lang: str | None) -> tuple[datetime, Precision] | None:
    if not re.match(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _as_utc(when), ("day" if len(text) <= 10 else "time")


def _parse_rfc2822(text: str, lang: str | None) -> tuple[datetime, Precision] | None:
    if not re.search(r"\d{1,2}\s+[A-Za-z]{3}\s+\d{4}", text):
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return _as_utc(when), "time"


def _parse_with_patterns(text: str, lang: str | None) -> tuple[datetime, Precision] | None:
    hits = [h for h in _find_dates(text, lang, None) if h.has_year]
    if not hits:
        return None
    hit = hits[0]
    when = hit.when
    tz = _TZ_TAIL.search(text, hit.end)
    if tz is not None:
        sign = 1 if tz.group(1) == "+" else -1
        when -= sign * timedelta(hours=int(tz.group(2)), minutes=int(tz.group(3)))
    return when, ("time" if (when.hour or when.minute) else "day")


def _parse_with_dateparser(text: str, lang: str | None) -> tuple[datetime, Precision] | None:
    if len(text) > 100 or not re.search(r"\d", text):
        return None
    try:
        import dateparser

        settings: Any = {
            "RETURN_AS_TIMEZONE_AWARE": True,
            "TO_TIMEZONE": "UTC",
            "PREFER_DAY_OF_MONTH": "first",
            "REQUIRE_PARTS": ["year", "month", "day"],
        }
        languages = [lang] if lang in _lang_data().expected else None
        when = dateparser.parse(text, languages=languages, settings=settings)
    except Exception:  # dateparser raises on odd input and odd languages
        return None
    if when is None:
        return None
    return _as_utc(when), "day"


_URL_DATE = re.compile(
    r"/((?:19|20)\d{2})[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?=[/-]|\.html?|$)"
    r"|/((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=/)"
)


def date_from_url(url: str | None) -> str | None:
    """A publication day many outlets put in their article paths (/2025/08/21/, /20250821/)."""
    if not url:
        return None
    match = _URL_DATE.search(url.split("?", 1)[0])
    if match is None:
        return None
    year, month, day = (g for g in match.groups() if g is not None)
    try:
        return datetime(int(year), int(month), int(day), tzinfo=UTC).date().isoformat()
    except ValueError:
        return None


def resolve_publication_time(
    raw: RawArticle,
    text: str,
    page_date: str | datetime | None = None,
    *,
    lang: str | None = None,
) -> tuple[datetime, PublishedSource, bool]:
    """(publication time in UTC, where it came from, whether it carries a year).

    Order: ``raw.published``, then the page's own date (``page_date``, e.g. from HTML meta
    tags), then a date in the URL's path — all "metadata"; then the dateline in the first
    ``header_chars`` of ``text`` ("text"); then ``raw.ingested_at`` ("ingest"). A metadata value
    with only a month or a year gives way to a full date in the header that agrees with it;
    otherwise it stands for the first day of its period. A time later than two days after ingest
    is not believed. A header date without a year takes the year from partial metadata, else the
    latest year that does not put it after the ingest time, and is reported with
    ``has_year=False``.
    """
    ingest = datetime.fromtimestamp(raw.ingested_at, tz=UTC)
    limit = ingest + timedelta(days=2)
    partial: tuple[datetime, Precision] | None = None
    for value in (raw.published, page_date, date_from_url(raw.url)):
        parsed = parse_published(value, lang=lang)
        if parsed is None or parsed[0] > limit:
            continue
        if parsed[1] in ("time", "day"):
            return parsed[0], "metadata", True
        partial = partial or parsed

    header = text[: _date_data().header_chars]
    hits = [h for h in _find_dates(header, lang, ingest) if h.when <= limit and h.when.year >= 1990]
    for hit in hits:
        if partial is None:
            return hit.when, "text", hit.has_year
        period_start, precision = partial
        when = hit.when if hit.has_year else _with_year(hit.when, period_start.year)
        if when is None or when.year != period_start.year:
            continue
        if precision == "month" and when.month != period_start.month:
            continue
        return when, "text", True
    if partial is not None:
        return partial[0], "metadata", True
    return ingest, "ingest", True


def _with_year(when: datetime, year: int) -> datetime | None:
    try:
        return when.replace(year=year)
    except ValueError:
        return None


# ============================================================================================
# Content hash
# ============================================================================================
def content_hash(text: str) -> str:
    """sha1 (hex) of the text casefolded, punctuation stripped and whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # the runs of word characters other than '_': what splitting at runs of [\W_] leaves
    words = _ALNUM.findall(folded)
    return hashlib.sha1(" ".join(words).encode("utf-8", "surrogatepass")).hexdigest()
