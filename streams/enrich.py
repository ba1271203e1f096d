"""Enrichment of event mentions: Goldstein intensity, tone, places with coordinates, entities.

Everything comes from data files beside this module (``data/goldstein.yaml``,
``data/tone.yaml``, ``data/places.yaml`` through the gazetteer), loaded once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from schemas.models import EventMention, Place
from streams.datafiles import load_yaml
from streams.gazetteer import SUBSTRING_LANGS, GazetteerMatch, Token, get_gazetteer, tokenize

DATA_DIR = Path(__file__).parent / "data"
GOLDSTEIN_PATH = DATA_DIR / "goldstein.yaml"
TONE_PATH = DATA_DIR / "tone.yaml"


@lru_cache(maxsize=1)
def _goldstein_table() -> dict[str, float]:
    with GOLDSTEIN_PATH.open(encoding="utf-8") as handle:
        raw: dict[Any, Any] = load_yaml(handle)
    return {str(k): float(v) for k, v in raw.items()}


def goldstein(cameo_code: str) -> float:
    """Goldstein intensity of a CAMEO code (its longest listed prefix; 0.0 when unknown)."""
    table = _goldstein_table()
    code = cameo_code.strip()
    while code:
        if code in table:
            return table[code]
        code = code[:-1]
    return 0.0


@dataclass(frozen=True, slots=True)
class _ToneLexicon:
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    positive_exact: frozenset[str]
    negative_exact: frozenset[str]


@lru_cache(maxsize=1)
def _tone_data() -> dict[str, Any]:
    with TONE_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = load_yaml(handle)
    return loaded


@lru_cache(maxsize=32)
def _tone_lexicon(lang: str) -> _ToneLexicon:
    data = _tone_data()
    key = lang if lang in (data.get("positive") or {}) else "en"

    def split(words: list[str]) -> tuple[tuple[str, ...], frozenset[str]]:
        stems = tuple(w.lower() for w in words if not w.endswith("$"))
        exact = frozenset(w[:-1].lower() for w in words if w.endswith("$"))
        return stems, exact

    pos, pos_exact = split(list(data["positive"].get(key) or []))
    neg, neg_exact = split(list(data["negative"].get(key) or []))
    return _ToneLexicon(pos, neg, pos_exact, neg_exact)


def tone(text: str, lang: str, tokens: Sequence[Token] | None = None) -> float:
    """Lexicon tone of a text, -10 (hostile) .. +10 (friendly). ``tokens``: ``tokenize(text)``
    when the caller has it."""
    lex = _tone_lexicon(lang)
    positive = negative = 0
    if lang in SUBSTRING_LANGS:
        positive = sum(text.count(s) for s in lex.positive)
        negative = sum(text.count(s) for s in lex.negative)
    else:
        for tok in tokens if tokens is not None else tokenize(text):
            word = tok.text.lower()
            if word in lex.positive_exact or word.startswith(lex.positive):
                positive += 1
            if word in lex.negative_exact or word.startswith(lex.negative):
                negative += 1
    value = 10.0 * (positive - negative) / (positive + negative + 1)
    return round(max(-10.0, min(10.0, value)), 2)


_SPACE_RE = re.compile(r"\s+")


def places_in(
    text: str, lang: str, matches: Sequence[GazetteerMatch] | None = None
) -> list[Place]:
    """Gazetteer places named in a text, with coordinates (first mention order, unique).
    ``matches``: the gazetteer's matches in ``text`` when the caller has them."""
    gaz = get_gazetteer()
    out: dict[str, Place] = {}
    for match in matches if matches is not None else gaz.match(text, lang):
        if match.target.kind == "place" and match.target.ref not in out:
            entry = gaz.places[match.target.ref]
            out[entry.id] = Place(
                name=entry.name, lat=entry.lat, lon=entry.lon, country=entry.country
            )
    return list(out.values())


def entities_in(
    text: str, lang: str, matches: Sequence[GazetteerMatch] | None = None
) -> list[str]:
    """Names of the gazetteer actors a text mentions (English display names, unique).
    ``matches``: the gazetteer's matches in ``text`` when the caller has them."""
    gaz = get_gazetteer()
    names: list[str] = []
    for match in matches if matches is not None else gaz.match(text, lang):
        if match.target.kind == "actor":
            name = gaz.actors[match.target.ref].name
            if name not in names:
                names.append(name)
    return names


def enrich(mention: EventMention, sentence_context: str | None = None) -> EventMention:
    """The mention with Goldstein intensity, tone, places and entities filled in.

    ``sentence_context`` (e.g. the neighbouring sentences) widens the text used for tone and
    places; the quote alone is used otherwise.  Places and entities already set are kept.
    """
    text = mention.quote if not sentence_context else f"{mention.quote} {sentence_context}"
    text = _SPACE_RE.sub(" ", text)
    lang = mention.lang
    # one tokenization and one gazetteer pass serve tone, places and entities when the text
    # is the quote itself (no context, no runs of spaces)
    same = text == mention.quote and lang not in SUBSTRING_LANGS
    tokens = tokenize(text) if same else None
    matches = get_gazetteer().match(text, lang, tokens) if same else None
    places = list(mention.places) or places_in(text, lang, matches)
    entities = list(mention.entities)
    for name in entities_in(mention.quote, lang, matches):
        if name not in entities:
            entities.append(name)
    return mention.model_copy(
        update={
            "goldstein": goldstein(mention.cameo_code),
            "tone": tone(text, lang, tokens),
            "places": places,
            "entities": entities,
        }
    )
