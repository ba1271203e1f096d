"""Gazetteer: lemma-aware aliases, people with periods, places (synthetic sentences)."""

from __future__ import annotations

from datetime import date

from streams.extract import recognize_actors
from streams.gazetteer import get_gazetteer


def refs(text: str, lang: str) -> list[str]:
    return [m.target.ref for m in get_gazetteer().match(text, lang)]


def test_russian_case_forms_match_through_lemmas_and_stems() -> None:
    got = refs("Встреча Путина с Ким Чен Ыном прошла в Пхеньяне, Лавров выступил.", "ru")
    assert got == ["putin", "kim_jong_un", "pyongyang", "lavrov"]
    assert refs("Письмо Ким Чен Ыну передали в КНДР.", "ru") == ["kim_jong_un", "north_korea"]


def test_ukrainian_and_bulgarian_forms() -> None:
    assert refs("Зустріч з Кім Чен Ином у Пхеньяні.", "uk") == ["kim_jong_un", "pyongyang"]
    assert refs("Русия и Северна Корея подписаха споразумение.", "bg") == ["russia", "north_korea"]
    assert "PRK" in refs("севернокорейският лидер пристигна", "bg")


def test_three_kims_are_three_people() -> None:
    assert refs("Kim Jong Un, Kim Jong Il and Kim Yo Jong.", "en") == [
        "kim_jong_un",
        "kim_jong_il",
        "kim_yo_jong",
    ]
    assert refs("김정은, 김정일, 김여정", "ko") == ["kim_jong_un", "kim_jong_il", "kim_yo_jong"]


def test_korean_aliases_match_inside_words_with_particles() -> None:
    got = refs("라브로프 장관이 원산에서 김정은 위원장을 만났다. 북러 관계", "ko")
    assert got == ["lavrov", "wonsan", "kim_jong_un", "RUS+PRK"]


def test_short_words_do_not_match_abbreviations() -> None:
    assert "nato" not in refs("Делегацията пристигна на летището.", "bg")


def test_roles_change_with_the_period() -> None:
    shoigu = get_gazetteer().actors["shoigu"]
    assert shoigu.code_at(date(2023, 7, 25)) == "RUSMIL"
    assert shoigu.code_at(date(2025, 6, 17)) == "RUSGOV"


def test_a_bare_surname_with_an_unknown_given_name_is_someone_else() -> None:
    actors, _ = recognize_actors("Reporting by Kim Tong-hyung in Seoul.", "en")
    assert all(a.entity != "kim_jong_un" for a in actors)
    actors, _ = recognize_actors("Kim met Putin.", "en")
    assert [a.code for a in actors] == ["PRKGOV", "RUSGOV"]


def test_capital_is_a_place_after_a_preposition_and_an_actor_as_subject() -> None:
    actors, places = recognize_actors("Lavrov arrived in Pyongyang.", "en")
    assert [a.code for a in actors] == ["RUSGOV"]
    assert places[0].name == "Pyongyang" and 38 < places[0].lat < 40
    actors, _ = recognize_actors("Moscow appreciates the support.", "en")
    assert [a.code for a in actors] == ["RUSGOV"]


def test_country_adjective_with_military_noun() -> None:
    actors, _ = recognize_actors("North Korean troops were seen.", "en")
    assert actors[0].code == "PRKMIL"


def test_the_cleaner_and_the_gazetteer_load_one_dictionary_per_language() -> None:
    """pymorphy3 loads a dictionary per analyzer (about 14 MB): the cleaner's glued-word check
    and the gazetteer's lemmas must use the same one."""
    from streams import gazetteer, normalize

    gazetteer.morph_analyzer.cache_clear()
    normalize._known_word.cache_clear()
    gazetteer.lemma.cache_clear()
    assert normalize._known_word("Москва", "ru")
    assert gazetteer.lemma("Москвы", "ru") == "москва"
    info = gazetteer.morph_analyzer.cache_info()
    assert (info.misses, info.currsize) == (1, 1) and info.hits >= 1


def test_simplemma_over_tries_gives_simplemma_s_lemmas_and_known_words(
    seed_records: list[dict[str, object]], dev_records: list[dict[str, object]]
) -> None:
    """The stage processes hold simplemma's dictionaries as tries (a few MB, not 35 for bg):
    every word of the seeds and the dev corpus gets the lemma and the known-word answer
    simplemma's own dicts give."""
    import re

    import simplemma

    from streams.gazetteer import simplemma_lookups

    lemmatize, is_known = simplemma_lookups()
    texts = [str(r.get("text") or r.get("html") or "") for r in [*seed_records, *dev_records]]
    words = sorted({w for text in texts for w in re.findall(r"[^\W\d_]{2,}", text)})
    assert len(words) > 2_000
    for lang in ("bg", "en"):
        assert [lemmatize(w.lower(), lang) for w in words] == [
            simplemma.lemmatize(w.lower(), lang=lang) for w in words]
        assert [is_known(w.lower(), lang) for w in words] == [
            simplemma.is_known(w.lower(), lang=lang) for w in words]
        assert any(is_known(w.lower(), lang) for w in words)
    import sys

    assert "marisa_trie" in sys.modules  # the tries, not simplemma's dicts again
