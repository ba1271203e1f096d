"""Event dates from a sentence: absolute, partial and relative to publication.

News semantics: an event told in the past tense happened on the most recent matching day on
or before publication ("on Tuesday", "15 августа", "in March"); it is never placed after
publication.  Without a publication time (or with one whose year is unknown) a date gets a
year only when the text itself fixes it.  The vocabulary (months, weekdays, relative words,
seasons) lives in ``data/dates.yaml`` so that a language is a data change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date as _date
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from re import _casefix  # type: ignore[attr-defined]
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from schemas.models import DatePrecision
from streams.datafiles import load_yaml

DATA_PATH = Path(__file__).parent / "data" / "dates.yaml"

#: A day-month that would fall after publication is moved to the previous year only when that
#: lands at most this many days before publication; otherwise it is a slip of the text.
MAX_PREVIOUS_YEAR_GAP_DAYS = 183

CJK_LANGS = frozenset({"ko", "ja", "zh"})

_SEASON_MIDDLE_MONTH = {"spring": 4, "summer": 7, "autumn": 10, "winter": 1}


# --------------------------------------------------------------------------- lowered search
@dataclass(frozen=True, slots=True)
class LoweredSearch:
    """A case-insensitive pattern, as a case-sensitive one to search a text's ``lower()``
    with: an IGNORECASE alternation of words has no first character for the regex engine to
    skip ahead to, so it tries every alternative at every position; this one skips (about 4x
    faster). ``unsafe``: the characters of a lower-cased text that IGNORECASE may match
    differently (the other members of a pattern letter's case class, such as 'ı' and 'ſ' for
    'i' and 's', and the dot that 'İ'.lower() adds): a text with one is not answered."""

    pattern: re.Pattern[str]
    unsafe: re.Pattern[str]

    def finds_nothing(self, text: str) -> bool:
        """True only when the original pattern finds no match in ``text`` (else: not known)."""
        lowered = text.lower()
        return self.unsafe.search(lowered) is None and self.pattern.search(lowered) is None


_LOWERED_OPS = frozenset(
    (sre_constants.LITERAL, sre_constants.BRANCH, sre_constants.SUBPATTERN,
     sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.AT, sre_constants.IN)
)  # fmt: skip
_LOWERED_AT = frozenset((sre_constants.AT_BOUNDARY, sre_constants.AT_NON_BOUNDARY))
_LOWERED_CATEGORIES = frozenset(
    (sre_constants.CATEGORY_WORD, sre_constants.CATEGORY_NOT_WORD,
     sre_constants.CATEGORY_DIGIT, sre_constants.CATEGORY_NOT_DIGIT,
     sre_constants.CATEGORY_SPACE, sre_constants.CATEGORY_NOT_SPACE)
)  # fmt: skip


def lowered_search(compiled: re.Pattern[str]) -> LoweredSearch | None:
    """``compiled`` (IGNORECASE) as a :class:`LoweredSearch`, if it is made of lower-case
    literals, alternatives, groups, repeats, word boundaries and \\w \\d \\s classes only.
    Why a match of ``compiled`` in a text is then a match of the case-sensitive pattern in the
    text's ``lower()``, unless that has an ``unsafe`` character: str.lower maps each character
    to one character as the regex engine's case folding does (except 'İ', which adds a dot) and
    keeps it in or out of \\w, \\d and \\s; IGNORECASE also matches a letter's case-class
    members, which are ``unsafe``."""
    if not compiled.flags & re.IGNORECASE:
        return None
    unsafe = {"\u0307"}  # 'İ'.lower() == 'i\u0307'
    stack = [sre_parse.parse(compiled.pattern, compiled.flags)]
    while stack:
        for op, av in stack.pop():
            if op not in _LOWERED_OPS:
                return None
            if op is sre_constants.LITERAL:
                if chr(av).lower() != chr(av):
                    return None
                unsafe.update(map(chr, _casefix._EXTRA_CASES.get(av, ())))
            elif op is sre_constants.BRANCH:
                stack.extend(av[1])
            elif op is sre_constants.SUBPATTERN:
                if av[1] or av[2]:  # inline flags
                    return None
                stack.append(av[3])
            elif op is sre_constants.AT:
                if av not in _LOWERED_AT:
                    return None
            elif op is sre_constants.IN:
                if any(kind is not sre_constants.CATEGORY or cat not in _LOWERED_CATEGORIES
                       for kind, cat in av):
                    return None
            else:  # a repeat
                stack.append(av[2])
    return LoweredSearch(
        re.compile(compiled.pattern, compiled.flags & ~re.IGNORECASE),
        re.compile("[" + "".join(re.escape(ch) for ch in sorted(unsafe)) + "]"),
    )


@dataclass(frozen=True, slots=True)
class ResolvedDate:
    """A date at its precision: 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD', and how it was found."""

    date: str
    precision: DatePrecision
    source: str
    #: Set for a *floating* date (an article without a dated publication): the partial date the
    #: text gives ("--MM-DD", "---DD", "-W-D" or "--MM", see :func:`partial_date`); ``date``
    #: then holds a stand-in in :data:`FLOATING_YEAR` so that within-article arithmetic works.
    partial: str | None = None

    def first_day(self) -> _date:
        """The first calendar day the date covers (for ordering and comparisons)."""
        parts = [int(p) for p in self.date.split("-")]
        while len(parts) < 3:
            parts.append(1)
        return _date(parts[0], parts[1], parts[2])


@dataclass(frozen=True, slots=True)
class DateExpression:
    """A date expression found in a sentence, not yet resolved against publication."""

    start: int
    end: int
    kind: str  # full | month_year | year | day_month | month | weekday | day | relative | season
    year: int | None = None
    month: int | None = None
    day: int | None = None
    weekday: int | None = None
    relative: str | None = None
    season: str | None = None
    last: bool = False
    #: The start of a range of two dates ("с 17 по 19 июня"): bounded, not "since".
    is_range: bool = False


@dataclass(frozen=True, slots=True)
class _LangPatterns:
    regexes: tuple[tuple[str, re.Pattern[str]], ...]
    month_lookup: tuple[tuple[re.Pattern[str], int], ...]
    weekday_lookup: tuple[tuple[re.Pattern[str], int], ...]
    relative_lookup: tuple[tuple[re.Pattern[str], str], ...]
    season_lookup: tuple[tuple[re.Pattern[str], str], ...]
    season_last: re.Pattern[str] | None
    #: Every relative / season phrase in one alternation: a sentence it does not match at all
    #: skips the per-phrase passes (which find the same matches one phrase at a time).
    any_relative: re.Pattern[str] | None = None
    any_season: re.Pattern[str] | None = None
    #: The gap joining the two dates of a range ("to", "по", "부터"): one expression, its start.
    range_join: re.Pattern[str] | None = None
    #: ``any_relative`` and ``any_season`` for a lower-cased sentence: a faster no.
    relative_lowered: LoweredSearch | None = None
    season_lowered: LoweredSearch | None = None


def _alt(fragments: list[str]) -> str:
    return "|".join(f"(?:{f})" for f in fragments)


@lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    with DATA_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = load_yaml(handle)
    return loaded


@lru_cache(maxsize=64)
def _patterns(lang: str) -> _LangPatterns:
    data = _load()
    year_suffix: str = data["year_suffix"]
    languages: dict[str, Any] = data["languages"]
    spec: dict[str, Any] = languages.get(lang) or languages["en"]
    flags = re.IGNORECASE | re.UNICODE
    cjk = lang in CJK_LANGS
    wb = "" if cjk else r"\b"
    regexes: list[tuple[str, re.Pattern[str]]] = []
    # Numeric forms shared by every language.
    # The numeric patterns start with their first digit and look behind it from the second
    # ("\d(?<![\d.]\d)" = "(?<![\d.])\d", "\d(?<!\w\d)" = "\b\d"): the same matches, but
    # the regex engine can then skip ahead to the next digit instead of trying every position.
    regexes.append(("iso", re.compile(r"(\d(?<![\d.]\d)\d{3})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")))
    dmy_kind = "mdy" if lang == "en" else "dmy"
    regexes.append((dmy_kind, re.compile(r"(\d(?<![\d.]\d)\d?)[./](\d{1,2})[./](\d{4})(?!\d)")))
    if cjk:
        regexes.append(
            ("cjk_full", re.compile(r"(\d{4})\s*[년年]\s*(\d{1,2})\s*[월月]\s*(\d{1,2})\s*[일日]"))
        )
        regexes.append(
            ("cjk_last_year_month", re.compile(r"(?:지난해|작년|昨年|去年)\s*(\d{1,2})\s*[월月]"))
        )
        regexes.append(("cjk_month_year", re.compile(r"(\d{4})\s*[년年]\s*(\d{1,2})\s*[월月]")))
        regexes.append(("cjk_day_month", re.compile(r"(\d{1,2})\s*[월月]\s*(\d{1,2})\s*[일日]")))
        regexes.append(("cjk_month", re.compile(r"(?<!\d)(\d{1,2})\s*[월月](?!\s*\d)")))
        regexes.append(("cjk_day", re.compile(r"(?<![\d월月])(\d{1,2})\s*[일日](?![본])")))
        regexes.append(
            ("year", re.compile(r"(?<![\d])((?:1[89]|20)\d\d)\s*[년年](?!\s*\d{1,2}\s*[월月])"))
        )
    months: dict[int, str] = {int(k): v for k, v in (spec.get("months") or {}).items()}
    month_lookup: list[tuple[re.Pattern[str], int]] = []
    if months:
        month_alt = _alt(list(months.values()))
        m = rf"(?P<m>{month_alt})\.?"
        yr = r"(?P<y>(?:1[89]|20)\d\d)"
        regexes.append(
            (
                "range_day_month",
                re.compile(
                    rf"(?P<d>\d(?<!\w\d)\d?)(?:-?(?:го|е|ого|er|\.))?\s*(?:[-–—]|по|до|і|и|and|to|au|bis|à)\s*"
                    rf"\d{{1,2}}(?:-?(?:го|е|ого|er|\.))?\s+{m}\b(?:,?\s+{yr})?",
                    flags,
                ),
            )
        )
        regexes.append(
            (
                "day_month",
                re.compile(
                    rf"(?P<d>\d(?<!\w\d)\d?)(?:-?(?:го|е|ого|er|st|nd|rd|th|\.))?\s+(?:of\s+)?{m}\b"
                    rf"(?:,?\s+{yr})?",
                    flags,
                ),
            )
        )
        if lang == "en":
            regexes.append(
                (
                    "month_day",
                    re.compile(
                        rf"\b{m}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?![,.]?\d)(?:,?\s+{yr})?",
                        flags,
                    ),
                )
            )
        regexes.append(("month_year", re.compile(rf"\b{m}\w{{0,3}}\s+{yr}", flags)))
        prep = spec.get("month_prepositions")
        if prep:
            regexes.append(("month", re.compile(rf"\b{prep}[\s-]+{m}\w{{0,3}}\b", flags)))
        for num, frag in months.items():
            month_lookup.append((re.compile(rf"^(?:{frag})", flags), num))
    if not cjk:
        regexes.append(
            (
                "year",
                re.compile(
                    rf"((?:1[89]|20)(?<![\w\-–/.,]\d\d)\d\d)(?:-?(?:а|ата|ий|го|м|ом|ту|те|ых))?{year_suffix}(?![\w\-/.]\d)",
                    flags,
                ),
            )
        )
    weekday_lookup: list[tuple[re.Pattern[str], int]] = []
    weekdays: dict[int, str] = {int(k): v for k, v in (spec.get("weekdays") or {}).items()}
    if weekdays:
        suffix = "" if cjk else r"\w{0,2}"
        regexes.append(
            ("weekday", re.compile(rf"{wb}(?:{_alt(list(weekdays.values()))}){suffix}{wb}", flags))
        )
        for num, frag in weekdays.items():
            weekday_lookup.append((re.compile(rf"(?:{frag})", flags), num))
    relative_lookup: list[tuple[re.Pattern[str], str]] = []
    for meaning, phrases in (spec.get("relative") or {}).items():
        for phrase in phrases:
            relative_lookup.append((re.compile(rf"{wb}(?:{phrase}){wb}", flags), meaning))
    season_lookup: list[tuple[re.Pattern[str], str]] = []
    for season, phrases in (spec.get("seasons") or {}).items():
        for phrase in phrases:
            season_lookup.append((re.compile(rf"{wb}(?:{phrase}){wb}", flags), season))
    last_words = spec.get("season_last") or []
    season_last = re.compile(rf"(?:{_alt(last_words)})\s*$", flags) if last_words else None
    any_relative = _any_of([regex for regex, _ in relative_lookup], flags)
    any_season = _any_of([regex for regex, _ in season_lookup], flags)
    return _LangPatterns(
        regexes=tuple(regexes),
        month_lookup=tuple(month_lookup),
        weekday_lookup=tuple(weekday_lookup),
        relative_lookup=tuple(relative_lookup),
        season_lookup=tuple(season_lookup),
        season_last=season_last,
        any_relative=any_relative,
        any_season=any_season,
        range_join=re.compile(spec["range_join"], flags) if spec.get("range_join") else None,
        relative_lowered=_lowered_of(any_relative),
        season_lowered=_lowered_of(any_season),
    )


def _lowered_of(pattern: re.Pattern[str] | None) -> LoweredSearch | None:
    return None if pattern is None else lowered_search(pattern)


def pattern_finds_nothing(pattern: re.Pattern[str], lowered: LoweredSearch | None,
                          text: str) -> bool:
    """Does ``pattern`` find nothing in ``text``? (``lowered``: its faster no, if any)"""
    if lowered is not None and lowered.finds_nothing(text):
        return True
    return pattern.search(text) is None


def _any_of(regexes: list[re.Pattern[str]], flags: int) -> re.Pattern[str] | None:
    """One pattern matching wherever any of ``regexes`` (compiled with ``flags``) matches."""
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{regex.pattern})" for regex in regexes), flags)


def _month_number(patterns: _LangPatterns, text: str) -> int | None:
    for regex, num in patterns.month_lookup:
        if regex.match(text):
            return num
    return None


def _valid(y: int | None, m: int | None, d: int | None) -> bool:
    try:
        _date(y or 2000, m or 1, d or 1)
    except ValueError:
        return False
    return True


_DIGIT = re.compile(r"\d")
#: Kinds of ``_LangPatterns.regexes`` that cannot match a sentence without a digit.
_DIGIT_KINDS = frozenset(
    ("iso", "dmy", "mdy", "cjk_full", "cjk_last_year_month", "cjk_month_year", "cjk_day_month",
     "cjk_month", "cjk_day", "range_day_month", "day_month", "month_day", "month_year", "year")
)  # fmt: skip


def find_date_expressions(sentence: str, lang: str) -> list[DateExpression]:
    """All non-overlapping date expressions of a sentence, in text order (longest first wins)."""
    patterns = _patterns(lang)
    found: list[DateExpression] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(expr: DateExpression) -> None:
        if free(expr.start, expr.end):
            taken.append((expr.start, expr.end))
            found.append(expr)

    seasons = patterns.season_lookup
    if patterns.any_season is not None and pattern_finds_nothing(
        patterns.any_season, patterns.season_lowered, sentence
    ):
        seasons = ()
    for regex, season in seasons:
        for match in regex.finditer(sentence):
            before = sentence[max(0, match.start() - 24) : match.start()]
            last = bool(patterns.season_last and patterns.season_last.search(before))
            after = sentence[match.end() : match.end() + 16]
            # "summer 2022", "the summer of 2022", "l'été de 2022"
            year_match = re.match(r"\s*(?:(?:of|de|del|di|des)\s+)?((?:1[89]|20)\d\d)", after)
            year = int(year_match.group(1)) if year_match else None
            end = match.end() + (year_match.end() if year_match else 0)
            add(DateExpression(match.start(), end, "season", season=season, last=last, year=year))
    has_digit = _DIGIT.search(sentence) is not None
    for kind, regex in patterns.regexes:
        if not has_digit and kind in _DIGIT_KINDS:
            continue
        for match in regex.finditer(sentence):
            start, end = match.span()
            if not free(start, end):
                continue
            expr = _expression_from_match(kind, match, patterns)
            if expr is not None:
                add(expr)
    relatives = patterns.relative_lookup
    if patterns.any_relative is not None and pattern_finds_nothing(
        patterns.any_relative, patterns.relative_lowered, sentence
    ):
        relatives = ()
    for regex, meaning in relatives:
        for match in regex.finditer(sentence):
            add(DateExpression(match.start(), match.end(), "relative", relative=meaning))
    found.sort(key=lambda e: e.start)
    if patterns.range_join is not None and len(found) > 1:
        found = _join_ranges(sentence, found, patterns.range_join)
    return found


def _join_ranges(
    sentence: str, found: list[DateExpression], join: re.Pattern[str]
) -> list[DateExpression]:
    """A range of two dates ("from June 18 to June 20", "이날부터 19일까지") is one
    expression, dated by its start: an event spanning it began then."""
    out: list[DateExpression] = [found[0]]
    for expr in found[1:]:
        prev = out[-1]
        if (
            prev.end <= expr.start
            and expr.kind not in ("weekday", "relative", "season")  # "June 19 — Tuesday's talks"
            and join.fullmatch(sentence, prev.end, expr.start)
        ):
            start = replace(prev, end=expr.end, is_range=True)
            if prev.kind == "day_month" and expr.kind == "full" and expr.year and expr.month:
                # "18 June to 20 June 2024"; "30 December to 2 January 2024" starts in 2023
                year = expr.year - 1 if (prev.month or 0) > expr.month else expr.year
                start = replace(start, kind="full", year=year)
            elif prev.kind == "day" and expr.kind in ("day_month", "full"):
                start = replace(start, kind=expr.kind, month=expr.month, year=expr.year)
            out[-1] = start
        else:
            out.append(expr)
    return out


def _expression_from_match(
    kind: str, match: re.Match[str], patterns: _LangPatterns
) -> DateExpression | None:
    start, end = match.span()
    groups = match.groupdict()
    if kind == "iso":
        y, m, d = (int(g) for g in match.groups())
        return DateExpression(start, end, "full", y, m, d) if _valid(y, m, d) else None
    if kind in ("dmy", "mdy"):
        a, b, y = (int(g) for g in match.groups())
        d, m = (a, b) if kind == "dmy" else (b, a)
        if not _valid(y, m, d):
            d, m = m, d
        return DateExpression(start, end, "full", y, m, d) if _valid(y, m, d) else None
    if kind == "cjk_full":
        y, m, d = (int(g) for g in match.groups())
        return DateExpression(start, end, "full", y, m, d) if _valid(y, m, d) else None
    if kind == "cjk_month_year":
        y, m = (int(g) for g in match.groups())
        return DateExpression(start, end, "month_year", y, m) if _valid(y, m, 1) else None
    if kind == "cjk_last_year_month":
        m = int(match.group(1))
        return DateExpression(start, end, "month", month=m, last=True) if 1 <= m <= 12 else None
    if kind == "cjk_day_month":
        m, d = (int(g) for g in match.groups())
        return (
            DateExpression(start, end, "day_month", month=m, day=d) if _valid(2000, m, d) else None
        )
    if kind == "cjk_month":
        m = int(match.group(1))
        return DateExpression(start, end, "month", month=m) if 1 <= m <= 12 else None
    if kind == "cjk_day":
        d = int(match.group(1))
        return DateExpression(start, end, "day", day=d) if 1 <= d <= 31 else None
    if kind == "year":
        return DateExpression(start, end, "year", year=int(match.group(1)))
    if kind == "weekday":
        text = match.group(0)
        for regex, num in patterns.weekday_lookup:
            if regex.search(text):
                return DateExpression(start, end, "weekday", weekday=num)
        return None
    month = _month_number(patterns, groups.get("m") or "")
    if month is None:
        return None
    year = int(groups["y"]) if groups.get("y") else None
    if kind in ("day_month", "month_day", "range_day_month"):
        day = int(groups["d"])
        if not _valid(year, month, day):
            return None
        ranged = kind == "range_day_month"
        if year is not None:
            return DateExpression(start, end, "full", year, month, day, is_range=ranged)
        return DateExpression(start, end, "day_month", month=month, day=day, is_range=ranged)
    if kind == "month_year":
        return DateExpression(start, end, "month_year", year=year, month=month)
    if kind == "month":
        return DateExpression(start, end, "month", month=month)
    return None


def _fmt_day(d: _date) -> str:
    return d.isoformat()


def _fmt_month(y: int, m: int) -> str:
    return f"{y:04d}-{m:02d}"


def resolve_expression(
    expr: DateExpression,
    published: _date | None,
    published_has_year: bool = True,
    tense_past: bool = True,
    context_date: ResolvedDate | None = None,
) -> ResolvedDate | None:
    """Resolve one expression against the publication _date (news semantics).

    ``context_date`` is the date the narrative is at (for "that day", "the previous day",
    Korean 이날/전날); it falls back to publication.
    """
    anchor = published if (published is not None and published_has_year) else None
    if context_date is not None and context_date.partial:
        context_date = None  # a floating narrative date fixes nothing here (see partial_date)
    kind = expr.kind
    if kind == "full" and expr.year and expr.month and expr.day:
        return ResolvedDate(_fmt_day(_date(expr.year, expr.month, expr.day)), "day", "absolute")
    if kind == "month_year" and expr.year and expr.month:
        return ResolvedDate(_fmt_month(expr.year, expr.month), "month", "absolute")
    if kind == "year" and expr.year:
        return ResolvedDate(f"{expr.year:04d}", "year", "absolute")
    if kind == "season":
        assert expr.season is not None
        middle = _SEASON_MIDDLE_MONTH[expr.season]
        if expr.year:
            return ResolvedDate(_fmt_month(expr.year, middle), "month", "season")
        if anchor is None:
            return None
        year = anchor.year
        if expr.last or (tense_past and middle > anchor.month):
            year -= 1
        if expr.last and middle < anchor.month and expr.season != "winter":
            # "last autumn" said in April means the autumn of the previous year (done above);
            # said in December it still means the previous year's autumn.
            pass
        return ResolvedDate(_fmt_month(year, middle), "month", "season")
    if anchor is None:
        return _resolve_without_anchor(expr, context_date)
    if kind == "day_month" and expr.month and expr.day:
        return _resolve_day_month(expr.month, expr.day, anchor, tense_past)
    if kind == "month" and expr.month:
        year = anchor.year
        if expr.last or (tense_past and expr.month > anchor.month):
            year -= 1
        elif not tense_past and expr.month < anchor.month:
            year += 1
        return ResolvedDate(_fmt_month(year, expr.month), "month", "month_in_year")
    if kind == "day" and expr.day:
        base = (
            context_date.first_day()
            if context_date and context_date.precision != "year"
            else anchor
        )
        y, m = base.year, base.month
        if tense_past and expr.day > base.day and base == anchor:
            m -= 1
            if m == 0:
                y, m = y - 1, 12
        if not _valid(y, m, expr.day):
            return None
        return ResolvedDate(_fmt_day(_date(y, m, expr.day)), "day", "day_of_month")
    if kind == "weekday" and expr.weekday is not None:
        if tense_past:
            delta = (anchor.weekday() - expr.weekday) % 7
            return ResolvedDate(_fmt_day(anchor - timedelta(days=delta)), "day", "weekday")
        delta = (expr.weekday - anchor.weekday()) % 7
        return ResolvedDate(_fmt_day(anchor + timedelta(days=delta)), "day", "weekday_future")
    if kind == "relative" and expr.relative:
        return _resolve_relative(expr.relative, anchor, context_date)
    return None


def _resolve_day_month(month: int, day: int, anchor: _date, tense_past: bool) -> ResolvedDate:
    candidate = _date(anchor.year, month, day) if _valid(anchor.year, month, day) else None
    if candidate is None:  # 29 February in a common year
        candidate = _date(anchor.year, month, 28)
    if tense_past and candidate > anchor:
        previous = (
            candidate.replace(year=candidate.year - 1)
            if _valid(candidate.year - 1, month, day)
            else _date(candidate.year - 1, month, 28)
        )
        if (anchor - previous).days <= MAX_PREVIOUS_YEAR_GAP_DAYS:
            return ResolvedDate(_fmt_day(previous), "day", "day_month_previous_year")
        # A past event cannot postdate its report: the text is wrong about the day.
        return ResolvedDate(_fmt_month(anchor.year, anchor.month), "month", "published_fallback")
    return ResolvedDate(_fmt_day(candidate), "day", "day_month")


def _resolve_relative(
    meaning: str, anchor: _date, context_date: ResolvedDate | None
) -> ResolvedDate | None:
    context_day = (
        context_date.first_day()
        if context_date is not None and context_date.precision == "day"
        else None
    )
    if meaning == "today":
        return ResolvedDate(_fmt_day(anchor), "day", "relative_today")
    if meaning == "yesterday":
        return ResolvedDate(_fmt_day(anchor - timedelta(days=1)), "day", "relative_yesterday")
    if meaning == "previous_day":
        base = context_day or anchor
        return ResolvedDate(_fmt_day(base - timedelta(days=1)), "day", "relative_previous_day")
    if meaning == "same_day":
        base = context_day or anchor
        return ResolvedDate(_fmt_day(base), "day", "relative_same_day")
    if meaning == "last_week":
        week = anchor - timedelta(days=7)
        return ResolvedDate(_fmt_month(week.year, week.month), "month", "relative_week")
    if meaning == "last_month":
        y, m = (anchor.year, anchor.month - 1) if anchor.month > 1 else (anchor.year - 1, 12)
        return ResolvedDate(_fmt_month(y, m), "month", "relative_month")
    if meaning == "this_month":
        return ResolvedDate(_fmt_month(anchor.year, anchor.month), "month", "relative_month")
    if meaning == "last_year":
        return ResolvedDate(f"{anchor.year - 1:04d}", "year", "relative_year")
    if meaning == "this_year":
        return ResolvedDate(f"{anchor.year:04d}", "year", "relative_year")
    return None


def _resolve_without_anchor(
    expr: DateExpression, context_date: ResolvedDate | None
) -> ResolvedDate | None:
    """Without a dated publication only the text (or the narrative's own date) fixes a year."""
    if context_date is None or context_date.precision == "year":
        return None
    base = context_date.first_day()
    if expr.kind == "relative" and expr.relative in ("same_day", "today"):
        return context_date if context_date.precision == "day" else None
    if expr.kind == "relative" and expr.relative in ("previous_day", "yesterday"):
        if context_date.precision != "day":
            return None
        return ResolvedDate(_fmt_day(base - timedelta(days=1)), "day", "relative_previous_day")
    if expr.kind == "day_month" and expr.month and expr.day:
        return _resolve_day_month(expr.month, expr.day, _end_of(context_date), True)
    if (
        expr.kind == "day"
        and expr.day
        and context_date.precision in ("day", "month")
        and _valid(base.year, base.month, expr.day)
    ):
        return ResolvedDate(_fmt_day(_date(base.year, base.month, expr.day)), "day", "day_of_month")
    return None


def _end_of(resolved: ResolvedDate) -> _date:
    first = resolved.first_day()
    if resolved.precision == "day":
        return first
    if resolved.precision == "month":
        nxt = _date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return nxt - timedelta(days=1)
    return _date(first.year, 12, 31)


_PRECISION_RANK = {"day": 3, "month": 2, "year": 1}

# --------------------------------------------------------------------------- floating dates
#
# An article whose publication date is unknown (or lacks its year) still states dates such as
# "18 июня", "12일", "on Tuesday" or "in October". They are kept as *partial* dates, written in
# ISO 8601 truncated style, for the timeline to anchor against dated reports of the same events:
#
#   --MM-DD   month and day known, year unknown           (day precision once anchored)
#   ---DD     day of month known, month and year unknown   (day precision once anchored)
#   -W-D      ISO weekday D (1 = Monday) known             (day precision once anchored)
#   --MM      month known, year unknown                    (month precision once anchored)

#: The stand-in year of floating dates inside the extractor (a leap year far in the future, so
#: that 29 February exists and role periods resolve to the current holder).
FLOATING_YEAR = 9996
#: The stand-in month of a day of month whose month is unknown (31 days).
FLOATING_MONTH = 12

_PARTIAL_RE = re.compile(r"^(?:--(\d\d)-(\d\d)|---(\d\d)|-W-([1-7])|--(\d\d))$")


def parse_partial(partial: str) -> tuple[str, int | None, int | None, int | None] | None:
    """(kind, month, day, iso weekday) of a partial date, kind in month_day | day | weekday |
    month; None when malformed."""
    match = _PARTIAL_RE.match(partial or "")
    if match is None:
        return None
    md_m, md_d, day, weekday, month = match.groups()
    if md_m is not None:
        m, d = int(md_m), int(md_d)
        return ("month_day", m, d, None) if _valid(2000, m, d) else None
    if day is not None:
        return ("day", None, int(day), None) if 1 <= int(day) <= 31 else None
    if weekday is not None:
        return ("weekday", None, None, int(weekday))
    m = int(month)
    return ("month", m, None, None) if 1 <= m <= 12 else None


def partial_precision(partial: str) -> DatePrecision:
    parsed = parse_partial(partial)
    return "month" if parsed is not None and parsed[0] == "month" else "day"


def _floating(day: _date, partial: str, source: str) -> ResolvedDate:
    return ResolvedDate(_fmt_day(day), "day", source, partial)


def partial_date(
    expr: DateExpression, context_date: ResolvedDate | None = None
) -> ResolvedDate | None:
    """A floating date for an expression that needs a publication date the article lacks.

    ``context_date`` may itself be floating (the narrative's date): "the previous day" and
    "that day" follow it. Expressions whose meaning depends on the unknown publication day
    itself ("today", "last week", "last year") give None.
    """
    y = FLOATING_YEAR
    ctx = context_date if context_date is not None and context_date.partial else None
    ctx_parsed = parse_partial(ctx.partial) if ctx is not None and ctx.partial else None
    kind = expr.kind
    if kind == "day_month" and expr.month and expr.day:
        return _floating(_date(y, expr.month, expr.day), f"--{expr.month:02d}-{expr.day:02d}",
                         "partial_day_month")
    if kind == "month" and expr.month and not expr.last:
        return ResolvedDate(_fmt_month(y, expr.month), "month", "partial_month",
                            f"--{expr.month:02d}")
    if kind == "day" and expr.day:
        if ctx_parsed is not None and ctx_parsed[0] == "month_day" and ctx_parsed[1]:
            month = ctx_parsed[1]
            if _valid(y, month, expr.day):
                return _floating(_date(y, month, expr.day), f"--{month:02d}-{expr.day:02d}",
                                 "partial_day")
            return None
        return _floating(_date(y, FLOATING_MONTH, expr.day), f"---{expr.day:02d}", "partial_day")
    if kind == "weekday" and expr.weekday is not None:
        # stand-in: that weekday in the last week of the stand-in year
        end = _date(y, 12, 31)
        day = end - timedelta(days=(end.weekday() - expr.weekday) % 7)
        return _floating(day, f"-W-{expr.weekday + 1}", "partial_weekday")
    if kind == "relative" and ctx is not None and ctx.precision == "day" and ctx_parsed:
        if expr.relative in ("same_day", "today"):
            return ctx
        if expr.relative in ("previous_day", "yesterday"):
            day = ctx.first_day() - timedelta(days=1)
            if ctx_parsed[0] == "month_day" and day.year == y:
                return _floating(day, f"--{day.month:02d}-{day.day:02d}", "partial_previous_day")
            if ctx_parsed[0] == "day" and day.month == FLOATING_MONTH:
                return _floating(day, f"---{day.day:02d}", "partial_previous_day")
    return None


def anchor_partial(partial: str, anchor: _date) -> ResolvedDate | None:
    """The date a partial date names, given the article's anchor day: the matching date nearest
    to it (earlier on ties; a weekday within three days)."""
    parsed = parse_partial(partial)
    if parsed is None:
        return None
    kind, month, day, weekday = parsed
    if kind == "weekday":
        assert weekday is not None
        delta = (anchor.weekday() - (weekday - 1)) % 7
        back = anchor - timedelta(days=delta)
        fwd = back + timedelta(days=7)
        best = back if (anchor - back) <= (fwd - anchor) else fwd
        return ResolvedDate(_fmt_day(best), "day", "anchored")
    if kind == "month":
        assert month is not None
        here = anchor.year * 12 + anchor.month
        years = [anchor.year - 1, anchor.year, anchor.year + 1]
        year = min(years, key=lambda yy: (abs(yy * 12 + month - here), yy))
        return ResolvedDate(_fmt_month(year, month), "month", "anchored")
    options: list[_date] = []
    if kind == "month_day":
        assert month is not None and day is not None
        options = [_date(yy, month, day) for yy in range(anchor.year - 1, anchor.year + 2)
                   if _valid(yy, month, day)]
    else:
        assert day is not None
        for delta in (-1, 0, 1):
            index = anchor.year * 12 + anchor.month - 1 + delta
            yy, mm = index // 12, index % 12 + 1
            if _valid(yy, mm, day):
                options.append(_date(yy, mm, day))
    if not options:
        return None
    best = min(options, key=lambda d: (abs((d - anchor).days), d))
    return ResolvedDate(_fmt_day(best), "day", "anchored")


#: How far after "the Nth anniversary" the date of the event it commemorates may stand.
ANNIVERSARY_REACH = 120
_SENTENCE_END = re.compile(r"(?<!\d)[.!?](?=\s|$)|\n")  # "5. Juli" is no sentence end


@lru_cache(maxsize=64)
def _anniversary_patterns(
    lang: str,
) -> tuple[re.Pattern[str] | None, tuple[tuple[re.Pattern[str], int], ...]]:
    spec: dict[str, Any] = _load()["languages"].get(lang) or {}
    pattern = spec.get("anniversary")
    if not pattern:
        return None, ()
    flags = re.IGNORECASE | re.UNICODE
    ordinals = tuple(
        (re.compile(str(stem), flags), int(n))
        for stem, n in (spec.get("anniversary_ordinals") or {}).items()
    )
    return re.compile(str(pattern), flags), ordinals


def anniversary_anchor(text: str, lang: str) -> tuple[_date, DatePrecision] | None:
    """When an undated text was written, from "the Nth anniversary" of an event it dates
    ("в контексті першої річниці підписання угоди у червні 2024 року", "the 80th anniversary of
    the liberation in August 1945"): N years after that event — the last day of that month
    (precision month) or of that year (precision year). None without such a phrase."""
    regex, ordinals = _anniversary_patterns(lang)
    if regex is None:
        return None
    for match in regex.finditer(text):
        number = match.groupdict().get("n") or match.groupdict().get("m")
        years = int(number) if number else 0
        word = match.groupdict().get("o")
        if word:
            years = next((n for stem, n in ordinals if stem.match(word)), 0)
        if not 0 < years <= 300:
            continue
        window = text[match.end() : match.end() + ANNIVERSARY_REACH]
        end = _SENTENCE_END.search(window)  # the commemorated event's date is in this sentence
        window = window[: end.start()] if end else window
        for expr in find_date_expressions(window, lang):
            if expr.year is None or expr.kind not in ("full", "month_year", "year"):
                continue
            year = expr.year + years
            if expr.month:
                following = _date(year + (expr.month == 12), expr.month % 12 + 1, 1)
                return following - timedelta(days=1), "month"
            return _date(year, 12, 31), "year"
    return None


def resolve_event_date(
    sentence: str,
    lang: str,
    published: datetime | _date | None,
    published_has_year: bool = True,
    tense_past: bool = True,
    context_date: ResolvedDate | None = None,
) -> ResolvedDate | None:
    """The event date a sentence states, or None when it states none that can be resolved.

    With several expressions the most precise one wins (earliest on ties).
    """
    pub = published.date() if isinstance(published, datetime) else published
    best: ResolvedDate | None = None
    for expr in find_date_expressions(sentence, lang):
        resolved = resolve_expression(expr, pub, published_has_year, tense_past, context_date)
        if resolved is None:
            continue
        if best is None or _PRECISION_RANK[resolved.precision] > _PRECISION_RANK[best.precision]:
            best = resolved
    return best


def published_day(published: datetime | _date | None) -> _date | None:
    """The calendar day of a publication time (UTC), or None."""
    if published is None:
        return None
    return published.date() if isinstance(published, datetime) else published
