"""Stream stage 2 (pure logic): Russia–DPRK developments reported by a clean article.

For every sentence the extractor finds actors (gazetteer), event triggers (per-language
lexicons in ``data/triggers.yaml``) and date expressions, then decides for each trigger:

* modality — future plans, speculation and negation are not facts: they are dropped, except
  triggers that are intents by meaning (promises, invitations) and plans an actor announces in
  a statement, which become statements (CAMEO 01);
* the event date — the nearest date expression of its own; a date attached to the speech verb
  ("said Thursday") dates the report and only bounds the event; otherwise the narrative or
  publication date.  Nouns that merely name an event ("the summit") need a date of their own;
* source and target — the speaker of a quote is the source of a statement ("“We condemn …,”
  Kirby said"); otherwise the subject before the trigger and the first actor of another
  country; pronoun subjects and Korean zero subjects continue the previous sentence;
* relevance — both Russia and the DPRK must take part, or a third party acts on them;
  meetings and uses of force must be between the two;
* background — history and context markers, or dates well before publication.

* states are not events — present tense in narration (not quoted, not reported speech, not a
  title) for the codes in ``stative_present`` ("Pyongyang supplies Moscow", "both deny"), and
  present-tense relative clauses describing a thing ("a treaty which promises aid");
* supplies and deployments are ongoing processes: "since X" / "after X" dates them by the start
  at year precision (the framing clause is context); without a start, present tense is a state.

Mentions are deduplicated per article: one per (code, date, countries), keeping the best quote;
then one event is kept per ongoing supply/deployment and pair, a generic meeting folds into the
specific one of its day, an undated reception into the arrival it follows, and praise of a
visit into that visit (see ``_consolidate``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import compress, count, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

from schemas.models import CleanArticle, EventMention, Place
from streams.datafiles import load_yaml
from streams.dates import (
    FLOATING_YEAR,
    DateExpression,
    ResolvedDate,
    anniversary_anchor,
    find_date_expressions,
    partial_date,
    resolve_expression,
)
from streams.gazetteer import (
    SUBSTRING_LANGS,
    ActorEntry,
    Gazetteer,
    GazetteerMatch,
    PlaceEntry,
    Token,
    get_gazetteer,
    morph_tag,
    tokenize,
)

DATA_DIR = Path(__file__).parent / "data"
TRIGGERS_PATH = DATA_DIR / "triggers.yaml"
_DATA_FILES = (
    "actors.yaml",
    "places.yaml",
    "triggers.yaml",
    "dates.yaml",
    "goldstein.yaml",
    "tone.yaml",
)

DYAD = frozenset({"RUS", "PRK"})
INTERNATIONAL_BODIES = frozenset({"UNO", "NATO", "EU", "EUR"})

#: How many words before a trigger modality and negation cues may stand.
MODALITY_WINDOW = 4
NEGATION_WINDOW = 3
#: How far (characters) a date may stand from a noun trigger ("the summit on 13 September").
NOUN_DATE_REACH = 25
#: Days before publication after which an event counts as background context.
BACKGROUND_AFTER_DAYS = 45


def _data_hash() -> str:
    digest = hashlib.sha1()
    for name in _DATA_FILES:
        path = DATA_DIR / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


EXTRACTOR_VERSION = f"0.5.0+{_data_hash()}"


# --------------------------------------------------------------------------- sentences


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence with its position; ``paragraph`` groups sentences of one paragraph."""

    index: int
    text: str
    start: int
    paragraph: int
    is_title: bool = False


_ABBREVIATION_WORDS = (
    "u.s u.n n s mr mrs ms dr st sept sep oct nov dec jan feb aug apr gen lt col no vs etc "
    "г гг т д им ул ст тыс млн млрд др пр см н э р ж"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_BOUNDARY_RE = re.compile(
    r"(?<=[.!?…。])([\"'”»“)\]]*)(\s+|(?=[\"«“„(]?[A-ZА-ЯЁІЇЄҐ]))", re.UNICODE
)


def split_sentences(text: str, lang: str = "en") -> list[Sentence]:
    """Split text into sentences; short sentences are kept (Korean sentences are short).

    Paragraphs (line breaks) always split.  Inside a paragraph a sentence ends at . ! ? …
    (plus closing quotes) before whitespace or a capital letter, except after abbreviations
    and initials ("U.S.", "N. Korea"); glued sentences ("(ISW).Пока") are split too.
    """
    sentences: list[Sentence] = []
    offset = 0
    paragraph = 0
    for line in text.split("\n"):
        line_start = offset
        offset += len(line) + 1
        if not line.strip():
            continue
        pieces = _split_line(line)
        for piece_start, piece in pieces:
            stripped = piece.strip()
            if not stripped:
                continue
            lead = len(piece) - len(piece.lstrip())
            sentences.append(
                Sentence(len(sentences), stripped, line_start + piece_start + lead, paragraph)
            )
        paragraph += 1
    return sentences


def _split_line(line: str) -> list[tuple[int, str]]:
    pieces: list[tuple[int, str]] = []
    start = 0
    for m in _BOUNDARY_RE.finditer(line):
        end = m.start(2) if m.group(2) else m.end(1)
        before = line[start : m.start()].rstrip(".!?…。")
        last_word = re.findall(r"[\w.]+$", before)
        word = last_word[0].lower() if last_word else ""
        if word.rstrip(".") in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        glued_ok = re.search(r"(?:[a-zа-яёіїєґ]{3}|[)\"»”])$", before, re.IGNORECASE)
        if not m.group(2) and not glued_ok:  # glued: require a real word before the dot
            continue
        if re.match(r"\s*[a-zа-яё0-9]", line[m.end() :]) and m.group(2):
            # Lower-case continuation: not a sentence boundary ("approx. five").
            continue
        pieces.append((start, line[start:end]))
        start = m.end()
    pieces.append((start, line[start:]))
    return pieces


# --------------------------------------------------------------------------- lexicons


@dataclass(frozen=True, slots=True)
class _Pattern:
    words: tuple[tuple[str, bool, bool], ...]  # (stem, exact, gap_before)
    value: Any


@dataclass(slots=True)
class _PatternSet:
    """Token-stem patterns (non-CJK) or substrings (CJK) mapped to values."""

    by_prefix: dict[str, list[_Pattern]] = field(default_factory=dict)
    substring_re: re.Pattern[str] | None = None
    substring_values: dict[str, Any] = field(default_factory=dict)
    short_key_lengths: tuple[int, ...] = ()
    """Lengths of bucket keys shorter than _PREFIX_KEY (first words of 1-3 letters)."""
    first_word: dict[str, tuple[_Pattern, ...]] = field(default_factory=dict)
    """Cache: a lower-cased word -> the patterns whose first word it matches, in match order."""

    def add(self, pattern: str, value: Any, lang: str) -> None:
        self.first_word.clear()
        if lang in SUBSTRING_LANGS:
            self.substring_values.setdefault(pattern.lower(), value)
            return
        words: list[tuple[str, bool, bool]] = []
        gap = False
        for raw in pattern.split():
            if raw == "_":
                gap = True
                continue
            exact = raw.endswith("$")
            body = raw.rstrip("$").lower()
            for i, part in enumerate(t.text.lower() for t in tokenize(body)):
                words.append((part, exact, gap if i == 0 else False))
            gap = False
        if words:
            key = words[0][0][:_PREFIX_KEY]
            self.by_prefix.setdefault(key, []).append(_Pattern(tuple(words), value))

    def compile(self) -> None:
        self.short_key_lengths = tuple(
            sorted({len(k) for k in self.by_prefix if len(k) < _PREFIX_KEY})
        )
        if self.substring_values:
            keys = sorted(self.substring_values, key=len, reverse=True)
            self.substring_re = re.compile("|".join(re.escape(k) for k in keys), re.IGNORECASE)

    def find(
        self, text: str, lowered: Sequence[str], tokens: Sequence[Token]
    ) -> list[tuple[int, int, int, int, Any]]:
        """Matches as (char start, char end, token start, token end, value)."""
        out: list[tuple[int, int, int, int, Any]] = []
        if self.substring_re is not None:
            for m in self.substring_re.finditer(text):
                value = self.substring_values.get(m.group(0).lower())
                tok = _token_at(tokens, m.start())
                out.append((m.start(), m.end(), tok, tok + 1, value))
        if not self.by_prefix:
            return out
        size = len(lowered)
        # Each word's cached patterns, looked up in C; most words have none (an empty tuple,
        # false), so only the others (and the uncached, _UNCACHED) are visited, in text order.
        found = list(map(self.first_word.get, lowered, repeat(_UNCACHED, size)))
        for i in compress(count(), found):
            candidates = found[i]
            if candidates is _UNCACHED:
                candidates = self._first_word_patterns(lowered[i])
            for pattern in candidates:
                words = pattern.words
                if len(words) == 1:
                    out.append((tokens[i].start, tokens[i].end, i, i + 1, pattern.value))
                    continue
                stem_, exact, gap = words[1]
                if gap:
                    end = _match_rest(words, lowered, i + 1)
                    if end is None:
                        continue
                else:  # the next word, checked here: most candidates fail on it
                    if i + 1 >= size:
                        continue
                    word = lowered[i + 1]
                    if not (word == stem_ if exact else word.startswith(stem_)):
                        continue
                    end = i + 2 if len(words) == 2 else _match_rest(words, lowered, i + 2, 2)
                    if end is None:
                        continue
                out.append((tokens[i].start, tokens[end - 1].end, i, end, pattern.value))
        return out

    def _first_word_patterns(self, word: str) -> tuple[_Pattern, ...]:
        """The patterns whose first word ``word`` matches, in the order ``find`` tries them.

        A pattern is filed under its first word's first _PREFIX_KEY letters (or the whole word
        when shorter), so only buckets keyed by a prefix of a word can match it. Cached per
        word (words repeat: a few thousand distinct ones make most of a language's text)."""
        buckets = self.by_prefix
        found: list[_Pattern] = []
        keys = [word[:_PREFIX_KEY]]
        keys += [
            word[:k]
            for k in self.short_key_lengths
            if k < len(word) or (k == len(word) and k < _PREFIX_KEY)
        ]
        for key in keys:
            for pattern in buckets.get(key) or ():
                stem0, exact0, _ = pattern.words[0]
                if _word_ok(word, stem0, exact0):
                    found.append(pattern)
        if len(self.first_word) >= _WORD_CACHE_SIZE:
            self.first_word.clear()
        self.first_word[word] = result = tuple(found)
        return result


_PREFIX_KEY = 4
_WORD_CACHE_SIZE = 50_000
_UNCACHED: tuple[_Pattern, ...] = (_Pattern((), None),)
"""``find``'s marker of a word not in the cache yet (true, like a word with patterns)."""


def _token_at(tokens: Sequence[Token], char: int) -> int:
    for i, tok in enumerate(tokens):
        if tok.end > char:
            return i
    return max(0, len(tokens) - 1)


def _word_ok(word: str, stem: str, exact: bool) -> bool:
    return word == stem if exact else word.startswith(stem)


def _match_rest(
    words: tuple[tuple[str, bool, bool], ...], lowered: Sequence[str], pos: int, first: int = 1
) -> int | None:
    """Where a pattern whose words before ``first`` matched just before ``pos`` ends (None: no
    match)."""
    size = len(lowered)
    for k in range(first, len(words)):
        stem_, exact, gap = words[k]
        if not gap:  # the next word (most patterns): no scan
            if pos >= size:
                return None
            word = lowered[pos]
            if not (word == stem_ if exact else word.startswith(stem_)):
                return None
            pos += 1
            continue
        for j in range(pos, min(pos + 5, size)):
            word = lowered[j]
            if word == stem_ if exact else word.startswith(stem_):
                pos = j + 1
                break
        else:
            return None
    return pos


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    code: str
    pos: str  # verb | noun
    #: statement | meeting | confirm | criticism | intent | supply | deploy | force |
    #: supersede | ""
    kind: str


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    """A trigger found in a sentence."""

    start: int
    end: int
    token_start: int
    token_end: int
    spec: TriggerSpec
    surface: str


CUE_NAMES = (
    "future",
    "modal",
    "negation",
    "speech",
    "background",
    "locative",
    "pronoun",
    "military_noun",
    "government_noun",
    "temporal_frame",
    "complementizer",
    "first_person",
    "inchoative",
    "dyad_reference",
    "since_frame",
    "sanctions_noun",
    "relative_pronoun",
    "aid_frame",
    "exchange_frame",
    "elaboration",
    "treaty_noun",
)


@dataclass(slots=True)
class _Lexicon:
    triggers: _PatternSet
    cues: dict[str, _PatternSet]
    present_suffixes: tuple[str, ...] = ()
    past_exceptions: tuple[str, ...] = ()
    all_cues: _PatternSet | None = None
    """Every cue list in one token-pattern set (value = cue name): one pass per sentence.
    None for substring (CJK) languages, whose regex alternation would hide overlaps."""

    def cue_spans(
        self, names: Sequence[str], text: str, lowered: Sequence[str], toks: Sequence[Token]
    ) -> dict[str, list[tuple[int, int, int, int]]]:
        spans: dict[str, list[tuple[int, int, int, int]]] = {name: [] for name in names}
        if self.all_cues is None:
            for name in names:
                spans[name] = [(s, e, ts, te) for s, e, ts, te, _ in
                               self.cues[name].find(text, lowered, toks)]
            return spans
        for s, e, ts, te, name in self.all_cues.find(text, lowered, toks):
            if name in spans:
                spans[name].append((s, e, ts, te))
        return spans


@lru_cache(maxsize=1)
def _trigger_data() -> dict[str, Any]:
    with TRIGGERS_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = load_yaml(handle)
    return loaded


@lru_cache(maxsize=32)
def _lexicon(lang: str) -> _Lexicon:
    data = _trigger_data()
    triggers = _PatternSet()
    lex_lang = lang if any(lang in t for t in data["triggers"]) else "en"
    for item in data["triggers"]:
        spec = TriggerSpec(
            str(item["code"]), str(item.get("pos", "verb")), str(item.get("kind", ""))
        )
        for pattern in item.get(lex_lang) or []:
            triggers.add(str(pattern), spec, lex_lang)
    triggers.compile()
    cues: dict[str, _PatternSet] = {}
    all_cues = None if lex_lang in SUBSTRING_LANGS else _PatternSet()
    for name in CUE_NAMES:
        cue_set = _PatternSet()
        per_lang = data["cues"].get(name) or {}
        for pattern in per_lang.get(lex_lang) or []:
            cue_set.add(str(pattern), name, lex_lang)
            if all_cues is not None:
                all_cues.add(str(pattern), name, lex_lang)
        cue_set.compile()
        cues[name] = cue_set
    if all_cues is not None:
        all_cues.compile()
    suffixes = data.get("present_tense_suffixes") or {}
    return _Lexicon(
        triggers,
        cues,
        tuple(suffixes.get(lang) or ()),
        tuple(suffixes.get(f"{lang}_past_exceptions") or ()),
        all_cues,
    )


@lru_cache(maxsize=1)
def _stative_codes() -> tuple[str, ...]:
    return tuple(str(c) for c in _trigger_data().get("stative_present") or ())


def match_triggers(
    text: str,
    lang: str,
    tokens: Sequence[Token] | None = None,
    lowered: Sequence[str] | None = None,
) -> list[TriggerMatch]:
    """Event triggers of a sentence; overlapping matches keep the longest. ``lowered``: the
    tokens' lower-cased texts, when the caller has them."""
    toks = list(tokens) if tokens is not None else tokenize(text)
    if lowered is None or tokens is None:
        lowered = [t.text.lower() for t in toks]
    raw = _lexicon(lang).triggers.find(text, lowered, toks)
    raw.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    chosen: list[TriggerMatch] = []
    for start, end, ts, te, spec in raw:
        if any(not (end <= c.start or start >= c.end) for c in chosen):
            continue
        chosen.append(TriggerMatch(start, end, ts, te, spec, text[start:end]))
    chosen.sort(key=lambda t: t.start)
    return chosen


# --------------------------------------------------------------------------- actors


@dataclass(frozen=True, slots=True)
class ActorMention:
    """An actor in a sentence (a person, body, country, country adjective or metonym)."""

    start: int
    end: int
    code: str
    country: str
    entity: str
    token_start: int
    is_adjective: bool = False
    #: A country named as a location ("в Украйна", "in Ukraine"): not a speaker.
    locative: bool = False
    #: A person's code fixed by the title named with them ("NATO chief Stoltenberg"), not by
    #: the event date.
    titled: bool = False


@dataclass(slots=True)
class _ArticleState:
    """What earlier sentences established: named people (for bare surnames), context."""

    named: dict[str, str] = field(default_factory=dict)  # surname group -> actor id
    previous_actors: list[ActorMention] = field(default_factory=list)
    previous_speaker: ActorMention | None = None
    previous_paragraph: int = -1
    context_date: ResolvedDate | None = None
    #: Without a publication date: the date an attribution sentence gives the report ("Об
    #: этом 19 июня сообщает Интерфакс", "This was reported on June 19"), for undated events.
    report_exprs: list[DateExpression] = field(default_factory=list)
    #: A criticism of the previous sentence whose critics are unnamed ("western officials
    #: warned"), for an elaboration that names one ("In particular, Stoltenberg said ...").
    unnamed_criticism: _UnnamedCriticism | None = None
    #: The previous sentence names a treaty or agreement.
    previous_treaty: bool = False


@dataclass(frozen=True, slots=True)
class _UnnamedCriticism:
    code: str
    trigger: TriggerMatch
    actors: list[ActorMention]


def recognize_actors(
    sentence: str,
    lang: str,
    when: date | None = None,
    tokens: Sequence[Token] | None = None,
    gazetteer: Gazetteer | None = None,
) -> tuple[list[ActorMention], list[PlaceEntry]]:
    """Actors and places of one sentence, without article context."""
    toks = list(tokens) if tokens is not None else tokenize(sentence)
    gaz = gazetteer or get_gazetteer()
    matches = gaz.match(sentence, lang, toks)
    return _actors_from_matches(sentence, lang, toks, matches, gaz, when, _ArticleState())


def _actors_from_matches(
    sentence: str,
    lang: str,
    toks: Sequence[Token],
    matches: Sequence[GazetteerMatch],
    gaz: Gazetteer,
    when: date | None,
    state: _ArticleState,
    cue_tokens: Mapping[str, set[int]] | None = None,
) -> tuple[list[ActorMention], list[PlaceEntry]]:
    """``cue_tokens``: the tokens of the sentence's cues by cue name when the caller has them
    (at least locative, military_noun and government_noun); found here otherwise."""
    if cue_tokens is None:
        lowered = [t.text.lower() for t in toks]
        cue_tokens = {
            name: {t for _s, _e, ts, te in spans for t in range(ts, te)}
            for name, spans in _lexicon(lang).cue_spans(
                ("locative", "military_noun", "government_noun"), sentence, lowered, toks
            ).items()
        }
    actors: list[ActorMention] = []
    places: list[PlaceEntry] = []
    for m in matches:
        tok = m.token_start if m.token_start >= 0 else _token_at(toks, m.start)
        tok_end = m.token_end if m.token_end >= 0 else tok + 1
        target = m.target
        if target.kind == "place":
            place = gaz.places[target.ref]
            places.append(place)
            locative = (
                _preceded_by(cue_tokens["locative"], tok, 2)
                or _cjk_locative(sentence, m, lang)
                or (m.start <= 1 and _DATELINE_PLACE_RE.match(sentence[m.end :]) is not None)
            )
            if place.metonym and not locative:
                actors.append(
                    ActorMention(m.start, m.end, place.metonym, place.country, place.id, tok)
                )
            continue
        if target.kind == "dyad":
            actors.append(ActorMention(m.start, m.end, "RUS", "RUS", "russia", tok))
            actors.append(ActorMention(m.start, m.end, "PRK", "PRK", "north_korea", tok))
            continue
        if target.kind == "surname":
            group = gaz.surnames[int(target.ref)]
            nxt = toks[tok_end].text if tok_end < len(toks) else ""
            if (
                lang not in SUBSTRING_LANGS
                and nxt[:1].isupper()
                and toks[tok_end].start - m.end <= 2
            ):
                continue  # an unknown given name follows: another person of that family
            actor_id = state.named.get(target.ref, group.default)
            entry = gaz.actors.get(actor_id)
            if entry is None:
                continue
            actors.append(_actor(entry, m, tok, when))
            continue
        if target.kind == "adjective":
            country = target.ref
            code = country
            if _near(cue_tokens["military_noun"], tok_end, 3):
                code = country + "MIL"
            elif _near(cue_tokens["government_noun"], tok_end, 2):
                code = country + "GOV"
            actors.append(
                ActorMention(m.start, m.end, code, country, country, tok, is_adjective=True)
            )
            continue
        entry = gaz.actors[target.ref]
        if entry.kind == "person":
            for index, group in enumerate(gaz.surnames):
                if entry.id in group.family:
                    state.named[str(index)] = entry.id
        mention = _actor(entry, m, tok, when)
        if entry.kind == "person" and len(entry.roles) > 1:
            mention = _titled(mention, entry, actors)
        if entry.kind == "country" and (
            _near(cue_tokens["military_noun"], tok_end, 2)
            or _preceded_by(cue_tokens["military_noun"], tok, 2)
        ):
            mention = ActorMention(
                m.start, m.end, entry.country + "MIL", entry.country, entry.id, tok
            )
        elif entry.kind == "country" and _preceded_by(cue_tokens["locative"], tok, 1):
            mention = ActorMention(
                m.start, m.end, mention.code, mention.country, entry.id, tok, locative=True
            )
        actors.append(mention)
    return actors, places


#: "TOKYO, Nov 12 (KUNA) --", "WONSAN /North Korea/, July 12.": a dateline names a place.
_DATELINE_PLACE_RE = re.compile(
    r"\s*(?:/[^/\n]{1,40}/)?\s*,\s*(?:\w{3,10}\.?\s+\d{1,2}\b|\d{1,2}\s+\w{3,10})"
)


def _titled(
    person: ActorMention, entry: ActorEntry, before: Sequence[ActorMention]
) -> ActorMention:
    """A person named right after the body or country of one of their roles ("генсек НАТО
    Йенс Столтенберг", "NATO Secretary General Stoltenberg") acts in that role, whatever the
    date: the title says which office the report means."""
    title = next(
        (
            a
            for a in reversed(before)
            if not a.locative and 0 <= person.start - a.end <= APPOSITION_REACH
        ),
        None,
    )
    if title is None:
        return person
    codes = [r.code for r in entry.roles if _code_country(r.code) == title.country]
    if len(set(codes)) != 1 or codes[0] == person.code:
        return person
    return ActorMention(
        person.start, person.end, codes[0], title.country, person.entity, person.token_start,
        titled=True,
    )


def _code_country(code: str) -> str:
    return code if code in ("NATO", "UNO", "EU") else code[:3]


def _actor(entry: ActorEntry, m: GazetteerMatch, tok: int, when: date | None) -> ActorMention:
    code = entry.code_at(when)
    country = code if code in ("NATO", "UNO", "EU") else code[:3]
    return ActorMention(m.start, m.end, code, country, entry.id, tok)


def _cjk_locative(sentence: str, m: GazetteerMatch, lang: str) -> bool:
    if lang not in SUBSTRING_LANGS:
        return False
    after = sentence[m.end : m.end + 3]
    return after.startswith(("에서", "에 ", "으로", "로 ", "까지", "공항", "에", "で", "に", "在"))


def _preceded_by(cue_tokens: set[int], tok: int, window: int) -> bool:
    return any((tok - k) in cue_tokens for k in range(1, window + 1))


def _near(cue_tokens: set[int], tok_end: int, window: int) -> bool:
    return any((tok_end + k) in cue_tokens for k in range(0, window))


# --------------------------------------------------------------------------- events


@dataclass(slots=True)
class _Candidate:
    sentence: Sentence
    trigger: TriggerMatch
    code: str
    source: ActorMention
    target: ActorMention
    actors: list[str]
    date: ResolvedDate
    background: bool
    places: list[PlaceEntry]
    entities: list[str]
    explicit_date: bool
    score: float
    #: Praise whose object is a meeting noun ("hailed the visit").
    about_meeting: bool = False


@dataclass(slots=True)
class _SentenceAnalysis:
    text: str
    tokens: list[Token]
    lowered: list[str]
    cues: dict[str, list[tuple[int, int, int, int]]]  # name -> (cs, ce, ts, te)
    quotes: list[tuple[int, int]]


_QUOTE_RE = re.compile(r"“[^”]{3,}”|«[^»]{3,}»|„[^“”]{3,}[“”]|\"[^\"]{3,}\"|‘[^’]{12,}’")


def _analyse(text: str, lang: str) -> _SentenceAnalysis:
    toks = tokenize(text)
    lowered = list(map(str.lower, map(_TOKEN_TEXT, toks)))
    lex = _lexicon(lang)
    cues = lex.cue_spans(CUE_NAMES, text, lowered, toks)
    quotes = [m.span() for m in _QUOTE_RE.finditer(text)]
    return _SentenceAnalysis(text, toks, lowered, cues, quotes)


_TOKEN_TEXT = itemgetter(0)  # Token.text


def _cue_tokens(cues: Mapping[str, list[tuple[int, int, int, int]]]) -> dict[str, set[int]]:
    """The token indexes each cue covers, by cue name (most of the names have no span: a
    plain loop, not a set comprehension's call per name)."""
    out: dict[str, set[int]] = {}
    for name, spans in cues.items():
        covered: set[int] = set()
        for _, _, ts, te in spans:
            covered.update(range(ts, te))
        out[name] = covered
    return out


def analysis_text(analysis: _SentenceAnalysis) -> str:
    return analysis.text


def _after_last_of(text: str, end: int, chars: str) -> int:
    """The position just after the last of ``chars`` in ``text[:end]`` (0 when there is none):
    where a backward walk from ``end`` that stops after one of ``chars`` ends, in C."""
    return max(text.rfind(ch, 0, end) for ch in chars) + 1


def _in_quote(quotes: Sequence[tuple[int, int]], pos: int) -> bool:
    return any(s <= pos < e for s, e in quotes)


def extract_events(article: CleanArticle) -> list[EventMention]:
    """The Russia–DPRK developments an article reports, one mention per event."""
    gaz = get_gazetteer()
    lang = (article.lang or "en").lower()
    anchor, anchor_source = _publication_anchor(article, lang)
    sentences = _article_sentences(article, lang)
    state = _ArticleState()
    if anchor is None:
        state.report_exprs = _attribution_report_dates(sentences, lang)
    candidates: list[_Candidate] = []
    for sentence in sentences:
        candidates.extend(_sentence_events(sentence, lang, anchor, anchor_source, gaz, state))
    if anchor is None or anchor.year >= FLOATING_YEAR - 1:
        candidates = _floating_candidates(candidates)
    chosen = _dedupe(candidates)
    return [_to_mention(article, c, anchor_source) for c in chosen]


def _article_sentences(article: CleanArticle, lang: str) -> list[Sentence]:
    sentences = split_sentences(article.text, lang)
    title = (article.title or "").strip()
    if not title:
        return sentences
    probe = title[:60].lower()
    for i, sentence in enumerate(sentences[:3]):
        if probe and probe in sentence.text.lower():
            sentences[i] = Sentence(
                sentence.index, sentence.text, sentence.start, sentence.paragraph, True
            )
            return sentences
    return [Sentence(-1, title, -1, -1, is_title=True), *sentences]


def _floating_candidates(candidates: Iterable[_Candidate]) -> list[_Candidate]:
    """Undated article: only dates the text gives can date an event, absolute ones or partial
    ones (month and day without a year, a day of month, a weekday) that the timeline anchors
    against dated reports; a stand-in date of a yearless publication becomes partial."""
    out: list[_Candidate] = []
    for cand in candidates:
        resolved = cand.date
        if resolved.partial is None and resolved.first_day().year >= FLOATING_YEAR - 1:
            if resolved.precision == "year":
                continue
            partial = "--" + resolved.date[5:]
            cand.date = ResolvedDate(resolved.date, resolved.precision, resolved.source, partial)
        out.append(cand)
    return out


def _publication_anchor(article: CleanArticle, lang: str) -> tuple[date | None, str]:
    """The day relative dates count from, and where it came from.

    Without a publication time (an ingest time does not count) the text may still fix it:
    the latest full date it prints (a dateline or caption), or a weekday named together with
    a day and month ("reported on Monday" + "15 August"), which admits only certain years.
    """
    # An ingest time is not a publication time (a replayed archive is ingested years later).
    trusted = article.published_source != "ingest"
    if article.published is not None and article.published_has_year and trusted:
        if article.published_precision != "day":
            # Metadata gave only a month (or a year): relative days cannot be resolved.
            return article.published.date(), article.published_source + ":month"
        return article.published.date(), article.published_source
    text = (article.title or "") + "\n" + article.text
    full: list[date] = []
    partial: list[DateExpression] = []
    weekdays: list[int] = []
    years: list[int] = []
    for expr in find_date_expressions(text, lang):
        if expr.kind == "full" and expr.year and expr.month and expr.day:
            full.append(date(expr.year, expr.month, expr.day))
        elif expr.kind == "day_month":
            partial.append(expr)
        elif expr.kind == "weekday" and expr.weekday is not None:
            weekdays.append(expr.weekday)
        if expr.year:
            years.append(expr.year)
    if full:
        return max(full), "text"
    if article.published is not None and trusted and article.published_precision == "day":
        # A publication day without its year: relative dates resolve to month and day, in a
        # stand-in year; the timeline infers the year (see _floating_candidates).
        pub = article.published.date()
        if pub.month != 2 or pub.day != 29 or FLOATING_YEAR % 4 == 0:
            return pub.replace(year=FLOATING_YEAR), "text_yearless"
    if article.published is not None and partial:
        # Month and day known, year not: keep the publication's month/day only if the text's
        # own dates agree; without a year nothing can be dated.
        pass
    if len(partial) == 1 and len(set(weekdays)) == 1 and years:
        expr = partial[0]
        assert expr.month is not None and expr.day is not None
        floor = max(years)
        for year in range(floor, floor + 15):
            try:
                candidate = date(year, expr.month, expr.day)
            except ValueError:
                continue
            if candidate.weekday() == weekdays[0]:
                return candidate, "text_weekday"
    # "the first anniversary of the treaty signed in June 2024": written in June 2025.
    found = anniversary_anchor(text, lang)
    if found is not None:
        return found[0], f"anniversary:{found[1]}"
    return None, "none"


#: How many leading sentences may hold the attribution that dates an undated article.
ATTRIBUTION_SENTENCES = 6


def _report_expressions(text: str, analysis: _SentenceAnalysis, lang: str) -> list[DateExpression]:
    """Date expressions of a sentence that date its report: next to a speech verb, or a
    dateline's."""
    speech_spans = [(s, e) for s, e, _, _ in analysis.cues["speech"]]
    return [x for x in find_date_expressions(text, lang) if _dates_report(x, text, speech_spans)]


def _dates_report(x: DateExpression, text: str, speech_spans: Sequence[tuple[int, int]]) -> bool:
    return any(abs(x.start - e) <= 4 or abs(s - x.end) <= 4 for s, e in speech_spans) or (
        _DATELINE_RE.match(text[x.end : x.end + 12]) is not None and x.start < 80
    )


def _attribution_report_dates(sentences: Sequence[Sentence], lang: str) -> list[DateExpression]:
    """In an article without a publication date, the report date an attribution sentence of
    its lead states: a sentence with a dated speech verb and no event of its own."""
    for sentence in sentences[:ATTRIBUTION_SENTENCES]:
        analysis = _analyse(sentence.text, lang)
        if not analysis.cues["speech"] or match_triggers(sentence.text, lang, analysis.tokens):
            continue
        found = _report_expressions(sentence.text, analysis, lang)
        if found:
            return found[:1]
    return []


def _sentence_events(
    sentence: Sentence,
    lang: str,
    anchor: date | None,
    anchor_source: str,
    gaz: Gazetteer,
    state: _ArticleState,
) -> list[_Candidate]:
    text = sentence.text
    analysis = _analyse(text, lang)
    toks = analysis.tokens
    unnamed, state.unnamed_criticism = state.unnamed_criticism, None
    treaty_before, state.previous_treaty = state.previous_treaty, bool(analysis.cues["treaty_noun"])
    cue_tok = _cue_tokens(analysis.cues)
    matches = gaz.match(text, lang, toks)
    actors, places = _actors_from_matches(text, lang, toks, matches, gaz, anchor, state, cue_tok)
    triggers = match_triggers(text, lang, toks, analysis.lowered)
    new_paragraph = sentence.paragraph != state.previous_paragraph
    pronoun_start = (
        any(t <= 2 for t in cue_tok["pronoun"])
        or (lang in SUBSTRING_LANGS and bool(analysis.cues["pronoun"]))
        or bool(analysis.cues["dyad_reference"])
    )
    # Date expressions of the sentence; those next to a speech verb date the report. They only
    # date triggers: a sentence without one yields no candidate and leaves no date behind.
    expressions = find_date_expressions(text, lang) if triggers else []
    speech_spans = [(s, e) for s, e, _, _ in analysis.cues["speech"]]
    report_exprs = [x for x in expressions if _dates_report(x, text, speech_spans)]
    own_exprs = [x for x in expressions if x not in report_exprs]
    speaker = _find_speaker(text, analysis, actors, state)
    candidates: list[_Candidate] = []
    # "с 17 по 19 июня" is a bounded stay, not "since" — in a dated article; an undated one's
    # yearless range would float, and the timeline's anchoring does not yet check the year.
    own_exprs = [
        x
        for x in own_exprs
        if (x.is_range and anchor is not None)
        or not _SINCE_RE.search(text[max(0, x.start - 12) : x.start])
    ]
    assigned = _assign_dates(triggers, own_exprs, lang in SUBSTRING_LANGS)
    sentence_dates: list[ResolvedDate] = []
    criticism_end = -1
    confirm_end = -1
    for trig in triggers:
        spec = trig.spec
        if spec.kind == "criticism":
            criticism_end = trig.end if criticism_end < 0 else criticism_end
        if spec.kind == "confirm":
            confirm_end = trig.end if confirm_end < 0 else confirm_end
    verb_roots = {t.spec.code[:2] for t in triggers if t.spec.pos == "verb"}
    month_only = anchor_source.endswith(":month")
    year_only = anchor_source.endswith(":year")
    # An anniversary fixes the year, not the day: a day and month the text gives stay days.
    kept_days = ("absolute", "day_month") if anchor_source.startswith("anniversary") else (
        "absolute",)
    process_start = _process_start(triggers, analysis, expressions, anchor, state)
    frame = process_start[0] if process_start is not None else (-1, -1)
    reported = bool(analysis.cues["speech"])
    for trig in triggers:
        spec = trig.spec
        code = spec.code
        in_quote = _in_quote(analysis.quotes, trig.start)
        if spec.pos == "noun" and code[:2] in verb_roots:
            continue  # "arrived ... for a three-day visit": the noun restates the verb's event
        if spec.kind == "supersede" and not (analysis.cues["treaty_noun"] or treaty_before):
            continue  # "replaced by a new one" concludes a treaty only when one is named
        if frame[0] <= trig.start < frame[1] and spec.kind not in ("supply", "deploy"):
            continue  # inside "since/after X" framing an ongoing process: context, not news
        # Modality and negation.
        negated = _negated(trig, analysis, lang, text)
        if negated and code != "0312":
            continue
        future = _is_future(trig, analysis, lang, text, cue_tok)
        material = spec.kind in ("supply", "deploy", "meeting") or code.startswith(
            ("06", "07", "15")
        )
        if material and criticism_end >= 0 and trig.start >= criticism_end and not in_quote:
            continue  # the object of a criticism or accusation, not a separate event
        if spec.kind != "intent" and future:
            if (
                speaker is not None
                and not _is_channel(speaker, gaz)
                and not code.startswith(("01", "02", "10", "11", "12", "13"))
            ):
                code = "010"  # an actor announces a plan or expectation: a statement
            else:
                continue
        expr = assigned.get(id(trig))
        explicit = expr is not None
        resolved: ResolvedDate | None = None
        process = spec.kind in ("supply", "deploy") and code == spec.code
        if process and process_start is not None:
            # An ongoing process dated by its start ("since summer 2022"): year precision.
            resolved = process_start[1]
            explicit = True
        elif (
            process
            and not explicit
            and (_ongoing(trig, analysis, lang) or _embedded(trig, analysis))
        ):
            continue  # an ongoing state or a restated claim, not a dated development
        elif (
            not explicit
            and not in_quote
            and not reported
            and not sentence.is_title
            and code.startswith(_stative_codes())
            and _ongoing(trig, analysis, lang)
        ):
            continue  # present tense in narration: a standing position, not a development
        if _describes_thing(trig, analysis, actors) and _ongoing(trig, analysis, lang):
            continue  # "an agreement which promises aid": what a thing says, not an event
        if expr is not None and resolved is None:
            resolved = _resolve(expr, anchor, not future, state.context_date)
        if (
            resolved is None
            and confirm_end >= 0
            and trig.start > confirm_end
            and spec.kind != "confirm"
        ):
            continue  # restated inside a confirmation without a date of its own
        if resolved is None and assigned and spec.pos == "verb" and not future:
            # Another verb of the sentence carries its date: the sentence tells one moment.
            shared = next(iter(assigned.values()))
            resolved = _resolve(shared, anchor, True, state.context_date)
        if resolved is None:
            if spec.pos == "noun":
                continue  # a noun naming an event needs a date of its own
            if confirm_end >= 0 and trig.start > confirm_end and spec.kind != "confirm":
                continue  # restated in a confirmation without its own date
            resolved = _fallback_date(
                report_exprs, anchor, state, pronoun_start, new_paragraph, future
            )
        if resolved is None:
            continue
        if spec.kind == "supply" and code.startswith("06") and _framed_as_aid(trig, analysis):
            code = "072"  # arms given as help (asked for, or to help a side): military aid
        if month_only and resolved.precision == "day" and resolved.source not in kept_days:
            resolved = ResolvedDate(resolved.date[:7], "month", resolved.source + ":month_anchor")
        elif (
            year_only
            and resolved.source not in kept_days
            and (resolved.precision == "day" or resolved.source == "relative_month")
        ):
            resolved = ResolvedDate(resolved.date[:4], "year", resolved.source + ":year_anchor")
        if explicit and resolved.source not in ("published_fallback",):
            sentence_dates.append(resolved)
        event_day = resolved.first_day()
        actor_list = _actors_for_event(
            actors, state, pronoun_start or code == "057", lang, new_paragraph, text
        )
        if not actor_list:
            continue
        if (
            code[:2] in ("10", "12")
            and analysis.cues["sanctions_noun"]
            and not any(a.country in INTERNATIONAL_BODIES for a in actor_list)
        ):
            # A demand about a sanctions regime addresses the body that imposed it.
            actor_list = (
                actor_list
                + [
                    _relocated(a)
                    for a in state.previous_actors
                    if a.country in INTERNATIONAL_BODIES
                ][:1]
            )
        event_actors = [_recode(a, event_day, gaz) for a in actor_list]
        src, tgt, involved = _assign_roles(
            trig,
            spec,
            code,
            event_actors,
            speaker if (in_quote or speaker is not None) else None,
            places,
            analysis,
            lang,
        )
        if src is None or tgt is None:
            if src is None and spec.kind == "criticism" and not in_quote:
                state.unnamed_criticism = _UnnamedCriticism(code, trig, event_actors)
            continue
        if spec.kind == "force" and (tgt.start < trig.end or src.start < 0):
            continue  # a use of force needs both sides named in the sentence
        if not _relevant(spec, code, src, tgt, involved):
            continue
        background = _is_background(resolved, anchor, analysis, trig)
        entities = sorted(
            {gaz.actors[a.entity].name if a.entity in gaz.actors else a.entity for a in involved}
        )
        score = (
            (2.0 if explicit else 0.0)
            + len({a.country for a in involved})
            + (-1.0 if sentence.is_title else 0.0)
            + (0.5 if spec.pos == "verb" else 0.0)
        )
        candidates.append(
            _Candidate(
                sentence,
                trig,
                code,
                src,
                tgt,
                _ordered_codes(src, tgt, involved),
                resolved,
                background,
                places,
                entities,
                explicit,
                score,
                code.startswith("05")
                and any(
                    t.spec.kind == "meeting"
                    and t.spec.pos == "noun"
                    and 0 <= t.token_start - trig.token_end <= 5
                    for t in triggers
                ),
            )
        )
    if unnamed is not None and not candidates:
        elaborated = _elaboration(sentence, analysis, lang, anchor, speaker, places, gaz, state,
                                  unnamed)
        if elaborated is not None:
            candidates.append(elaborated)
    # Narrative state for the next sentence.
    if sentence_dates:
        state.context_date = max(sentence_dates, key=lambda d: (d.precision == "day", d.date))
    elif new_paragraph:
        state.context_date = None
    if actors:
        state.previous_actors = actors
    if speaker is not None:
        state.previous_speaker = speaker
    state.previous_paragraph = sentence.paragraph
    return candidates


def _elaboration(
    sentence: Sentence,
    analysis: _SentenceAnalysis,
    lang: str,
    anchor: date | None,
    speaker: ActorMention | None,
    places: list[PlaceEntry],
    gaz: Gazetteer,
    state: _ArticleState,
    unnamed: _UnnamedCriticism,
) -> _Candidate | None:
    """"Western officials warned ... In particular, Stoltenberg said on 17 June that ...": a
    sentence opening with an elaboration cue, right after a criticism whose critics are unnamed,
    names one of them — its speaker makes that criticism, on its own date, about the sides the
    criticism concerned."""
    if (
        speaker is None
        or speaker.start < 0
        or not any(ts <= 1 for _, _, ts, _ in analysis.cues["elaboration"])
    ):
        return None
    resolved = _first_resolved(find_date_expressions(sentence.text, lang), anchor,
                               state.context_date)
    explicit = resolved is not None
    if resolved is None:
        resolved = _fallback_date((), anchor, state, True, False, False)
    if resolved is None:
        return None
    source = _recode(speaker, resolved.first_day(), gaz)
    others = [_relocated(a) for a in unnamed.actors if a.country != source.country]
    named = [a for a in others if not a.is_adjective]
    if not others:
        return None
    target = (named or others)[0]
    involved = [source, *others]
    spec = unnamed.trigger.spec
    if not _relevant(spec, unnamed.code, source, target, involved):
        return None
    entities = sorted(
        {gaz.actors[a.entity].name if a.entity in gaz.actors else a.entity for a in involved}
    )
    return _Candidate(
        sentence,
        unnamed.trigger,
        unnamed.code,
        source,
        target,
        _ordered_codes(source, target, involved),
        resolved,
        _is_background(resolved, anchor, analysis, unnamed.trigger),
        places,
        entities,
        explicit,
        (2.0 if explicit else 0.0) + len({a.country for a in involved}),
    )


_SINCE_RE = re.compile(
    r"(?:\bsince|\bdepuis|\bseit|\bс|\bот|\bз|\bіз|\bdesde|\bod)\s*$", re.IGNORECASE
)
_DATELINE_RE = re.compile(r"\s*(?:\(|/|--|—|–|\.\s*/|\.\s*\()")
_ONGOING_EN_RE = re.compile(r"\b(?:is|are|has been|have been)\s+(?:\w+\s+)?$", re.IGNORECASE)


def _ongoing(trig: TriggerMatch, analysis: _SentenceAnalysis, lang: str) -> bool:
    """Present-tense, ongoing supply or deployment ("is supplying", "поставляет")."""
    if lang == "en":
        toks = analysis.tokens
        word = analysis.lowered[trig.token_start]
        if word.endswith("ing"):
            before = (
                " ".join(analysis.lowered[max(0, trig.token_start - 2) : trig.token_start]) + " "
            )
            return bool(_ONGOING_EN_RE.search(before)) or trig.token_start == 0 or not toks
        return word.endswith("ies") or (word.endswith("s") and not word.endswith("ss"))
    if lang in ("ru", "uk"):
        tag = morph_tag(analysis.tokens[trig.token_start].text, lang)
        return "pres" in tag
    lex = _lexicon(lang)
    if lex.present_suffixes:
        word = analysis.lowered[trig.token_start]
        if word.endswith(lex.past_exceptions):
            return False
        return word.endswith(lex.present_suffixes)
    return False


def _describes_thing(
    trig: TriggerMatch, analysis: _SentenceAnalysis, actors: Sequence[ActorMention]
) -> bool:
    """The trigger opens a relative clause whose antecedent is not an actor."""
    for _cs, _ce, ts, te in analysis.cues["relative_pronoun"]:
        if not (trig.token_start - 2 <= te - 1 < trig.token_start):
            continue
        if ts == 0:
            return False
        antecedent = analysis.tokens[ts - 1].start
        return not any(a.start <= antecedent < a.end for a in actors)
    return False


def _is_channel(actor: ActorMention, gaz: Gazetteer) -> bool:
    entry = gaz.actors.get(actor.entity)
    return entry is not None and entry.channel


def _process_start(
    triggers: Sequence[TriggerMatch],
    analysis: _SentenceAnalysis,
    expressions: Sequence[DateExpression],
    anchor: date | None,
    state: _ArticleState,
) -> tuple[tuple[int, int], ResolvedDate] | None:
    """Where a "since/after X" frame of a supply or deployment starts, and the year it names.

    "North Korea has supplied shells since summer 2022" and "КНДР поставляет вооружения после
    того, как ... летом 2022 года" date the ongoing process by its start, at year precision.
    """
    process = [t for t in triggers if t.spec.kind in ("supply", "deploy")]
    if not process:
        return None
    text = analysis.text
    for expr in expressions:
        # "since 2023", "с лета 2023 года", "seit 2023": a start glued to its preposition.
        if _SINCE_RE.search(text[max(0, expr.start - 12) : expr.start]):
            resolved = resolve_expression(expr, anchor, True, True, state.context_date)
            if resolved is not None:
                return (-1, -1), ResolvedDate(resolved.date[:4], "year", "process_start")
    for cs, ce, _ts, _te in analysis.cues["since_frame"]:
        before = [t for t in process if t.start < cs]
        after = [t for t in process if t.start >= ce]
        if not before and not after:
            continue
        # The frame runs to the end of the sentence, or up to the process it precedes.
        frame_end = len(analysis.text) if before else min(t.start for t in after)
        for expr in expressions:
            if ce <= expr.start < frame_end and expr.start - ce <= 120:
                resolved = resolve_expression(expr, anchor, True, True, state.context_date)
                if resolved is None:
                    continue
                return (cs, frame_end), ResolvedDate(resolved.date[:4], "year", "process_start")
    return None


#: How many words from a supply trigger a help word frames it as aid.
AID_REACH = 12


def _framed_as_aid(trig: TriggerMatch, analysis: _SentenceAnalysis) -> bool:
    """A supply the sentence frames as help: near a help word ("after Putin asked Pyongyang
    for help", "to help Russia's war effort") that is not what the supplier gets in exchange
    ("in exchange for economic help")."""
    exchange_ends = [te for _, _, _, te in analysis.cues["exchange_frame"]]
    for _cs, _ce, ts, _te in analysis.cues["aid_frame"]:
        near = (
            0 <= ts - trig.token_end <= AID_REACH or 0 <= trig.token_start - ts <= AID_REACH
        )
        if near and not any(0 <= ts - end <= 3 for end in exchange_ends):
            return True
    return False


def _embedded(trig: TriggerMatch, analysis: _SentenceAnalysis) -> bool:
    """The trigger sits in the content clause of a statement ("X stated that ...")."""
    speech_before = [e for s, e, _, _ in analysis.cues["speech"] if e <= trig.start]
    if not speech_before:
        return False
    last = max(speech_before)
    return any(last <= s < trig.start for s, _, _, _ in analysis.cues["complementizer"])


def _assign_dates(
    triggers: Sequence[TriggerMatch], exprs: Sequence[DateExpression], verb_final: bool = False
) -> dict[int, DateExpression]:
    """Each date expression dates the nearest trigger (verbs win ties); one trigger, one date.

    In verb-final languages (Korean, Japanese) a date precedes the verb of its clause.
    """
    out: dict[int, DateExpression] = {}
    if not triggers:
        return out
    for expr in exprs:

        def distance(t: TriggerMatch, x: DateExpression = expr) -> tuple[int, int]:
            if x.end <= t.start:
                gap = t.start - x.end + (0 if verb_final else 10)  # adjuncts follow verbs
            elif t.end <= x.start:
                gap = 10_000 if verb_final else x.start - t.end
            else:
                gap = 0
            if t.spec.pos == "noun":
                gap = gap + 25 if gap <= NOUN_DATE_REACH else 10_000
            return (gap, 0 if t.spec.pos == "verb" else 1)

        best = min(triggers, key=distance)
        if distance(best, expr)[0] >= 10_000:
            continue
        current = out.get(id(best))
        if current is None or distance(best, expr) < distance(best, current):
            out[id(best)] = expr
    return out


def _resolve(
    expr: DateExpression, anchor: date | None, tense_past: bool, context: ResolvedDate | None
) -> ResolvedDate | None:
    """An expression resolved against publication; without a publication date, a floating
    (partial) date when the text gives one (see :func:`streams.dates.partial_date`)."""
    resolved = resolve_expression(expr, anchor, True, tense_past, context)
    if resolved is None and anchor is None:
        resolved = partial_date(expr, context)
    return resolved


def _first_resolved(
    exprs: Iterable[DateExpression], anchor: date | None, context: ResolvedDate | None
) -> ResolvedDate | None:
    """The first of ``exprs`` that resolves to a past date (the one a report's date or an
    elaboration's own date is taken from)."""
    for expr in exprs:
        resolved = _resolve(expr, anchor, True, context)
        if resolved is not None:
            return resolved
    return None


def _fallback_date(
    report_exprs: Sequence[DateExpression],
    anchor: date | None,
    state: _ArticleState,
    pronoun_start: bool,
    new_paragraph: bool,
    future: bool,
) -> ResolvedDate | None:
    resolved = _first_resolved(report_exprs, anchor, state.context_date)
    if resolved is not None:
        return ResolvedDate(resolved.date, resolved.precision, "report_date", resolved.partial)
    if pronoun_start and not new_paragraph and state.context_date is not None:
        ctx = state.context_date
        return ResolvedDate(ctx.date, ctx.precision, "narrative", ctx.partial)
    if anchor is None and not future:
        resolved = _first_resolved(state.report_exprs, None, None)
        if resolved is not None:
            return ResolvedDate(resolved.date, resolved.precision, "report_date:attribution",
                                resolved.partial)
    if anchor is None:
        return None
    return ResolvedDate(anchor.isoformat(), "day", "published")


def _negated(trig: TriggerMatch, analysis: _SentenceAnalysis, lang: str, text: str) -> bool:
    spans = analysis.cues["negation"]
    if lang in SUBSTRING_LANGS:
        return any(trig.end <= s <= trig.end + 12 for s, _, _, _ in spans)
    return any(
        trig.token_start - NEGATION_WINDOW <= te - 1 < trig.token_start for _, _, _, te in spans
    ) or any(trig.token_start <= ts < trig.token_end for _, _, ts, _ in spans)


def _is_future(
    trig: TriggerMatch,
    analysis: _SentenceAnalysis,
    lang: str,
    text: str,
    cue_tok: dict[str, set[int]],
) -> bool:
    if lang in SUBSTRING_LANGS:
        return any(
            trig.start - 2 <= s <= trig.end + 14
            for name in ("future", "modal")
            for s, _, _, _ in analysis.cues[name]
        )
    window = range(max(0, trig.token_start - MODALITY_WINDOW), trig.token_start)
    # A modal cue counts only within its own clause: stop at a comma or a quote boundary.
    clause_start = _after_last_of(text, trig.start, ',;:—–«“"(')
    inchoative = cue_tok.get("inchoative", set())
    for name in ("future", "modal"):
        for cs, _, ts, te in analysis.cues[name]:
            if te - 1 in window and cs >= clause_start:
                if ts - 1 in inchoative or ts - 2 in inchoative:
                    continue  # "began to supply": a fact
                return True
    if lang in ("ru", "uk"):
        tag = morph_tag(analysis.tokens[trig.token_start].text, lang)
        if "INFN" in tag and not _preceded_by(inchoative, trig.token_start, 2):
            return True
        if "futr" in tag:
            return True
    return False


def _find_speaker(
    text: str, analysis: _SentenceAnalysis, actors: Sequence[ActorMention], state: _ArticleState
) -> ActorMention | None:
    """The actor a sentence attributes speech to, if any (outside quotes, next to the verb)."""
    speech = analysis.cues["speech"]
    if not speech:
        return None
    outside = [
        a
        for a in actors
        if not _in_quote(analysis.quotes, a.start) and not a.is_adjective and not a.locative
    ]
    best: tuple[int, ActorMention] | None = None
    complementizers = [cs for cs, _, _, _ in analysis.cues["complementizer"]]
    pronoun_tokens = {t for _, _, ts, te in analysis.cues["pronoun"] for t in range(ts, te)}
    for s, e, ts, te in speech:
        if _in_quote(analysis.quotes, s):
            continue
        if ts - 1 in pronoun_tokens or te in pronoun_tokens:
            # "what he said", "сказал он": the speaker is the subject named before, not the
            # nearest name.
            subject = next((a for a in outside if a.end <= s), None)
            if subject is not None:
                return subject
            continue
        for a in outside:
            if a.end <= s:
                gap = s - a.end
            else:
                gap = a.start - e
                # "said that North Korea ..." names the content, not the speaker
                if gap > 30 or any(e <= c < a.start for c in complementizers):
                    continue
            if gap < 0 or gap > 60:
                continue
            if best is None or gap < best[0]:
                best = (gap, a)
    if best is not None:
        return best[1]
    pronoun = analysis.cues["pronoun"]
    if pronoun and state.previous_speaker is not None:
        return state.previous_speaker
    if pronoun and state.previous_actors:
        return next((a for a in state.previous_actors if not a.is_adjective), None)
    return None


def _actors_for_event(
    actors: list[ActorMention],
    state: _ArticleState,
    pronoun_start: bool,
    lang: str,
    new_paragraph: bool,
    text: str,
) -> list[ActorMention]:
    """Sentence actors, completed from the previous sentence when the subject continues."""
    countries = {a.country for a in actors}
    if countries >= DYAD:
        return actors
    inherit = pronoun_start or not actors or (lang in SUBSTRING_LANGS and not new_paragraph)
    if inherit and state.previous_actors:
        extra = [
            a for a in state.previous_actors if a.country not in countries and not a.is_adjective
        ]
        extra += [a for a in state.previous_actors if a.country not in countries and a.is_adjective]
        return [*actors, *(_relocated(a) for a in extra)]
    return actors


def _relocated(actor: ActorMention) -> ActorMention:
    """An actor carried over from the previous sentence sits before this sentence's text."""
    return ActorMention(-1, -1, actor.code, actor.country, actor.entity, -1, actor.is_adjective)


def _recode(actor: ActorMention, when: date, gaz: Gazetteer) -> ActorMention:
    entry = gaz.actors.get(actor.entity)
    if entry is None or entry.kind != "person" or len(entry.roles) == 1 or actor.titled:
        return actor
    code = entry.code_at(when)
    return ActorMention(
        actor.start,
        actor.end,
        code,
        actor.country,
        actor.entity,
        actor.token_start,
        actor.is_adjective,
    )


def _assign_roles(
    trig: TriggerMatch,
    spec: TriggerSpec,
    code: str,
    actors: Sequence[ActorMention],
    speaker: ActorMention | None,
    places: Sequence[PlaceEntry],
    analysis: _SentenceAnalysis,
    lang: str,
) -> tuple[ActorMention | None, ActorMention | None, list[ActorMention]]:
    in_quote = _in_quote(analysis.quotes, trig.start)
    involved = list(actors)
    # "We/our" inside a quote is the speaker's side.
    if in_quote and speaker is not None and analysis.cues["first_person"]:
        involved.append(speaker)
    statement_like = spec.kind in (
        "statement",
        "criticism",
        "confirm",
        "intent",
    ) or code.startswith("01")
    source: ActorMention | None = None
    if speaker is not None and statement_like and (in_quote or _after_speech(trig, analysis)):
        source = speaker
    if source is None:
        # Prefer a named actor before the trigger (the subject), else the first actor; in a
        # content clause ("X said that Y did") the subject follows the complementizer.
        clause_start = max(
            (s for s, _, _, _ in analysis.cues["complementizer"] if s < trig.start), default=-10
        )
        comma = _after_last_of(analysis_text(analysis), trig.start, ",;")
        before = (
            [a for a in involved if clause_start < a.start < trig.start and a.start >= comma]
            or [a for a in involved if clause_start < a.start < trig.start]
            or [a for a in involved if a.start < trig.start]
        )
        if statement_like and before:
            # A speech act's subject is neither the owner of a thing nor a place ("in response
            # to Putin's visit to the DPRK, officials warned"): when only such actors precede,
            # the speaker is unnamed.
            before = [a for a in before if not a.locative and not _possessor(a, analysis, lang)]
            if not before:
                return None, None, involved
        named_before = [a for a in before if not a.is_adjective]
        pool = named_before or before or [a for a in involved if not a.is_adjective] or involved
        source = pool[0] if pool else None
        if source is not None and before and source.is_adjective:
            # A country adjective right before a person names that person's country.
            source = before[0]
    if spec.kind == "deploy" and (source is None or source.country not in DYAD):
        # The deploying side is the one whose forces are named ("a contingent of North Korean
        # servicemen"), not the one reporting them.
        forces = [a for a in involved if a.code.endswith("MIL") and a.country in DYAD]
        if forces:
            source = forces[0]
    if source is None:
        return None, None, involved
    others = [a for a in involved if a.country != source.country]
    cooperative = code[:2] in ("03", "04", "05", "06", "07", "08", "15")
    igo = [a for a in others if a.country in INTERNATIONAL_BODIES]
    if code[:2] in ("10", "12") and igo:
        return source, igo[0], involved  # a demand or veto addressed to an international body
    if source.country in DYAD and cooperative:
        # In this domain the counterpart of one side is, first of all, the other side.
        counterpart = next(iter(DYAD - {source.country}))
        others = sorted(others, key=lambda a: a.country != counterpart)
    after = [a for a in others if a.start >= trig.end]
    named_after = [a for a in after if not a.is_adjective]
    if source.country in DYAD and cooperative and others and others[0].country in DYAD:
        others = [a for a in others if a.country in DYAD]
        named_after = [a for a in named_after if a.country in DYAD]
        after = [a for a in after if a.country in DYAD]
    pool_target = named_after or after or [a for a in others if not a.is_adjective] or others
    target: ActorMention | None = pool_target[0] if pool_target else None
    if (target is None and spec.code == "042") or (
        spec.kind == "deploy"
        and source.country in DYAD
        and (target is None or target.country not in DYAD)
    ):
        # The other side may be the destination: "Shoigu arrived in Pyongyang".
        for place in places:
            if place.country != source.country and (target is None or place.country in DYAD):
                target = ActorMention(-1, -1, place.country, place.country, place.id, -1)
                involved.append(target)
                break
    return _in_apposition(source, involved), _in_apposition(target, involved), involved


#: How many words a role noun may stand from a country or person it qualifies.
ROLE_REACH = 3


def _possessor(actor: ActorMention, analysis: _SentenceAnalysis, lang: str) -> bool:
    """The actor owns a thing named next to it ("Putin's visit", "визит Путина") rather than
    acting: a genitive after a noun (ru/uk) or a possessive "'s" (en) — unless a role noun is
    next to it ("Russia's defence minister", "министр обороны России"): then it names the role
    holder's side. Other languages: not decided (False)."""
    if actor.start < 0 or actor.is_adjective:
        return False
    text = analysis.text
    roles = [
        (cs, ce, ts)
        for name in ("government_noun", "military_noun")
        for cs, ce, ts, _te in analysis.cues[name]
    ]
    if lang in ("ru", "uk"):
        toks = analysis.tokens
        inside = [i for i, t in enumerate(toks) if actor.start <= t.start < actor.end]
        if not inside or inside[0] == 0:
            return False
        first = inside[0]
        if "gent" not in morph_tag(toks[inside[-1]].text, lang):
            return False
        if any(first - ROLE_REACH <= ts < first for _cs, _ce, ts in roles):
            return False
        return morph_tag(toks[first - 1].text, lang).startswith("NOUN")
    if lang == "en":
        if text[actor.end : actor.end + 2] not in ("'s", "’s"):
            return False
        after = {t.start for t in analysis.tokens if t.start > actor.end + 2}
        after = set(sorted(after)[:ROLE_REACH])
        return not any(cs in after for cs, _ce, _ts in roles)
    return False


#: Characters between a bare country and the named actor it qualifies ("Russia's defence
#: minister Belousov", "président russe Vladimir Poutine", "Міністр оборони Росії Білоусов").
APPOSITION_REACH = 24


def _in_apposition(
    actor: ActorMention | None, involved: Sequence[ActorMention]
) -> ActorMention | None:
    """A bare country code followed closely by a more specific actor of that country (a
    person, a body) stands for that actor: the more specific code wins."""
    if actor is None or len(actor.code) != 3 or actor.start < 0:
        return actor
    for other in involved:
        if (
            other.country == actor.country
            and len(other.code) > 3
            and not other.is_adjective
            and 0 <= other.start - actor.end <= APPOSITION_REACH
        ):
            return other
    return actor


def _after_speech(trig: TriggerMatch, analysis: _SentenceAnalysis) -> bool:
    """The trigger stands in the content of a statement ("X said that ..." / "..., X said")."""
    return any(abs(trig.start - s) < 200 for s, _, _, _ in analysis.cues["speech"])


def _relevant(
    spec: TriggerSpec,
    code: str,
    src: ActorMention,
    tgt: ActorMention,
    involved: Sequence[ActorMention],
) -> bool:
    countries = {a.country for a in involved} | {src.country, tgt.country}
    if not countries >= DYAD:
        return False
    pair = {src.country, tgt.country}
    if spec.kind in ("meeting", "force") and code[:2] in ("04", "17", "18", "19", "20"):
        return pair == DYAD
    if pair == DYAD:
        return True
    if src.country in DYAD:
        # Russia or the DPRK acting on an international body about the other (a veto).
        return tgt.country in INTERNATIONAL_BODIES
    if code[:2] in _COOPERATIVE_ROOTS:
        # A third party cooperating with one side (Putin-Xi talks, invitations to China and
        # Russia) is off-dyad; third parties act on the relationship by statements,
        # criticism, demands, sanctions.
        return False
    # A third party acting on one side of the dyad, with the other side involved.
    return tgt.country in DYAD


_COOPERATIVE_ROOTS = frozenset({"03", "04", "05", "06", "07", "08"})


def _ordered_codes(
    src: ActorMention, tgt: ActorMention, involved: Sequence[ActorMention]
) -> list[str]:
    codes = [src.code, tgt.code]
    for a in involved:
        if a.code not in codes and (
            a.country in DYAD
            or a.country in INTERNATIONAL_BODIES
            or a.country in (src.country, tgt.country)
        ):
            codes.append(a.code)
    # A bare country code is redundant next to a more specific code of that country.
    specific = {c[:3] for c in codes if len(c) > 3}
    return [
        c for c in codes if not (len(c) == 3 and c in specific and c not in (src.code, tgt.code))
    ]


def _is_background(
    resolved: ResolvedDate, anchor: date | None, analysis: _SentenceAnalysis, trig: TriggerMatch
) -> bool:
    if (
        anchor is not None
        and anchor.year >= FLOATING_YEAR - 1
        and (resolved.partial is None or resolved.precision != "day")
    ):
        return bool(analysis.cues["background"])
    if anchor is not None:
        if resolved.precision == "year":
            if int(resolved.date) < anchor.year:
                return True
        elif (anchor - resolved.first_day()).days > BACKGROUND_AFTER_DAYS + (
            31 if resolved.precision == "month" else 0
        ):
            return True
    return bool(analysis.cues["background"])


def _dedupe(candidates: Iterable[_Candidate]) -> list[_Candidate]:
    """One mention per (code, date, countries) in an article; the title only adds news."""
    best: dict[tuple[str, str, frozenset[str]], _Candidate] = {}
    for cand in candidates:
        key = (cand.code, cand.date.date, frozenset({cand.source.country, cand.target.country}))
        current = best.get(key)
        if current is None or cand.score > current.score:
            best[key] = cand
    chosen = list(best.values())
    dated = [c for c in chosen if c.explicit_date and c.date.precision == "day"]

    def restated(c: _Candidate) -> bool:
        if c.explicit_date or c.date.precision != "day":
            return False
        day = c.date.first_day()
        return any(
            d.code == c.code
            and (d.source.country, d.target.country) == (c.source.country, c.target.country)
            and 0 < (day - d.date.first_day()).days <= 7
            for d in dated
        )

    chosen = [c for c in chosen if not restated(c)]
    chosen = _consolidate(chosen)
    body = [c for c in chosen if not c.sentence.is_title]
    out = list(body)
    for cand in chosen:
        if cand.sentence.is_title:
            countries = frozenset(c[:3] for c in cand.actors)
            if not any(
                b.code[:2] == cand.code[:2] and frozenset(c[:3] for c in b.actors) == countries
                for b in body
            ):
                out.append(cand)
    # A coarser date restating a finer one of the same event adds nothing.
    final: list[_Candidate] = []
    for cand in out:
        countries = frozenset(c[:3] for c in cand.actors)
        finer = [
            o
            for o in out
            if o is not cand
            and o.code == cand.code
            and frozenset(c[:3] for c in o.actors) == countries
            and len(o.date.date) > len(cand.date.date)
            and o.date.date.startswith(cand.date.date)
        ]
        if not finer:
            final.append(cand)
    final.sort(key=lambda c: (c.sentence.index, c.trigger.start))
    return final


def _pair(c: _Candidate) -> frozenset[str]:
    return frozenset({c.source.country, c.target.country})


def _consolidate(chosen: list[_Candidate]) -> list[_Candidate]:
    """Same-event consolidation within one article.

    * A supply or deployment is one ongoing process per pair of countries: undated restatements
      ("was sent", "began to supply in return") fold into the dated report of it.
    * A generic meeting (040) on the day of a specific one (visit, reception, talks) between the
      same sides is that meeting; an undated greeting or reception (043/040) within a day of an
      arrival (042) is the reception on arrival.
    * Praise of a visit or talks ("hailed the visit as very important") evaluates the meeting
      the article reports that day: it is part of it, not a separate event.
    """

    def days_apart(a: _Candidate, b: _Candidate) -> int:
        return abs((a.date.first_day() - b.date.first_day()).days)

    def same_day(a: _Candidate, b: _Candidate) -> bool:
        return a.date.precision == b.date.precision == "day" and days_apart(a, b) == 0

    out: list[_Candidate] = []
    for cand in chosen:
        pair = _pair(cand)
        others = [o for o in chosen if o is not cand and _pair(o) == pair]
        process = cand.trigger.spec.kind in ("supply", "deploy")
        if (
            process
            and not cand.explicit_date
            and any(
                o.trigger.spec.kind == cand.trigger.spec.kind
                and (o.explicit_date or o.sentence.index < cand.sentence.index)
                for o in others
            )
        ):
            continue
        if cand.code == "040" and any(
            o.code[:2] == "04" and o.code != "040" and same_day(o, cand) for o in others
        ):
            continue
        if (
            cand.code in ("040", "043")
            and not cand.explicit_date
            and any(
                o.code == "042"
                and o.date.precision == "day"
                and cand.date.precision == "day"
                # an undated reception falls back to the report date: it follows the arrival
                and 0 <= (cand.date.first_day() - o.date.first_day()).days <= 3
                for o in others
            )
        ):
            continue
        if (
            cand.code.startswith("05")
            and cand.about_meeting
            and any(o.code[:2] == "04" and o.date.date == cand.date.date for o in others)
        ):
            continue
        out.append(cand)
    return out


def _to_mention(article: CleanArticle, cand: _Candidate, anchor_source: str) -> EventMention:
    code = cand.code
    actors_key = "|".join(sorted(cand.actors))
    partial = cand.date.partial
    when = partial or cand.date.date
    mention_id = hashlib.sha1(
        f"{article.id}|{code}|{actors_key}|{when}".encode()
    ).hexdigest()[:20]
    places = [
        Place(name=p.name, lat=p.lat, lon=p.lon, country=p.country)
        for p in dict.fromkeys(cand.places)
    ]
    source = cand.date.source if cand.date.source != "published" else f"published:{anchor_source}"
    return EventMention(
        mention_id=mention_id,
        article_id=article.id,
        wire_id=article.duplicate_of or article.id,
        url=article.url,
        outlet=article.outlet,
        lang=article.lang,
        quote=cand.sentence.text,
        sentence_index=max(cand.sentence.index, 0),
        cameo_code=code,
        cameo_root=code[:2],
        source_actor=cand.source.code,
        target_actor=cand.target.code,
        actors=cand.actors,
        date=when,
        date_precision=cand.date.precision,
        date_source=source,
        date_anchor=partial,
        background=cand.background,
        places=places,
        entities=cand.entities,
        published=article.published,
        ingested_at=article.ingested_at,
        extractor_version=EXTRACTOR_VERSION,
    )


def published_anchor(article: CleanArticle) -> date | None:
    """The day an article's relative dates count from (public for the timeline stage)."""
    return _publication_anchor(article, (article.lang or "en").lower())[0]


__all__ = [
    "EXTRACTOR_VERSION",
    "ActorMention",
    "Sentence",
    "TriggerMatch",
    "TriggerSpec",
    "extract_events",
    "match_triggers",
    "published_anchor",
    "recognize_actors",
    "split_sentences",
]
