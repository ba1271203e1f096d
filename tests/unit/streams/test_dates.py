"""Event dates from synthetic sentences (written for these tests)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streams.dates import ResolvedDate, find_date_expressions, resolve_event_date

THU = datetime(2024, 6, 20, 9, 0)  # a Thursday


def r(
    sentence: str, lang: str, published: datetime | None = THU, **kw: object
) -> ResolvedDate | None:
    return resolve_event_date(sentence, lang, published, **kw)  # type: ignore[arg-type]


def test_weekdays_in_every_language_resolve_to_the_latest_such_day() -> None:
    cases = [
        ("Путин прибыл в Пхеньян во вторник.", "ru"),
        ("Министр прибыл в Москву в среду.", "ru"),
        ("The minister arrived on Tuesday.", "en"),
        ("Делегацията пристигна във вторник.", "bg"),
        ("Делегація прибула у вівторок.", "uk"),
        ("Le ministre est arrivé mardi.", "fr"),
        ("Der Minister traf am Dienstag ein.", "de"),
    ]
    for sentence, lang in cases:
        got = r(sentence, lang)
        assert got is not None, sentence
        expected = "2024-06-19" if "сред" in sentence else "2024-06-18"
        assert (got.date, got.precision) == (expected, "day"), sentence


def test_same_weekday_as_publication_is_that_day() -> None:
    got = r("Talks were held on Thursday.", "en")
    assert got is not None and got.date == "2024-06-20"


def test_day_month_without_year_takes_the_publication_year() -> None:
    got = r("Договор подписали 15 июня.", "ru")
    assert got == ResolvedDate("2024-06-15", "day", "day_month")


def test_day_month_after_publication_is_never_a_future_event() -> None:
    # A past-tense event cannot postdate its report; a year back would be 10 months: a slip.
    got = r("Напомним, 19 августа лидеры подписали договор.", "ru")
    assert got is not None
    assert got.precision == "month" and got.date == "2024-06"
    assert got.first_day() <= THU.date()


def test_day_month_just_after_new_year_goes_back_a_year() -> None:
    got = r("Соглашение подписали 28 декабря.", "ru", datetime(2025, 1, 5))
    assert got is not None and got.date == "2024-12-28"


def test_months_years_and_relative_words() -> None:
    assert r("The veto came in March.", "en") == ResolvedDate("2024-03", "month", "month_in_year")
    assert r("In September the leaders met.", "en") is None or r(
        "In September the leaders met.", "en"
    ) == ResolvedDate("2023-09", "month", "month_in_year")
    assert r("Договор был заключен в 1961 году.", "ru") == ResolvedDate("1961", "year", "absolute")
    assert r("Договорът е от 2000 г.", "bg") == ResolvedDate("2000", "year", "absolute")
    assert r("Делегация прибыла вчера.", "ru") == ResolvedDate(
        "2024-06-19", "day", "relative_yesterday"
    )
    assert r("He arrived yesterday.", "en") == ResolvedDate(
        "2024-06-19", "day", "relative_yesterday"
    )
    last_week = r("They met last week.", "en")
    assert last_week is not None and last_week.precision == "month"
    assert r("They signed it in June 2024.", "en") == ResolvedDate("2024-06", "month", "absolute")
    assert r("у червні 2024 року", "uk") == ResolvedDate("2024-06", "month", "absolute")


def test_seasons_resolve_to_their_middle_month() -> None:
    got = r("Troops were deployed last autumn.", "en", datetime(2025, 4, 29))
    assert got == ResolvedDate("2024-10", "month", "season")
    got = r("Это произошло летом 2022 года.", "ru")
    assert got == ResolvedDate("2022-07", "month", "season")


def test_korean_numeric_and_relative_dates() -> None:
    assert r("양국은 2024년 6월 19일 서명했다.", "ko") == ResolvedDate(
        "2024-06-19", "day", "absolute"
    )
    assert r("장관은 지난 13일 도착했다.", "ko") == ResolvedDate(
        "2024-06-13", "day", "day_of_month"
    )
    assert r("장관은 이날 회담했다.", "ko") == ResolvedDate(
        "2024-06-20", "day", "relative_same_day"
    )
    assert r("양국은 1961년 조약을 맺었다.", "ko") == ResolvedDate("1961", "year", "absolute")
    got = r("지난해 9월 정상회담을 했다.", "ko")
    assert got == ResolvedDate("2023-09", "month", "month_in_year")


def test_without_publication_only_the_text_fixes_a_year() -> None:
    assert r("Putin arrived on Tuesday.", "en", None) is None
    assert r("Talks took place on 15 August.", "en", None) is None
    assert r("Talks took place on 15 August 2022.", "en", None) == ResolvedDate(
        "2022-08-15", "day", "absolute"
    )
    assert r("Putin arrived on Tuesday.", "en", THU, published_has_year=False) is None


def test_numbers_that_are_not_dates() -> None:
    assert find_date_expressions("впервые за 24 года", "ru") == []
    assert find_date_expressions('the "Weaponry Exhibition-2023" event', "en") == []
    assert find_date_expressions("up 55% to 3,3 billion, 24/7 coverage", "en") == []


def test_future_weekday_looks_forward() -> None:
    got = r("Talks will be held on Monday.", "en", tense_past=False)
    assert got is not None and got.date == "2024-06-24"


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=28),
    st.sampled_from(["on Monday", "on Friday", "yesterday", "in March", "last month"]),
)
def test_past_events_never_postdate_publication(
    pub: date, month: int, day: int, extra: str
) -> None:
    months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    published = datetime(pub.year, pub.month, pub.day, 12)
    for sentence in (f"The treaty was signed on {day} {months[month - 1]}.", f"They met {extra}."):
        got = resolve_event_date(sentence, "en", published)
        assert got is not None
        assert got.first_day() <= pub
        assert pub - got.first_day() <= timedelta(days=400)


def test_partial_dates_without_publication_and_their_anchoring() -> None:
    from datetime import date as _d

    from streams.dates import anchor_partial, parse_partial, partial_date

    def partial(sentence: str, lang: str) -> str | None:
        (expr,) = find_date_expressions(sentence, lang)
        resolved = partial_date(expr)
        return resolved.partial if resolved else None

    assert partial("They met on 18 June.", "en") == "--06-18"
    assert partial("회담은 12일 열렸다.", "ko") == "---12"
    assert partial("They met on Tuesday.", "en") == "-W-2"
    assert partial("They met in October.", "en") == "--10"
    assert partial("They met yesterday.", "en") is None  # needs the publication day itself
    assert parse_partial("--02-30") is None and parse_partial("-W-7") == ("weekday", None, None, 7)
    anchor = _d(2025, 1, 2)
    assert anchor_partial("--12-31", anchor) == ResolvedDate("2024-12-31", "day", "anchored")
    assert anchor_partial("---30", anchor).date == "2024-12-30"  # type: ignore[union-attr]
    assert anchor_partial("-W-1", anchor).date == "2024-12-30"  # type: ignore[union-attr]
    assert anchor_partial("--11", anchor).date == "2024-11"  # type: ignore[union-attr]


def test_a_range_of_two_dates_is_one_expression_dated_by_its_start() -> None:
    cases = [
        ("Делегация находилась в Пхеньяне с 17 июня по 19 июня.", "ru", "2024-06-17"),
        ("The delegation stayed in Pyongyang from June 17 until June 19.", "en", "2024-06-17"),
        ("Делегація перебувала в Пхеньяні з 17 червня до 19 червня.", "uk", "2024-06-17"),
        ("La délégation est restée à Pyongyang du 17 juin au 19 juin.", "fr", "2024-06-17"),
        ("대표단은 17일부터 19일까지 평양에 머물렀다.", "ko", "2024-06-17"),
    ]
    for sentence, lang, expected in cases:
        found = find_date_expressions(sentence, lang)
        assert len(found) == 1, sentence
        got = r(sentence, lang)
        assert got is not None and (got.date, got.precision) == (expected, "day"), sentence
    # the year of the end date belongs to the start too (the year before across New Year)
    (full,) = find_date_expressions("from 30 December to 2 January 2024", "en")
    assert (full.kind, full.year, full.month, full.day) == ("full", 2023, 12, 30)
    (full,) = find_date_expressions("vom 3. Juni bis zum 5. Juni 2024", "de")
    assert (full.kind, full.year, full.month, full.day) == ("full", 2024, 6, 3)


def test_two_dates_not_joined_as_a_range_stay_apart() -> None:
    for sentence, lang in [
        ("Он прилетел 17 июня, а 19 июня провёл переговоры.", "ru"),
        ("He arrived on June 17 and held talks on June 19.", "en"),
        ("그는 17일 도착했고 19일 회담했다.", "ko"),
        ("PYONGYANG, June 19 — Tuesday's arrival was late.", "en"),
        ("ПХЕНЬЯН, 19 июня — Вторник начался с переговоров.", "ru"),
    ]:
        assert len(find_date_expressions(sentence, lang)) == 2, sentence


def test_the_anniversary_of_a_dated_event_tells_when_a_text_was_written() -> None:
    from streams.dates import anniversary_anchor

    assert anniversary_anchor("ahead of the 80th anniversary of the liberation in August 1945",
                              "en") == (date(2025, 8, 31), "month")
    assert anniversary_anchor("к 75-летию начала войны в 1950 году", "ru") == (
        date(2025, 12, 31), "year")
    assert anniversary_anchor("zum zehnten Jahrestag des Vertrags vom Juli 2014", "de") == (
        date(2024, 7, 31), "month")
    assert anniversary_anchor("zum Jahrestag des Vertrags vom Juli 2014", "de") is None
    assert anniversary_anchor("zum 10. Jahrestag des Vertrags vom 5. Juli 2014", "de") == (
        date(2024, 7, 31), "month")
    # the year must stand in the anniversary's own sentence
    assert anniversary_anchor("the first anniversary of the treaty. It was 2024.", "en") is None


def test_a_lowered_search_says_no_only_where_the_pattern_finds_nothing() -> None:
    """The fast 'no' of a case-insensitive pattern (searching the lower-cased text with a
    case-sensitive copy) never hides a match, whatever the case or the odd characters that
    case-insensitive matching folds (Kelvin sign, long s, dotted capital I, final sigma)."""
    import random
    import re

    from streams.dates import lowered_search

    patterns = [re.compile(p, re.IGNORECASE) for p in (
        r"\b(?:вчера|позавчера|yesterday|last\s+week)\b", r"(?:sk|ks)\w*", r"\bσήμερα\b",
        r"\d+\s*(?:днів|days?)\s+ago", r"kim\b|ink")]
    alphabet = "abcdiksyeotwαστησήμρΣςвчерапозВЧЕРАднівKſİıK 0123456789\t\n.,"
    rng = random.Random(5)
    texts = ["Вчера", "ВЧЕРА в Пхеньяне", "Yesterday", "LAST  WEEK", "ſk", "Kelvin Ks",
             "ΣΉΜΕΡΑ", "σήμερα", "3 DAYS AGO", "İnk", "KIM", "kİm"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
              for _ in range(20_000)]
    for compiled in patterns:
        fast = lowered_search(compiled)
        assert fast is not None, compiled.pattern
        said_no = 0
        for text in texts:
            if fast.finds_nothing(text):
                said_no += 1
                assert compiled.search(text) is None, (compiled.pattern, text)
        assert 0 < said_no < len(texts)
    # what it cannot answer for: not case-insensitive, a look-behind, a capital in the pattern
    assert lowered_search(re.compile("вчера")) is None
    assert lowered_search(re.compile(r"(?<!\d)вчера", re.IGNORECASE)) is None
    assert lowered_search(re.compile("Вчера", re.IGNORECASE)) is None
