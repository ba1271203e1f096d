"""streams.langid_model gives py3langid's own results, bit for bit."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier, visit_counts

from streams import langid_model
from streams.normalize import _identifier

TEXTS = [
    "",
    "a",
    "Владимир Путин и Ким Чен Ын подписали договор о всеобъемлющем стратегическом партнёрстве.",
    "Русия и Северна Корея подписаха споразумение за всеобхватно стратегическо партньорство.",
    "Держдума РФ ратифікувала Договір про всеосяжне стратегічне партнерство з КНДР.",
    "North Korea hands over more ammunition to Russia, the White House said on Friday.",
    "Nordkorea feuert laut Südkorea erneut Raketen ab. Vladimir Poutine et Kim Jong-un.",
    "블라디미르 푸틴 러시아 대통령은 18일(현지시간) 북한과 포괄적 전략 동반자 협정을 맺었다.",
    "プーチン大統領は北朝鮮を訪問した。中华人民共和国外交部发言人表示。",
    "MOSCOW, October 26. /TASS/. 12:14 | 2024-6-23 09:25 | + ↺ − 16 px {\"a\": [1, 2]}",
    "ПРОСТО ЗАГЛАВНЫЕ БУКВЫ",
]


def _random_texts() -> Iterator[str]:
    rng = random.Random(5)
    alphabet = "abcdefghijklmnopqrstuvwxyzабвгдежзийклмнопрстуфхцчшщъыьэюяіїєґ가나다의 .,!?0123"
    for _ in range(40):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500)))


@pytest.fixture(scope="module")
def reference() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_same_feature_counts_in_the_same_order(reference: LanguageIdentifier) -> None:
    fast = _identifier()
    for text in [*TEXTS, *_random_texts()]:
        encoded = reference._encode(text)
        expected = visit_counts(reference.tk_nextmove, reference._rowbase, reference.tk_output,
                                encoded)
        got = fast.visit_counts(encoded)
        assert (got is None) == (expected is None)
        if got is not None:
            assert list(got.items()) == list(expected.items())


def test_same_ranking_bit_for_bit(reference: LanguageIdentifier) -> None:
    fast = _identifier()
    for text in [*TEXTS, *_random_texts()]:
        assert fast.rank(text) == reference.rank(text)


def test_automaton_depth_is_what_the_walk_assumes(reference: LanguageIdentifier) -> None:
    """Breadth-first depth of every state; a transition never gets deeper than one byte more
    (an Aho–Corasick machine), so the state after a byte is fixed by the last DFA_DEPTH bytes."""
    table = reference.tk_nextmove
    move = np.frombuffer(table, dtype=np.dtype(f"u{table.itemsize}"))
    rowbase = np.asarray(reference._rowbase, dtype=np.intp)
    depth = np.full(len(rowbase), -1, dtype=np.int64)
    depth[0] = 0
    frontier = np.array([0], dtype=np.intp)
    level = 0
    while frontier.size:
        reached = np.unique(move[(rowbase[frontier][:, None] + np.arange(256)).ravel()])
        reached = reached[depth[reached] < 0]
        level += 1
        depth[reached] = level
        frontier = reached.astype(np.intp)
    assert (depth >= 0).all()
    assert depth.max() <= langid_model.DFA_DEPTH
    targets = move[rowbase[:, None] + np.arange(256)]
    assert (depth[targets] <= depth[:, None] + 1).all()


@pytest.mark.parametrize("size", [1, 7, 8, 9, 1000, 4099])
def test_split_states_keeps_every_state_number(size: int) -> None:
    """Low 16 bits and packed 17th bits give back each renumbered state, whatever the chunk
    (the chunks' packed bytes meet without a gap)."""
    rng = np.random.default_rng(size)
    move = rng.integers(0, 100_000, size).astype(np.uint32)
    renumber = rng.permutation(100_000)
    numbers = renumber[move]
    for chunk in (8, 16, 1 << 20):
        low, high = langid_model.split_states(move, renumber, chunk=chunk)
        assert high is not None
        rebuilt = low.astype(np.intp) | langid_model.high_bits(high, np.arange(size)) << 16
        assert (rebuilt == numbers).all()
    with pytest.raises(ValueError):
        langid_model.split_states(move, renumber, chunk=12)
