"""Extraction on synthetic sentences, plus floors on the shared corpora (read at run time)."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from datetime import datetime
from pathlib import Path

import pytest

from schemas.models import CleanArticle, EventMention, MentionEvidence, TimelineEntry
from streams.evaluate import EvalReport, load_gold, score
from streams.extract import EXTRACTOR_VERSION, extract_events, match_triggers, split_sentences

# ---------------------------------------------------------------- corpora (read at run time)

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
SEEDS = SHARED / "seeds"
DEV = SHARED / "corpus" / "dev"


def require(corpus: Path) -> Path:
    if not (corpus / "articles.jsonl").exists() or not (corpus / "gold_events.jsonl").exists():
        pytest.skip(f"corpus not available at {corpus}")
    return corpus


def _parse_published(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def load_articles(corpus: Path) -> list[CleanArticle]:
    """Corpus lines as clean articles (metadata date only; the extractor reads the text)."""
    out = []
    for line in (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        text = re.sub(r"^\s*date \S+\s*", "", d["text"])
        published = _parse_published(d.get("published"))
        out.append(
            CleanArticle(
                id=d["id"],
                url=d.get("url"),
                outlet=d.get("outlet"),
                lang=d["lang"],
                title=d.get("title"),
                text=text,
                published=published,
                published_source="metadata" if published else "ingest",
                content_hash=hashlib.sha1(text.encode()).hexdigest(),
                ingested_at=0.0,
            )
        )
    return out


def to_entry(m: EventMention) -> TimelineEntry:
    evidence = MentionEvidence(
        mention_id=m.mention_id,
        article_id=m.article_id,
        wire_id=m.wire_id,
        lang=m.lang,
        quote=m.quote,
        date=m.date,
        date_precision=m.date_precision,
    )
    return TimelineEntry(
        id=m.mention_id,
        date=m.date,
        date_precision=m.date_precision,
        cameo_code=m.cameo_code,
        cameo_root=m.cameo_root,
        actors=m.actors,
        source_actor=m.source_actor,
        target_actor=m.target_actor,
        summary=m.quote[:80],
        significance=0.5,
        mentions=[evidence],
        mention_count=1,
        independent_source_count=1,
        confidence=0.5,
        first_seen=0.0,
        updated=0.0,
        extractor_version=m.extractor_version,
    )


def naive_merge(mentions: list[EventMention]) -> list[TimelineEntry]:
    """A stand-in for the timeline stage: same code, same sides, compatible dates."""
    groups: list[list[EventMention]] = []
    for m in sorted(mentions, key=lambda m: -len(m.date)):
        countries = frozenset(a[:3] for a in m.actors)
        for g in groups:
            head = g[0]
            if (
                head.cameo_code == m.cameo_code
                and head.source_actor[:3] == m.source_actor[:3]
                and frozenset(a[:3] for a in head.actors) == countries
                and head.date.startswith(m.date)
            ):
                g.append(m)
                break
        else:
            groups.append([m])
    return [to_entry(g[0]) for g in groups]


THU = datetime(2024, 6, 20, 9, 0)


def article(
    text: str, lang: str = "en", published: datetime | None = THU, **kw: object
) -> CleanArticle:
    return CleanArticle(
        id=str(kw.pop("id", "a1")),
        lang=lang,
        text=text,
        published=published,
        published_source="metadata" if published else "ingest",
        content_hash="x",
        ingested_at=1.0,
        **kw,  # type: ignore[arg-type]
    )


def events(
    text: str, lang: str = "en", published: datetime | None = THU, **kw: object
) -> list[EventMention]:
    return extract_events(article(text, lang, published, **kw))


def test_short_korean_sentences_are_kept() -> None:
    sentences = split_sentences("장관이 도착했다. 회담을 가졌다. 끝.", "ko")
    assert [s.text for s in sentences] == ["장관이 도착했다.", "회담을 가졌다.", "끝."]
    assert len(split_sentences("U.S. officials met. N. Korea agreed.", "en")) == 2


def test_visit_with_weekday_is_dated_before_publication() -> None:
    got = events("Путин прибыл в Пхеньян во вторник.", "ru")
    assert [(m.cameo_code, m.date, m.date_precision) for m in got] == [("042", "2024-06-18", "day")]
    m = got[0]
    assert m.source_actor == "RUSGOV" and m.target_actor == "PRK"
    assert m.places and m.places[0].name == "Pyongyang"
    assert m.extractor_version == EXTRACTOR_VERSION and "+" in EXTRACTOR_VERSION
    assert m.wire_id == "a1"


def test_plans_and_speculation_are_not_facts() -> None:
    assert events("Kim Jong Un plans to visit Russia this month.") == []
    assert events("Kim may meet Putin in Vladivostok.") == []
    assert events("Очаква се Путин и Ким да обсъдят военните връзки.", "bg") == []
    assert events("Путин и Ким не подписали договор.", "ru") == []


def test_speaker_after_the_quote_is_the_source() -> None:
    got = events('"We condemn the DPRK for providing Russia with weapons," Kirby said on Friday.')
    assert [m.cameo_code for m in got] == ["111"]
    assert got[0].source_actor == "USAGOV"
    assert {"PRK", "RUS"} <= {a[:3] for a in got[0].actors}


def test_off_dyad_and_other_subjects_yield_nothing() -> None:
    assert events("Putin met Xi Jinping in Beijing on Tuesday and signed a gas deal.") == []
    assert events("North Korea fired a ballistic missile toward Japan on Tuesday.") == []
    assert events("North Korea's team won the football final on Saturday.") == []


def test_several_events_in_one_sentence_and_dedupe() -> None:
    text = (
        "Following talks in Pyongyang, Putin and Kim Jong Un signed a partnership treaty.\n"
        "Putin and Kim Jong Un signed the treaty, officials said."
    )
    got = events(text)
    codes = [m.cameo_code for m in got]
    assert codes.count("057") == 1  # restated: one mention
    assert "046" not in codes  # "following talks": a frame without a date of its own


def test_background_history_is_flagged() -> None:
    got = events("Северна Корея и Съветският съюз подписаха договор през 1961 г.", "bg")
    assert [(m.cameo_code, m.date, m.background) for m in got] == [("057", "1961", True)]


def test_no_publication_date_and_no_year_in_text_yields_nothing() -> None:
    assert events("Putin arrived in Pyongyang on Tuesday.", published=None) == []
    got = events("Le 13 septembre 2023, Poutine a rencontré Kim Jong-un.", "fr", published=None)
    assert got and got[0].date == "2023-09-13"


def test_mention_ids_are_stable_and_distinct() -> None:
    a = events("Путин прибыл в Пхеньян во вторник.", "ru")
    b = events("Путин прибыл в Пхеньян во вторник.", "ru")
    assert a[0].mention_id == b[0].mention_id
    c = events("Путин прибыл в Пхеньян во вторник.", "ru", id="other")
    assert c[0].mention_id != a[0].mention_id


def test_duplicate_article_shares_the_wire_id() -> None:
    got = events("Lavrov met Choe Son Hui in Moscow on Tuesday.", duplicate_of="first")
    assert got and got[0].wire_id == "first"


def test_trigger_lexicon_covers_all_twenty_roots() -> None:
    from streams.extract import _trigger_data

    roots = {str(t["code"])[:2] for t in _trigger_data()["triggers"]}
    assert roots == {f"{i:02d}" for i in range(1, 21)}
    assert [t.spec.code for t in match_triggers("Россия наложила вето на резолюцию.", "ru")] == [
        "120"
    ]


def _corpus_report(corpus: Path) -> tuple[EvalReport, list[CleanArticle]]:
    arts = load_articles(require(corpus))
    mentions = [m for a in arts for m in extract_events(a)]
    return score(naive_merge(mentions), load_gold(corpus / "gold_events.jsonl")), arts


def test_floor_on_the_seeds() -> None:
    report, _ = _corpus_report(SEEDS)
    assert report.f1 >= 0.45, report.summary()


def test_floor_on_the_dev_corpus() -> None:
    report, _ = _corpus_report(DEV)
    assert report.f1 >= 0.70, report.summary()
    assert report.date_accuracy >= 0.9, report.summary()
    assert report.entries_per_gold <= 1.3, report.summary()


def test_distractors_yield_nothing() -> None:
    path = require(DEV) / "articles.jsonl"
    distractors = {json.loads(line)["id"] for line in path.open() if json.loads(line)["distractor"]}
    for a in load_articles(DEV):
        if a.id in distractors:
            assert extract_events(a) == [], a.id


@pytest.mark.timeout(120)
def test_cost_per_article() -> None:
    arts = load_articles(require(DEV))
    for a in arts:
        extract_events(a)  # warm the caches
    times = []
    for a in arts:
        start = time.perf_counter()
        extract_events(a)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.010
