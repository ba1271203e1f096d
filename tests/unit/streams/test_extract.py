"""Extraction on synthetic sentences, plus floors on the shared corpora (read at run time)."""

from __future__ import annotations

import hashlib
import json
import re
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


def test_no_publication_date_gives_floating_mentions_only() -> None:
    # without a publication date a weekday is kept as a partial date for the timeline to anchor
    (got,) = events("Putin arrived in Pyongyang on Tuesday.", published=None)
    assert (got.date_anchor, got.date, got.date_precision) == ("-W-2", "-W-2", "day")
    (got,) = events("Путин прибыл в Пхеньян 18 июня.", "ru", published=None)
    assert (got.date_anchor, got.date) == ("--06-18", "--06-18")
    (got,) = events("푸틴 대통령이 18일 평양에 도착했다.", "ko", published=None)
    assert got.date_anchor == "---18"
    # an event the text does not date at all cannot be placed
    assert events("Putin arrived in Pyongyang.", published=None) == []
    dated = events("Le 13 septembre 2023, Poutine a rencontré Kim Jong-un.", "fr", published=None)
    assert dated and dated[0].date == "2023-09-13" and dated[0].date_anchor is None


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
    # floating mentions (undated articles) are placed by the timeline's cross-source anchoring
    mentions = [m for a in arts for m in extract_events(a) if m.date_anchor is None]
    return score(naive_merge(mentions), load_gold(corpus / "gold_events.jsonl")), arts


def test_floor_on_the_seeds() -> None:
    report, _ = _corpus_report(SEEDS)
    # 0.759 measured (naive merge; the timeline gives 0.800)
    assert report.f1 >= 0.74, report.summary()


def test_floor_on_the_dev_corpus() -> None:
    report, _ = _corpus_report(DEV)
    assert report.f1 >= 0.82, report.summary()  # 0.835 measured (naive merge)
    assert report.date_accuracy >= 0.9, report.summary()
    assert report.entries_per_gold <= 1.3, report.summary()


def test_distractors_yield_nothing() -> None:
    path = require(DEV) / "articles.jsonl"
    distractors = {json.loads(line)["id"] for line in path.open() if json.loads(line)["distractor"]}
    for a in load_articles(DEV):
        if a.id in distractors:
            assert extract_events(a) == [], a.id


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("lang", "text", "year"),
    [
        (
            "en",
            "North Korea has supplied Russia with artillery shells since the summer of 2022.",
            "2022",
        ),
        ("ru", "Северная Корея поставляет России снаряды с лета 2023 года.", "2023"),
        (
            "bg",
            "Северна Корея доставя снаряди на Русия откакто започна войната през 2022 г.",
            "2022",
        ),
        ("de", "Nordkorea hat Russland seit 2023 Munition geliefert.", "2023"),
        ("fr", "La Corée du Nord a livré des obus à la Russie depuis 2023.", "2023"),
        ("es", "Corea del Norte suministró proyectiles a Rusia desde 2023.", "2023"),
    ],
)
def test_arms_supply_is_062_dated_by_its_start(lang: str, text: str, year: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.date, m.date_precision) for m in got] == [("062", year, "year")]
    assert {m.source_actor[:3] for m in got} == {"PRK"}


@pytest.mark.parametrize(
    ("lang", "text", "year"),
    [
        (
            "ru",
            "КНДР поставляет оружие России после того, как Путин попросил о помощи "
            "весной 2023 года.",
            "2023",
        ),
        (
            "uk",
            "КНДР постачає Росії снаряди після того, як Путін попросив допомоги влітку 2023 року.",
            "2023",
        ),
        ("en", "North Korea has supplied shells to Russia since 2023 to help its war.", "2023"),
        (
            "bg",
            "Северна Корея доставя снаряди на Русия в помощ на армията ѝ, откакто започна "
            "войната през 2022 г.",
            "2022",
        ),
        ("de", "Nordkorea hat Russland seit 2023 Munition geliefert, um ihm zu helfen.", "2023"),
    ],
)
def test_arms_supply_framed_as_help_is_military_aid(lang: str, text: str, year: str) -> None:
    # given after a request for help, or to help a side: CAMEO 072, not the 062 convention
    got = events(text, lang)
    assert [(m.cameo_code, m.date, m.date_precision) for m in got] == [("072", year, "year")]
    assert {m.source_actor[:3] for m in got} == {"PRK"}


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "North Korea has supplied Russia with shells since 2023 in exchange for aid."),
        ("ru", "КНДР поставляет снаряды России с лета 2023 года в обмен на экономическую помощь."),
        (
            "bg",
            "Северна Корея доставя снаряди на Русия в замяна на икономическа помощ, откакто "
            "започна войната през 2022 г.",
        ),
    ],
)
def test_help_received_in_exchange_keeps_the_supply_062(lang: str, text: str) -> None:
    assert [m.cameo_code for m in events(text, lang)] == ["062"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "North Korea supplies Russia with shells."),
        ("bg", "Северна Корея предоставя оръжия на Русия."),
        ("ru", "Пхеньян поставляет Москве боеприпасы."),
        ("bg", "И Пхенян, и Москва отричат обвиненията."),
        ("en", "Both Moscow and Pyongyang deny the accusations."),
        ("ru", "Северная Корея поддерживает Россию в войне."),
    ],
)
def test_present_tense_in_narration_is_a_state(lang: str, text: str) -> None:
    assert events(text, lang) == []


def test_present_tense_reported_speech_is_still_an_event() -> None:
    got = events("Ким заявил во вторник, что КНДР поддерживает Россию.", "ru")
    assert [(m.cameo_code, m.date) for m in got] == [("051", "2024-06-18")]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("bg", "Путин и Ким подписаха договор, който обещава взаимна помощ."),
        ("en", "Putin and Kim signed a treaty which promises mutual assistance."),
    ],
)
def test_relative_clause_describing_a_thing_is_not_an_event(lang: str, text: str) -> None:
    assert [m.cameo_code for m in events(text, lang)] == ["057"]


def test_third_party_cooperation_is_off_dyad() -> None:
    assert events("Китай пригласил Россию и КНДР на переговоры во вторник.", "ru") == []
    assert events("China welcomed the visit of Putin to North Korea on Tuesday.") == []
    got = events(
        "The United States condemned the arms deal between Russia and North Korea on Tuesday."
    )
    assert [m.cameo_code for m in got] == ["111"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        (
            "en",
            "Putin arrived in Pyongyang on Tuesday. He was greeted by Kim Jong Un at the airport.",
        ),
        ("ru", "Путин прибыл в Пхеньян во вторник. В аэропорту его встретил Ким Чен Ын."),
        ("bg", "Путин пристигна в Пхенян във вторник. Ким се срещна с Путин на летището."),
    ],
)
def test_reception_on_arrival_is_the_arrival(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.date) for m in got] == [("042", "2024-06-18")]


def test_dated_reception_on_another_day_stays_apart() -> None:
    got = events(
        "Shoigu arrived in Pyongyang on Tuesday. On Wednesday Kim Jong Un received Shoigu."
    )
    assert [(m.cameo_code, m.date) for m in got] == [("042", "2024-06-18"), ("043", "2024-06-19")]


def test_generic_meeting_and_praise_of_a_visit_fold_into_the_meeting() -> None:
    got = events(
        "Lavrov met Choe Son Hui on Tuesday. "
        "Lavrov held talks with Choe Son Hui in Moscow on Tuesday."
    )
    assert [m.cameo_code for m in got] == ["046"]
    got = events(
        "Ким Чен Ын высоко оценил визит Лаврова во вторник. "
        "Ким принял Лаврова в Вонсане во вторник.",
        "ru",
    )
    assert [m.cameo_code for m in got] == ["043"]
    assert [
        m.cameo_code for m in events("Putin thanked Kim Jong Un for his support on Tuesday.")
    ] == ["051"]


def test_news_agency_is_a_channel_and_dateline_is_a_place() -> None:
    assert (
        events("The treaty will take effect when both sides exchange instruments, KCNA said.") == []
    )
    got = events("TOKYO, Nov 12 (Kyodo) -- North Korea ratified the treaty with Russia on Monday.")
    assert [(m.cameo_code, m.source_actor, m.target_actor) for m in got] == [("057", "PRK", "RUS")]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("bg", "Путин благодари на Ким за подкрепата в Украйна, част от това, което той каза."),
        (
            "en",
            "Putin thanked Kim for the support in Ukraine, "
            "which he said was a fight against hegemony.",
        ),
    ],
)
def test_pronoun_speaker_is_the_named_subject(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.source_actor) for m in got] == [("051", "RUSGOV")]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        (
            "ru",
            "Сотрудничество запрещено санкциями ООН. "
            "Санкционный режим против КНДР должен быть пересмотрен, заявил Путин.",
        ),
        (
            "en",
            "Cooperation is banned by UN sanctions. "
            "The sanctions against North Korea must be revised, Putin said.",
        ),
    ],
)
def test_demand_about_sanctions_addresses_the_sanctioning_body(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code[:2], m.source_actor, m.target_actor) for m in got] == [
        ("10", "RUSGOV", "UNO")
    ]


def test_deployment_source_is_the_side_whose_forces_are_named() -> None:
    text = (
        "Още през 2023-а година украинското разузнаване съобщи за пристигането в окупираните "
        "украински територии на контингент военнослужещи от Северна Корея."
    )
    got = events(text, "bg", published=datetime(2024, 10, 15))
    assert [(m.cameo_code, m.date, m.source_actor[:3], m.target_actor) for m in got] == [
        ("150", "2023", "PRK", "RUS")
    ]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "On Tuesday Vladimir Putin ordered the signing of a strategic partnership "
               "treaty with North Korea."),
        ("ru", "Во вторник Владимир Путин поручил подписать договор о партнерстве с КНДР."),
        ("uk", "У вівторок Володимир Путін доручив підписати договір про партнерство з КНДР."),
        ("ko", "블라디미르 푸틴 러시아 대통령은 18일 북한과 동반자 협정 체결을 지시했다."),
    ],
)
def test_ordering_a_signing_is_an_intent_not_the_signing(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_root, m.date) for m in got] == [("03", "2024-06-18")]
    assert got[0].source_actor == "RUSGOV"


@pytest.mark.parametrize(
    ("lang", "text", "source"),
    [
        ("fr", "Le président russe Vladimir Poutine a rencontré mardi le dirigeant nord-coréen "
               "Kim Jong-un à Moscou.", "RUSGOV"),
        ("de", "Der russische Präsident Wladimir Putin hat am Dienstag den nordkoreanischen "
               "Machthaber Kim Jong Un in Moskau getroffen.", "RUSGOV"),
        ("pl", "Prezydent Rosji Władimir Putin spotkał się we wtorek w Moskwie z przywódcą "
               "Korei Północnej Kim Dzong Unem.", "RUSGOV"),
        ("uk", "Міністр оборони Росії Андрій Білоусов у вівторок прибув до Пхеньяна.", "RUSMIL"),
    ],
)
def test_a_country_in_apposition_yields_to_the_named_actor(
    lang: str, text: str, source: str
) -> None:
    got = events(text, lang)
    assert [m.source_actor for m in got] == [source]


def test_an_undated_article_takes_the_report_date_of_its_attribution() -> None:
    text = ("Russia and North Korea signed a partnership treaty in Pyongyang. "
            "This was reported on June 19 by a state news agency.")
    got = events(text, published=None)
    assert [(m.cameo_code, m.date_anchor, m.date_source) for m in got] == [
        ("057", "--06-19", "report_date:attribution")]
    # an article with a publication date keeps it
    dated = events(text)
    assert [m.date_source for m in dated] != ["report_date:attribution"]
    assert events("Russia and North Korea signed a partnership treaty in Pyongyang.",
                  published=None) == []


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "В ответ на визит Путина в КНДР западные чиновники предупредили об опасности."),
        ("en", "In response to Putin's visit to North Korea, Western officials warned of danger."),
        ("uk", "У відповідь на візит Путіна до КНДР західні посадовці висловили занепокоєння."),
        ("uk", "Після візиту Путіна в КНДР західні посадовці засудили цю співпрацю."),
    ],
)
def test_the_owner_of_a_thing_is_not_the_speaker(lang: str, text: str) -> None:
    # "Putin's visit": Putin owns the visit; the critics are unnamed, so no source is known
    assert events(text, lang) == []


@pytest.mark.parametrize(
    ("lang", "text", "source"),
    [
        ("en", "The White House's spokesman condemned North Korea's arms deliveries to Russia "
         "on Tuesday.", "USAGOV"),
        ("ru", "Министр обороны США во вторник осудил Северную Корею за поставки оружия России.",
         "USA"),
        ("uk", "Міністр оборони США у вівторок засудив Північну Корею за постачання зброї Росії.",
         "USA"),
    ],
)
def test_a_country_qualifying_a_role_is_still_the_speaker(
    lang: str, text: str, source: str
) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.source_actor, m.date) for m in got] == [("111", source, "2024-06-18")]


JAN_2025 = datetime(2025, 1, 10, 9, 0)


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "Генсек НАТО Столтенберг 8 января осудил КНДР за поставки оружия России."),
        ("en", "NATO Secretary General Jens Stoltenberg condemned North Korea's arms supplies to "
         "Russia on January 8."),
        ("uk", "Генсек НАТО Єнс Столтенберг 8 січня засудив КНДР за постачання зброї Росії."),
    ],
)
def test_a_title_named_with_a_person_fixes_their_role(lang: str, text: str) -> None:
    # the role by date would be his later office (NORGOV); the title says NATO
    got = events(text, lang, JAN_2025)
    assert [(m.source_actor, m.date) for m in got] == [("NATO", "2025-01-08")]
    untitled = events("Столтенберг 8 января осудил КНДР за поставки оружия России.", "ru", JAN_2025)
    assert [m.source_actor for m in untitled] == ["NORGOV"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "После визита Путина в КНДР западные чиновники выразили обеспокоенность. "
         "В частности, генсек НАТО Йенс Столтенберг заявил 17 июня, что это опасно."),
        ("en", "After Putin's visit to North Korea, Western officials voiced concern.\n"
         "In particular, NATO Secretary General Jens Stoltenberg said on June 17 that such "
         "signals should unite NATO."),
        ("uk", "Після візиту Путіна до КНДР західні посадовці висловили занепокоєння. Зокрема, "
         "генсек НАТО Єнс Столтенберг заявив 17 червня, що такі сигнали мають об'єднати НАТО."),
    ],
)
def test_an_elaboration_names_the_unnamed_critic(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.source_actor, m.date) for m in got] == [
        ("111", "NATO", "2024-06-17")
    ]
    assert {"RUS", "PRK"} <= {a[:3] for a in got[0].actors}


def test_an_elaboration_without_an_unnamed_criticism_is_no_criticism() -> None:
    got = events("Putin visited Pyongyang on Tuesday. In particular, NATO Secretary General "
                 "Jens Stoltenberg said on June 17 that such signals should unite NATO.")
    assert [m.cameo_code for m in got] == ["042"]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("bg", "Северна Корея и Съветският съюз подписаха договор през 1961 г. Той беше заменен от "
         "друг през 2000 г."),
        ("ru", "КНДР и СССР подписали договор в 1961 году. В 2000 году он был заменён новым."),
        ("en", "North Korea and the Soviet Union signed a treaty in 1961. It was replaced by a new "
         "one in 2000."),
        ("uk", "КНДР і СРСР підписали договір у 1961 році. У 2000 році його було замінено іншим."),
    ],
)
def test_a_treaty_replaced_by_another_is_a_new_signing(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.date, m.background) for m in got] == [
        ("057", "1961", True),
        ("057", "2000", True),
    ]
    assert {a[:3] for a in got[1].actors} == {"RUS", "PRK"}


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "Министр обороны России Шойгу в мае был заменён новым министром, сообщили в КНДР."),
        ("en", "North Korea said Russia's defence minister was replaced by a new one in May."),
    ],
)
def test_a_person_replaced_by_another_is_no_signing(lang: str, text: str) -> None:
    assert events(text, lang) == []


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("ru", "Путин посетил КНДР с 17 по 19 июня."),
        ("uk", "Путін відвідав КНДР з 17 по 19 червня."),
        ("en", "Putin visited North Korea from June 17 to June 19."),
        ("ko", "푸틴 대통령은 17일부터 19일까지 북한을 방문했다."),
    ],
)
def test_a_visit_over_a_range_of_days_is_dated_by_its_first_day(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.date) for m in got] == [("042", "2024-06-17")]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("uk", "Лавров відвідав Пхеньян. Візит відбувається напередодні першої річниці підписання "
         "договору між Росією та КНДР у червні 2024 року."),
        ("ru", "Лавров посетил Пхеньян. Визит приурочен к первой годовщине подписания договора "
         "между Россией и КНДР в июне 2024 года."),
        ("en", "Lavrov visited Pyongyang. The trip comes ahead of the first anniversary of the "
         "treaty Russia and North Korea signed in June 2024."),
        ("bg", "Лавров посети Пхенян. Посещението съвпада с първата годишнина от подписването на "
         "договора между Русия и КНДР през юни 2024 г."),
    ],
)
def test_an_undated_article_is_dated_by_the_anniversary_it_marks(lang: str, text: str) -> None:
    got = [m for m in events(text, lang, None) if m.cameo_code == "042"]
    assert [(m.date, m.date_precision) for m in got] == [("2025-06", "month")]


def test_an_anniversary_without_the_year_of_its_event_dates_nothing() -> None:
    for lang, text in [
        ("en", "Lavrov visited Pyongyang. The trip comes ahead of the anniversary of the treaty."),
        ("ru", "Лавров посетил Пхеньян. Визит приурочен к годовщине подписания договора."),
    ]:
        assert events(text, lang, None) == [], text


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("uk", "Секретар Ради безпеки Росії Сергій Шойгу у вівторок прибув до Пхеньяна."),
        ("ru", "Заместитель председателя Совета безопасности России Дмитрий Медведев во вторник "
         "прибыл в Пхеньян."),
        ("en", "Russian Security Council Secretary Sergei Shoigu arrived in Pyongyang on Tuesday."),
        ("de", "Der Sekretär des russischen Sicherheitsrates Sergej Schoigu traf am Dienstag in "
         "Pjöngjang ein."),
    ],
)
def test_russias_own_security_council_is_not_the_uns(lang: str, text: str) -> None:
    got = events(text, lang)
    assert [(m.cameo_code, m.source_actor, m.date) for m in got] == [
        ("042", "RUSGOV", "2024-06-18")
    ]


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "The UN Security Council on Tuesday condemned North Korea for supplying weapons "
         "to Russia."),
        ("ru", "Совет Безопасности ООН во вторник осудил КНДР за поставки оружия России."),
    ],
)
def test_the_un_security_council_stays_the_un(lang: str, text: str) -> None:
    assert [m.source_actor for m in events(text, lang)] == ["UNO"]


def test_a_since_date_is_still_no_date_of_the_event() -> None:
    # "с 17 июня" alone frames an ongoing state: the visit is dated by publication
    got = events("Путин с 17 июня посетил КНДР.", "ru")
    assert [(m.cameo_code, m.date) for m in got] == [("042", "2024-06-20")]
