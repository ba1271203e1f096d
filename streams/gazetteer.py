"""Actor and place gazetteer: aliases per language matched lemma-aware.

Matching works on word keys: the lower-cased surface form, its lemma (pymorphy3 for ru/uk,
simplemma for bg) and a light suffix stem, so "Путина", "Ким Чен Ыну" or "Русия" find their
entries without listing every case form.  Korean, Japanese and Chinese aliases are matched as
substrings because particles glue onto nouns.  Everything is loaded once and precompiled;
word keys are cached.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from streams.datafiles import load_yaml

DATA_DIR = Path(__file__).parent / "data"
ACTORS_PATH = DATA_DIR / "actors.yaml"
PLACES_PATH = DATA_DIR / "places.yaml"

#: Languages whose aliases are matched as substrings of the raw text.
SUBSTRING_LANGS = frozenset({"ko", "ja", "zh"})

_WORD_RE = re.compile(r"\w+", re.UNICODE)

#: Inflectional endings stripped for the stem key (longest first); a stem keeps >= 2 letters.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "ru": (
        "ами",
        "ями",
        "ого",
        "его",
        "ому",
        "ему",
        "ыми",
        "ими",
        "ой",
        "ей",
        "ом",
        "ем",
        "ах",
        "ях",
        "ам",
        "ям",
        "ую",
        "юю",
        "ая",
        "яя",
        "ое",
        "ее",
        "ые",
        "ие",
        "ый",
        "ий",
        "а",
        "я",
        "у",
        "ю",
        "е",
        "ы",
        "и",
        "о",
    ),
    "uk": (
        "ами",
        "ями",
        "ого",
        "ому",
        "ими",
        "ій",
        "ою",
        "ею",
        "ом",
        "ем",
        "ах",
        "ях",
        "ам",
        "ям",
        "ий",
        "а",
        "я",
        "у",
        "ю",
        "е",
        "и",
        "і",
        "о",
    ),
    "bg": ("ският", "ската", "ското", "ските", "ият", "ът", "ят", "та", "то", "те", "а", "я"),
    "en": ("ians", "s"),
    "fr": ("es", "s", "e"),
    "de": ("ischen", "ische", "ischer", "isches", "en", "er", "es", "em", "e", "n", "s"),
    "es": ("es", "s", "a", "o"),
    "it": ("i", "e", "a", "o"),
    "pl": ("owi", "ami", "ach", "om", "em", "ie", "ą", "ę", "y", "i", "a", "u", "e"),
}


class Token(NamedTuple):
    """A word of a text with its character offsets (a named tuple: texts have many)."""

    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Words (``\\w+``) with offsets; hyphens and apostrophes separate words."""
    return list(_tokens(text))


_SENTENCE_CACHE_SIZE = 512
"""Texts whose tokens and gazetteer matches are kept: the sentences of the last articles, so
that enrichment (and a repeated sentence) finds what extraction just computed."""


@lru_cache(maxsize=_SENTENCE_CACHE_SIZE)
def _tokens(text: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    append = tokens.append
    new = tuple.__new__  # Token(...) without the Python-level __new__ of a NamedTuple
    for m in _WORD_RE.finditer(text):
        word = m.group(0)
        start, end = m.span()
        # the possessive "'s" is no word ("North's Korean" must not read "S. Korean")
        if (word == "s" or word == "S") and start > 0 and text[start - 1] in "'’":
            continue
        append(new(Token, (word, start, end)))
    return tuple(tokens)


@lru_cache(maxsize=4)
def morph_analyzer(lang: str) -> Any:
    """pymorphy3's analyzer of ``lang`` (ru, uk), loaded on first use, one per process: each
    instance loads its own copy of the dictionary (about 14 MB), so the cleaner's dictionary
    checks use this one too."""
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang=lang)


@lru_cache(maxsize=1)
def simplemma_lookups() -> tuple[Callable[[str, str], str], Callable[[str, str], bool]]:
    """simplemma's ``lemmatize`` and ``is_known`` (word, language), over its dictionaries held
    as MARISA tries (``marisa-trie``): the bg dictionary takes about 1.4 MB instead of 35 MB
    as a dict, in every stage process, for the same lemmas. A lookup costs about 8 µs instead
    of 2, once per distinct word (``lemma`` and the cleaner's dictionary checks are cached).
    The tries are built on first use (about 2 s for bg) and kept in the user's cache directory.
    Without marisa-trie, simplemma's dicts."""
    import simplemma
    from simplemma.strategies import DefaultStrategy, DictionaryLookupStrategy
    from simplemma.utils import normalize_token, validate_lang_input

    try:
        from simplemma.strategies.dictionaries.trie_dictionary_factory import (
            TrieDictionaryFactory,
        )

        factory = TrieDictionaryFactory()
    except ImportError:
        return (lambda word, lang: str(simplemma.lemmatize(word, lang=lang)),
                lambda word, lang: bool(simplemma.is_known(word, lang=lang)))
    # no cache of its own: the callers cache by word
    lemmatizer = simplemma.Lemmatizer(
        cache_max_size=0, lemmatization_strategy=DefaultStrategy(dictionary_factory=factory))
    lookup = DictionaryLookupStrategy(factory)

    def is_known(word: str, lang: str) -> bool:  # simplemma.is_known, over the tries
        token = normalize_token(word)
        return any(lookup.get_lemma(token, code) is not None
                   for code in validate_lang_input(lang))

    return (lambda word, lang: str(lemmatizer.lemmatize(word, lang)), is_known)


WORD_CACHE_WORDS = 32_768
"""Words each of :func:`lemma`, :func:`morph_tag` and :func:`word_keys` keeps, the most recently
used: about 1 kB a word for the three together (60,000 new word forms in ru, uk, bg and en
took 60 MB in a stage process; a miss costs about 60 µs). A stream of real news keeps bringing
new word forms, so at 200,000 words each (the bound before session 17) the caches could grow
to some 200 MB a stage process; at this bound they stay under about 35 MB. The bench stream's
vocabulary (about 6,850 words) fits whole."""


@lru_cache(maxsize=WORD_CACHE_WORDS)
def lemma(word: str, lang: str) -> str:
    """The dictionary form of a word (lower case); the word itself when no lemmatizer applies."""
    low = word.lower()
    if lang in ("ru", "uk"):
        return str(morph_analyzer(lang).parse(low)[0].normal_form)
    if lang == "bg":
        return simplemma_lookups()[0](low, "bg").lower()
    return low


@lru_cache(maxsize=WORD_CACHE_WORDS)
def morph_tag(word: str, lang: str) -> str:
    """pymorphy3's grammatical tag of the most likely parse (ru/uk), else ''."""
    if lang not in ("ru", "uk"):
        return ""
    return str(morph_analyzer(lang).parse(word.lower())[0].tag)


def stem(word: str, lang: str) -> str:
    """A light suffix stem; abbreviations (all capitals) and short words stay whole."""
    low = word.lower()
    if word.isupper() or len(low) <= 3:
        return low
    for suffix in _SUFFIXES.get(lang, ()):
        if low.endswith(suffix) and len(low) - len(suffix) >= 3:
            return low[: -len(suffix)]
    return low


@lru_cache(maxsize=WORD_CACHE_WORDS)
def word_keys(word: str, lang: str) -> frozenset[str]:
    """Keys under which a word can match an alias word: surface, lemma, stem (lower case)."""
    low = word.lower()
    return frozenset({low, lemma(word, lang), stem(word, lang)})


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class ActorRole:
    code: str
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class ActorEntry:
    """A person, body or country with its CAMEO-style code (possibly changing over time)."""

    id: str
    kind: Literal["country", "body", "person"]
    country: str
    roles: tuple[ActorRole, ...]
    name: str
    #: A news agency or outlet: it relays other actors' words and is not itself the source
    #: of a statement it reports.
    channel: bool = False

    def code_at(self, when: date | None) -> str:
        """The actor code in force on ``when`` (the latest role when the day is unknown)."""
        if when is not None:
            for role in self.roles:
                if (role.start is None or role.start <= when) and (
                    role.end is None or when <= role.end
                ):
                    return role.code
        return self.roles[-1].code


@dataclass(frozen=True, slots=True)
class PlaceEntry:
    id: str
    name: str
    country: str
    lat: float
    lon: float
    metonym: str | None = None


TargetKind = Literal["actor", "adjective", "place", "surname", "dyad"]


@dataclass(frozen=True, slots=True)
class AliasTarget:
    kind: TargetKind
    ref: str  # actor id, place id, country code (adjective) or surname group index


@dataclass(frozen=True, slots=True)
class SurnameGroup:
    default: str
    family: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GazetteerMatch:
    """One alias found in a text."""

    start: int
    end: int
    surface: str
    target: AliasTarget
    token_start: int = -1
    token_end: int = -1


@dataclass(slots=True)
class _Index:
    # first-word key -> list of (alias word key sets, target)
    by_first: dict[str, list[tuple[tuple[frozenset[str], ...], AliasTarget]]] = field(
        default_factory=dict
    )
    prefixes: set[str] = field(default_factory=set)
    substring_re: re.Pattern[str] | None = None
    substring_targets: dict[str, AliasTarget] = field(default_factory=dict)
    #: Cache: a word (as written) -> the aliases it can start, in the order ``match`` tries them.
    starts: dict[str, tuple[tuple[tuple[frozenset[str], ...], AliasTarget], ...]] = field(
        default_factory=dict
    )


class Gazetteer:
    """All actors and places, indexed per text language."""

    def __init__(self, actors_data: dict[str, Any], places_data: dict[str, Any]) -> None:
        self.actors: dict[str, ActorEntry] = {}
        self.places: dict[str, PlaceEntry] = {}
        self.surnames: list[SurnameGroup] = []
        self._aliases: dict[str, list[tuple[str, AliasTarget]]] = {}
        self._indexes: dict[str, _Index] = {}
        self._matches = lru_cache(maxsize=_SENTENCE_CACHE_SIZE)(self._match_text)
        self._load_actors(actors_data)
        self._load_places(places_data)

    # ----------------------------------------------------------------- loading
    def _add_aliases(self, aliases: dict[str, Iterable[str]] | None, target: AliasTarget) -> None:
        for lang, names in (aliases or {}).items():
            for name in names:
                self._aliases.setdefault(str(lang), []).append((str(name), target))

    def _load_actors(self, data: dict[str, Any]) -> None:
        for item in data.get("countries", []):
            entry = ActorEntry(
                item["id"], "country", item["code"], (ActorRole(item["code"]),), item["id"]
            )
            self.actors[entry.id] = entry
            self._add_aliases(item.get("aliases"), AliasTarget("actor", entry.id))
        for item in data.get("adjectives", []):
            self._add_aliases(item.get("aliases"), AliasTarget("adjective", item["country"]))
        for section, kind in (("bodies", "body"), ("people", "person")):
            for item in data.get(section, []):
                roles = _parse_roles(item)
                name = _display_name(item)
                entry = ActorEntry(
                    item["id"],
                    kind,  # type: ignore[arg-type]
                    item["country"],
                    roles,
                    name,
                    bool(item.get("channel", False)),
                )
                self.actors[entry.id] = entry
                self._add_aliases(item.get("aliases"), AliasTarget("actor", entry.id))
        for index, item in enumerate(data.get("surnames", [])):
            self.surnames.append(SurnameGroup(item["default"], tuple(item.get("family", []))))
            self._add_aliases(item.get("aliases"), AliasTarget("surname", str(index)))
        for lang, names in (data.get("dyad_compounds") or {}).items():
            for name in names:
                self._aliases.setdefault(str(lang), []).append(
                    (str(name), AliasTarget("dyad", "RUS+PRK"))
                )

    def _load_places(self, data: dict[str, Any]) -> None:
        for item in data.get("places", []):
            place = PlaceEntry(
                item["id"],
                item["name"],
                item["country"],
                float(item["lat"]),
                float(item["lon"]),
                item.get("metonym"),
            )
            self.places[place.id] = place
            self._add_aliases(item.get("aliases"), AliasTarget("place", place.id))

    # ----------------------------------------------------------------- indexing
    def _index(self, lang: str) -> _Index:
        cached = self._indexes.get(lang)
        if cached is not None:
            return cached
        index = _Index()
        if lang in SUBSTRING_LANGS:
            pairs = list(self._aliases.get(lang, []))
            # Latin-script names (KCNA, NATO) also appear in CJK text.
            pairs += [(a, t) for a, t in self._aliases.get("en", []) if a.isupper() and len(a) >= 3]
            pairs.sort(key=lambda p: -len(p[0]))
            for alias, target in pairs:
                index.substring_targets.setdefault(alias.lower(), target)
            if pairs:
                index.substring_re = re.compile(
                    "|".join(re.escape(a) for a, _ in pairs), re.IGNORECASE
                )
        else:
            langs = [lang] if lang in self._aliases else list(self._aliases)
            keyed: list[tuple[str, AliasTarget, str]] = []
            for alias_lang in [*langs, "en"]:
                for alias, target in self._aliases.get(alias_lang, []):
                    keyed.append((alias, target, alias_lang if alias_lang in langs else lang))
            for alias, target, key_lang in keyed:
                words = [t.text for t in tokenize(alias)]
                if not words:
                    continue
                keysets = tuple(word_keys(w, key_lang) for w in words)
                for key in sorted(keysets[0]):  # sorted: the same order in every process
                    index.by_first.setdefault(key, []).append((keysets, target))
                    index.prefixes.add(key[:2])
        self._indexes[lang] = index
        return index

    # ----------------------------------------------------------------- matching
    def match(
        self, text: str, lang: str, tokens: Sequence[Token] | None = None
    ) -> list[GazetteerMatch]:
        """All alias matches in ``text`` (longest match wins, no overlaps), in text order.
        ``tokens``: ``tokenize(text)`` when the caller has it (other tokens are matched as given,
        uncached)."""
        if tokens is not None and lang not in SUBSTRING_LANGS and list(tokens) != tokenize(text):
            return self._match_tokens(text, lang, list(tokens))
        return list(self._matches(text, lang))

    def _match_text(self, text: str, lang: str) -> tuple[GazetteerMatch, ...]:
        return tuple(self._match_tokens(text, lang, tokenize(text)))

    def _match_tokens(self, text: str, lang: str, toks: list[Token]) -> list[GazetteerMatch]:
        index = self._index(lang)
        if lang in SUBSTRING_LANGS:
            return self._match_substrings(text, index)
        keys: list[frozenset[str] | None] = [None] * len(toks)

        def keys_at(i: int) -> frozenset[str]:
            got = keys[i]
            if got is None:
                got = word_keys(toks[i].text, lang)
                keys[i] = got
            return got

        matches: list[GazetteerMatch] = []
        starts = index.starts
        i = 0
        while i < len(toks):
            candidates = starts.get(toks[i].text)
            if candidates is None:
                candidates = self._alias_starts(index, toks[i].text, lang)
            if not candidates:
                i += 1
                continue
            best: tuple[int, AliasTarget] | None = None
            for keysets, target in candidates:
                n = len(keysets)
                if i + n > len(toks) or (best is not None and n <= best[0]):
                    continue
                if n > 1 and (
                    keysets[1].isdisjoint(keys_at(i + 1))  # most candidates fail here
                    or any(keysets[j].isdisjoint(keys_at(i + j)) for j in range(2, n))
                ):
                    continue
                best = (n, target)
            if best is None:
                i += 1
                continue
            n, target = best
            start, end = toks[i].start, toks[i + n - 1].end
            matches.append(GazetteerMatch(start, end, text[start:end], target, i, i + n))
            i += n
        return matches

    @staticmethod
    def _alias_starts(
        index: _Index, word: str, lang: str
    ) -> tuple[tuple[tuple[frozenset[str], ...], AliasTarget], ...]:
        """The aliases whose first word ``word`` can be: those filed under its word keys."""
        found: list[tuple[tuple[frozenset[str], ...], AliasTarget]] = []
        keys = word_keys(word, lang)
        if word.lower()[:2] in index.prefixes or _any_prefix(keys, index.prefixes):
            # sorted, not set order: set order of strings changes with the process's hash
            # seed, and ties of equal length keep the first candidate
            for key in sorted(keys):
                found.extend(index.by_first.get(key, ()))
        if len(index.starts) >= _STARTS_CACHE_SIZE:
            index.starts.clear()
        index.starts[word] = result = tuple(found)
        return result

    def _match_substrings(self, text: str, index: _Index) -> list[GazetteerMatch]:
        if index.substring_re is None:
            return []
        out: list[GazetteerMatch] = []
        for m in index.substring_re.finditer(text):
            target = index.substring_targets.get(m.group(0).lower())
            if target is not None:
                out.append(GazetteerMatch(m.start(), m.end(), m.group(0), target))
        return out

    def country_of(self, code: str) -> str:
        """An actor code's country: its first three letters (NATO and UNO stay whole)."""
        return code if code in ("NATO", "UNO") else code[:3]


_STARTS_CACHE_SIZE = 100_000


def _any_prefix(keys: frozenset[str], prefixes: set[str]) -> bool:
    return any(k[:2] in prefixes for k in keys)


def _parse_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _parse_roles(item: dict[str, Any]) -> tuple[ActorRole, ...]:
    if "roles" in item:
        return tuple(
            ActorRole(r["code"], _parse_date(r.get("from")), _parse_date(r.get("until")))
            for r in item["roles"]
        )
    return (ActorRole(item["code"]),)


def _display_name(item: dict[str, Any]) -> str:
    aliases = item.get("aliases") or {}
    english = aliases.get("en") or []
    return str(english[0]) if english else str(item["id"])


@lru_cache(maxsize=1)
def get_gazetteer() -> Gazetteer:
    """The process-wide gazetteer (loaded once)."""
    with ACTORS_PATH.open(encoding="utf-8") as handle:
        actors = load_yaml(handle)
    with PLACES_PATH.open(encoding="utf-8") as handle:
        places = load_yaml(handle)
    return Gazetteer(actors, places)
