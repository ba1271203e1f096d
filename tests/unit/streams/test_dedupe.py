"""Stage 1 dedupe: exact and near duplicates, replay idempotence, bounded memory.

The corpus is read at run time from ``../shared`` beside the repository. The dev corpus README
names its wire groups: d005/d006 and d016/d017 are copies of one story; no other pair of dev
and seed articles is.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.models import CleanArticle, RawArticle
from streams import dedupe
from streams.normalize import content_hash, normalize

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
INGEST = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
WIRE_PAIRS = {frozenset({"d005", "d006"}), frozenset({"d016", "d017"})}


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        pytest.skip(f"shared corpus file {path} is missing (expected ../shared beside the repo)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def articles() -> list[CleanArticle]:
    records = _load(SHARED / "seeds" / "articles.jsonl") + _load(
        SHARED / "corpus" / "dev" / "articles.jsonl"
    )
    return [
        normalize(RawArticle(id=r["id"], lang=r["lang"], text=r["text"], ingested_at=INGEST))
        for r in records
    ]


def _state() -> dedupe.DedupeState:
    return dedupe.DedupeState(exact={}, signatures={})


def _ids(bucket: Any) -> list[str]:
    """A band bucket's article ids (a bucket without ids does not exist)."""
    assert isinstance(bucket, list) and bucket and len(set(bucket)) == len(bucket), bucket
    return list(bucket)


def _article(aid: str, text: str, ts: float = INGEST) -> CleanArticle:
    return CleanArticle(
        id=aid, lang="en", text=text, content_hash=content_hash(text), ingested_at=ts
    )


# Made-up filler, not news text: each article draws its own words from a large vocabulary.
VOCAB = [f"{a}{b}{c}" for a in "bcdfghklmnprstvz" for b in "aeiou" for c in "lmnrst"]


def _synthetic(seed: int, words: int = 300) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(words)) + "."


# ============================================================================================
# The corpus
# ============================================================================================
def test_wire_groups_are_found_and_nothing_else(articles: list[CleanArticle]) -> None:
    state = _state()
    verdicts = {a.id: dedupe.check_and_remember(a, state, now=INGEST) for a in articles}
    found = {aid: v.duplicate_of for aid, v in verdicts.items() if v.is_duplicate}
    assert found == {"d006": "d005", "d017": "d016"}
    assert all(verdicts[a].kind == "near" for a in found)

    state = _state()
    backwards = {a.id: dedupe.check_and_remember(a, state, now=INGEST) for a in articles[::-1]}
    found = {aid: v.duplicate_of for aid, v in backwards.items() if v.is_duplicate}
    assert found == {"d005": "d006", "d016": "d017"}  # the first copy wins


def test_every_pair_separately(articles: list[CleanArticle]) -> None:
    sigs = {a.id: dedupe.minhash_signature(a.text) for a in articles}
    for left, right in itertools.combinations(articles, 2):
        similarity = dedupe.estimated_similarity(sigs[left.id], sigs[right.id])
        is_wire = frozenset({left.id, right.id}) in WIRE_PAIRS
        assert (similarity >= dedupe.DEFAULT_CONFIG.threshold) == is_wire, (
            left.id,
            right.id,
            similarity,
        )
        if is_wire:  # and the LSH bands do make them candidates
            assert set(dedupe.lsh_band_keys(sigs[left.id])) & set(
                dedupe.lsh_band_keys(sigs[right.id])
            )


def test_the_index_screens_on_8_bits_and_reports_the_full_values(
    articles: list[CleanArticle],
) -> None:
    """The band index keeps the low 8 bits of each MinHash value (a quarter of the memory):
    the verdicts on the corpus's wire pairs carry the similarity of the full signatures."""
    held = dedupe.held_signature(dedupe.minhash_signature(articles[0].text))
    assert held.dtype == np.uint8 and held.nbytes == dedupe.DEFAULT_CONFIG.num_perm
    by_id = {a.id: a for a in articles}
    for pair in WIRE_PAIRS:
        first, second = (by_id[i] for i in sorted(pair))
        state = _state()
        dedupe.check_and_remember(first, state, now=INGEST)
        verdict = dedupe.check_and_remember(second, state, now=INGEST + 1)
        full = dedupe.estimated_similarity(dedupe.minhash_signature(first.text),
                                           dedupe.minhash_signature(second.text))
        assert verdict.kind == "near" and verdict.duplicate_of == first.id
        assert verdict.similarity == round(full, 4)


def test_a_repost_of_a_corpus_article(articles: list[CleanArticle]) -> None:
    original = articles[0]
    edited = original.text.replace("Путин", "В. Путин", 2) + "\nПодписывайтесь на нас."
    repost = _article("repost", edited)
    state = _state()
    dedupe.check_and_remember(original, state, now=INGEST)
    verdict = dedupe.check_and_remember(repost, state, now=INGEST + 1)
    assert verdict.kind == "near" and verdict.duplicate_of == original.id
    assert verdict.similarity is not None and verdict.similarity >= 0.8


def test_exact_duplicate_ignores_case_and_punctuation() -> None:
    state = _state()
    first = _article("a", _synthetic(1))
    copy_ = _article("b", first.text.upper().replace(" ", "  ,"))
    assert dedupe.check_and_remember(first, state, now=1.0).kind == "unique"
    verdict = dedupe.check_and_remember(copy_, state, now=2.0)
    assert (verdict.kind, verdict.duplicate_of, verdict.similarity) == ("exact", "a", 1.0)


def test_unrelated_articles_are_unique() -> None:
    state = _state()
    for seed in range(40):
        verdict = dedupe.check_and_remember(_article(f"u{seed}", _synthetic(seed)), state, seed)
        assert verdict == dedupe.DedupeVerdict("unique")


def test_replay_gets_the_same_verdict_and_changes_nothing() -> None:
    state = _state()
    original = _article("a", _synthetic(7))
    near = _article("b", original.text.replace(".", " extra words here."))
    exact = _article("c", original.text)
    first = [
        dedupe.check_and_remember(x, state, now=i) for i, x in enumerate([original, near, exact])
    ]
    assert [v.kind for v in first] == ["unique", "near", "exact"]
    snapshot = copy.deepcopy((dict(state.exact), dict(state.bands), dict(state.signatures)))
    again = [dedupe.check_and_remember(x, state, now=99) for x in (original, near, exact)]
    assert again == first
    assert (dict(state.exact), dict(state.bands), dict(state.signatures)) == snapshot


def test_a_duplicate_never_becomes_a_candidate() -> None:
    state = _state()
    base = _synthetic(11, words=400).split()
    a = _article("a", " ".join(base))
    b = _article("b", " ".join(base[:300] + _synthetic(12, words=100).split()))
    c = _article("c", " ".join(base[100:300] + _synthetic(12, words=100).split()))
    assert dedupe.check_and_remember(a, state, now=1).kind == "unique"
    assert dedupe.check_and_remember(b, state, now=2).duplicate_of == "a"
    verdict = dedupe.check_and_remember(c, state, now=3)
    assert verdict.duplicate_of in (None, "a")  # never "b"
    assert all("b" not in _ids(bucket) for bucket in state.bands.values())


def test_short_texts_are_only_checked_exactly() -> None:
    state = _state()
    assert dedupe.check_and_remember(_article("a", "Talks held."), state, now=1).kind == "unique"
    assert dedupe.check_and_remember(_article("b", "Talks held today."), state, 2).kind == "unique"
    assert dedupe.check_and_remember(_article("c", "talks HELD"), state, now=3).kind == "exact"


def test_duplicate_notice() -> None:
    state = _state()
    a = _article("a", _synthetic(3))
    b = _article("b", a.text)
    dedupe.check_and_remember(a, state, now=1)
    notice = dedupe.duplicate_notice(b, dedupe.check_and_remember(b, state, now=2))
    assert (notice.article_id, notice.duplicate_of, notice.kind, notice.similarity) == (
        "b",
        "a",
        "exact",
        1.0,
    )
    with pytest.raises(ValueError):
        dedupe.duplicate_notice(a, dedupe.DedupeVerdict("unique"))


class JsonTable(MutableMapping[str, Any]):
    """Stores JSON text like a Faust table with a json serializer: in-place edits are lost."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self.writes = 0

    def __getitem__(self, key: str) -> Any:
        return json.loads(self._data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        self._data[key] = json.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)


def test_state_survives_a_json_round_trip(articles: list[CleanArticle]) -> None:
    state = dedupe.DedupeState(exact=JsonTable(), signatures=JsonTable())
    found = {}
    for article in articles:
        verdict = dedupe.check_and_remember(article, state, now=INGEST)
        if verdict.is_duplicate:
            found[article.id] = verdict.duplicate_of
    assert found == {"d006": "d005", "d017": "d016"}


# ============================================================================================
# Memory bounds
# ============================================================================================
def test_eviction_forgets_old_articles() -> None:
    state = _state()
    a = _article("a", _synthetic(5))
    dedupe.check_and_remember(a, state, now=100.0)
    removed = dedupe.evict_older_than(state, cutoff_ts=200.0)
    assert removed == 1 + 1 + len(dedupe.lsh_band_keys(dedupe.minhash_signature(a.text)))
    assert not state.exact and not state.bands and not state.signatures
    later = _article("b", a.text)
    assert dedupe.check_and_remember(later, state, now=300.0).kind == "unique"


class CountingDict(dict[str, Any]):
    """A dict that counts how many of its records were read (scans included)."""

    reads = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)

    def items(self) -> Any:
        self.reads += len(self)
        return super().items()


def test_eviction_reads_what_goes_not_the_whole_state() -> None:
    signatures = CountingDict()
    state = dedupe.DedupeState(exact={}, signatures=signatures)
    for n in range(200):
        dedupe.check_and_remember(_article(f"a{n:03d}", _synthetic(n, 20)), state, now=float(n))
    kept = {aid: dict(rec) for aid, rec in signatures.items() if rec["ts"] >= 190}
    signatures.reads = 0
    removed = dedupe.evict_older_than(state, cutoff_ts=190.0)
    assert signatures.reads == 190  # one read per record that goes, none of the 10 that stay
    assert dict(signatures) == kept and removed >= 2 * 190
    assert {i for b in state.bands.values() for i in _ids(b)} <= set(kept)
    assert {v[0] for v in state.exact.values()} == set(kept)
    assert dedupe.evict_older_than(state, cutoff_ts=190.0) == 0



_EXACT_KEYS = [content_hash(f"text {n}") for n in range(12)] + ["not-a-digest", "ab" * 20 + "x",
                                                                    "00" * 20, "ff" * 19 + "00"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "get"]),
                          st.sampled_from(_EXACT_KEYS), st.integers(0, 5)), max_size=120),
       st.integers(1, 6))
def test_the_exact_index_answers_as_a_dict(ops: list[tuple[str, str, int]],
                                           merge_at: int) -> None:
    """The packed exact-text map (digests in sorted arrays, the newest in a dict, holes left
    by deletes) reads, writes, deletes and lists as a dict does, across its merges; keys that
    are not 40-digit hex digests, and digests ending in zero bytes, included."""
    index, model = dedupe.ExactIndex(merge_at=merge_at), {}
    for op, key, n in ops:
        if op == "set":
            index[key] = model[key] = (f"a{n}", float(n))
        elif op == "del" and key in model:
            del index[key], model[key]
        elif op == "del":
            with pytest.raises(KeyError):
                del index[key]
        assert index.get(key) == model.get(key)
        assert len(index) == len(model)
    assert dict(index) == model and sorted(index) == sorted(model)


def test_the_exact_index_holds_a_digest_in_36_bytes() -> None:
    """What the packed map saves: after a merge, 20 bytes of digest, 8 of time and a list
    slot per entry (a dict of (id, time) tuples under hex keys took about 210)."""
    index = dedupe.ExactIndex(merge_at=1_000)
    ids = [f"a{n}" for n in range(1_000)]
    for n, article_id in enumerate(ids):
        index[content_hash(f"text {n}")] = (article_id, float(n))
    assert not index._recent and len(index) == 1_000
    held = index._digests.nbytes + index._ts.nbytes + 8 * len(index._ids)
    assert held == 36 * 1_000
    assert index[content_hash("text 7")] == ("a7", 7.0)
    assert index[content_hash("text 7")][0] is ids[7]  # the id string is not copied


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 100.0, allow_nan=False), st.integers(0, 40)),
                max_size=80),
       st.floats(0.0, 110.0, allow_nan=False))
def test_the_age_queue_gives_what_a_heap_gives(items: list[tuple[float, int]],
                                               cutoff: float) -> None:
    """The queue gives out what popping a min-heap of (time, id) below the cutoff gives, in
    that order, and keeps the rest for the next cutoff."""
    pushed = [(ts, f"a{n}") for ts, n in items]
    queue = dedupe.AgeQueue(pushed[: len(pushed) // 2])
    for ts, article_id in pushed[len(pushed) // 2:]:
        queue.push(ts, article_id)
    heap = sorted(pushed)
    assert queue.pop_older_than(cutoff) == [item for item in heap if item[0] < cutoff]
    assert sorted(queue) == [item for item in heap if item[0] >= cutoff]
    assert queue.pop_older_than(cutoff) == [] and len(queue) == len(list(queue))


def test_a_replayed_article_keeps_its_slot_in_the_band_index() -> None:
    """A unique article seen again (a replay) is found by its id, not given a second slot, and
    eviction then drops it whole."""
    state = _state()
    articles = [_article(f"a{n}", _synthetic(n, 20)) for n in range(5)]
    for n, article in enumerate(articles):
        dedupe.check_and_remember(article, state, now=INGEST + n)
    entries = state.bands.entries
    for article in articles[::-1]:
        assert dedupe.check_and_remember(article, state, now=INGEST + 9).kind == "unique"
    assert state.bands.entries == entries
    assert sorted(state.bands.candidates(dedupe.lsh_band_keys(
        dedupe.minhash_signature(articles[2].text)))) == ["a2"]
    dedupe.evict_older_than(state, cutoff_ts=INGEST + 3)
    assert {i for b in state.bands.values() for i in _ids(b)} == {"a3", "a4"}

def test_band_buckets_are_capped() -> None:
    config = dedupe.DedupeConfig(max_band_entries=3, threshold=1.1)  # nothing is a duplicate
    state = _state()
    text = _synthetic(9)
    for i in range(10):
        dedupe.check_and_remember(_article(f"v{i}", text + f" v{i}"), state, now=i, config=config)
    assert max(len(_ids(bucket)) for bucket in state.bands.values()) == 3


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.floats(0.0, 50.0, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_memory_stays_bounded_by_the_window(steps: list[tuple[int, float]]) -> None:
    """Whatever arrives, after eviction only the window's articles are remembered."""
    window = 100.0
    state = _state()
    now = 0.0
    arrivals: list[tuple[float, str]] = []
    for n, (seed, gap) in enumerate(steps):
        now += gap
        aid = f"x{n}"
        dedupe.check_and_remember(_article(aid, _synthetic(seed, 60)), state, now=now)
        arrivals.append((now, aid))
        dedupe.evict_older_than(state, now - window)
        recent = {a for t, a in arrivals if t >= now - window}
        assert set(state.signatures) <= recent
        assert len(state.exact) <= len(recent)
        for bucket in state.bands.values():
            ids = _ids(bucket)
            assert ids and all(state.signatures[i]["ts"] >= now - window for i in ids)
            assert len(ids) <= dedupe.DEFAULT_CONFIG.max_band_entries


def test_verdicts_do_not_depend_on_eviction_timing() -> None:
    """A copy older than the window is never a first copy, evicted yet or not."""
    config = dedupe.DedupeConfig(window_s=100.0)
    text = " ".join(f"word{i} sentence{i % 7}" for i in range(60))

    def verdict_of_repost(evict_first: bool) -> dedupe.DedupeVerdict:
        state = dedupe.DedupeState(exact={}, signatures={})
        dedupe.check_and_remember(_article("a", text, 1000.0), state, now=1000.0, config=config)
        if evict_first:
            dedupe.evict_older_than(state, 1050.0)
        return dedupe.check_and_remember(_article("b", text, 1200.0), state, now=1200.0,
                                         config=config)

    assert verdict_of_repost(False) == verdict_of_repost(True)
    assert not verdict_of_repost(False).is_duplicate


def test_a_replay_repairs_candidate_writes_a_crash_lost() -> None:
    """Tables are separate changelogs: the verdict may survive a crash while bands do not."""
    text = " ".join(f"word{i} sentence{i % 7}" for i in range(60))
    state = _state()
    dedupe.check_and_remember(_article("a", text), state, now=INGEST)
    state.bands = dedupe.BandIndex()
    state.exact.clear()
    assert not dedupe.check_and_remember(_article("a", text), state, now=INGEST).is_duplicate
    repost = dedupe.check_and_remember(_article("b", text + " extra"), state, now=INGEST + 1)
    assert repost.duplicate_of == "a"


def test_indexes_rebuilt_from_signatures_equal_the_incremental_ones() -> None:
    texts = [" ".join(f"w{(i * 7 + j) % 90} x{j % 5}" for j in range(50)) for i in range(12)]
    texts += [texts[0], texts[3] + " tail words here"]
    state = _state()
    for n, text in enumerate(texts):
        dedupe.check_and_remember(_article(f"a{n:02d}", text, INGEST + n), state, now=INGEST + n)
    exact, bands = dedupe.rebuild_index(state.signatures)
    assert exact == dict(state.exact)
    assert bands == dict(state.bands)


# ============================================================================================
# Compact state
# ============================================================================================
def test_signatures_are_stored_packed_and_round_trip() -> None:
    text = _synthetic(21)
    state = _state()
    dedupe.check_and_remember(_article("a", text), state, now=INGEST)
    stored = state.signatures["a"]["sig"]
    assert isinstance(stored, str) and len(stored) == 684  # version byte + 128 uint32, base64
    assert dedupe.unpack_signature(stored).tolist() == dedupe.minhash_signature(text)
    assert dedupe.pack_signature(dedupe.minhash_signature(text)) == stored


def test_legacy_records_with_int_list_signatures_are_read() -> None:
    """A changelog may still hold records written before signatures were packed."""
    text = _synthetic(22)
    state = _state()
    dedupe.check_and_remember(_article("a", text), state, now=INGEST)
    legacy = {**state.signatures["a"], "sig": dedupe.minhash_signature(text)}
    signatures = {"a": legacy}
    exact, bands = dedupe.rebuild_index(signatures)
    assert (exact, bands) == (dict(state.exact), dict(state.bands))
    old = dedupe.DedupeState(exact=exact, bands=bands, signatures=signatures)
    verdict = dedupe.check_and_remember(_article("b", text + " more"), old, now=INGEST + 1)
    assert (verdict.kind, verdict.duplicate_of) == ("near", "a")
    assert not dedupe.check_and_remember(_article("a", text), old, now=INGEST + 2).is_duplicate


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=40), st.integers(1, 3))
def test_short_band_keys_at_once_equal_them_one_by_one(values: list[int],
                                                       rows_per_band: int) -> None:
    """The band index's short keys computed on the signature at once (numpy's wrapping
    uint64) are those of each band key folded in Python's unbounded ints."""
    signature = np.array(values, dtype=np.uint32)
    assert dedupe.short_band_keys(signature, rows_per_band) == [
        dedupe.short_band_key(k) for k in dedupe.lsh_band_keys(signature, rows_per_band)]


def test_band_keys_are_distinct_integers_per_band() -> None:
    keys = dedupe.lsh_band_keys([7] * 128)
    assert len(keys) == 64 and len(set(keys)) == 64  # equal values, different bands
    assert all(isinstance(k, int) for k in keys)
    assert keys[1] == (1 << 64) | (7 << 32) | 7


def test_band_index_merges_its_recent_entries_without_changing_any_bucket() -> None:
    """The arrays and the dict of recent entries are one index: merging often (every 7
    entries) or never gives the same buckets, candidates, caps and evictions."""
    texts = [" ".join(f"w{(i * 7 + j) % 40} x{j % 3}" for j in range(30)) for i in range(30)]
    config = dedupe.DedupeConfig(max_band_entries=4, threshold=1.1)  # all unique, caps bite
    merged = dedupe.DedupeState(exact={}, signatures={}, bands=dedupe.BandIndex(merge_at=7))
    unmerged = dedupe.DedupeState(exact={}, signatures={}, bands=dedupe.BandIndex(merge_at=10**9))
    for n, text in enumerate(texts):
        for state in (merged, unmerged):
            dedupe.check_and_remember(_article(f"a{n:02d}", text), state, now=n, config=config)
    assert merged.bands._keys.size > 0 and unmerged.bands._keys.size == 0
    assert dict(merged.bands) == dict(unmerged.bands)
    assert max(len(_ids(b)) for b in merged.bands.values()) == 4
    keys = dedupe.lsh_band_keys(dedupe.minhash_signature(texts[3]))
    assert merged.bands.candidates(keys) == unmerged.bands.candidates(keys)
    for state in (merged, unmerged):
        dedupe.evict_older_than(state, cutoff_ts=15)
    assert dict(merged.bands) == dict(unmerged.bands)
    assert {i for b in merged.bands.values() for i in b} <= {f"a{n:02d}" for n in range(15, 30)}


def _similar_texts(n: int) -> list[str]:
    """Texts that share a few word pairs (so that their bands often collide, while they stay
    far below the threshold), then two reposts."""
    shared = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    base = [f"{shared} {_synthetic(1000 + i, 40)}" for i in range(n)]
    return [*base, base[2] + " one more line", base[5]]


def test_candidates_are_screened_without_reading_the_table() -> None:
    """The band index holds the low bits of its articles' signatures: a new article reads the
    table for its own id, and for a candidate only when it passes the screen (here the one
    copy it is a near duplicate of), however many candidates its bands name."""
    signatures = CountingDict()
    state = dedupe.DedupeState(exact={}, signatures=signatures)
    verdicts, candidates, reads = [], 0, []
    for n, text in enumerate(_similar_texts(30)):
        keys = dedupe.lsh_band_keys(dedupe.minhash_signature(text))
        candidates += len(state.bands.candidates(keys))
        signatures.reads = 0
        verdicts.append(dedupe.check_and_remember(_article(f"a{n:02d}", text), state,
                                                  now=float(n)))
        reads.append(signatures.reads)
    assert candidates > 60  # screened against the index's held signatures, none read
    assert [v.duplicate_of for v in verdicts] == [None] * 30 + ["a02", "a05"]
    # its own id (a replay gets its first verdict back); the near copy also reads a02's record,
    # the exact copy none but its own
    assert reads == [1] * 30 + [2, 1]


def test_the_screen_passes_on_low_bits_and_the_full_signature_decides() -> None:
    """A candidate whose values agree with the article's in their low 8 bits but not in full
    passes the screen and is then rejected by its stored signature: the verdict is that of the
    full values."""
    rng = np.random.default_rng(7)
    width = dedupe.DEFAULT_CONFIG.num_perm
    original = rng.integers(0, 2**32, width, dtype=np.uint64).astype(np.uint32)
    lookalike = original ^ np.uint32(1 << 20)  # every low 8 bits equal, no value equal
    lookalike[:2] = original[:2]  # one band in common: a candidate
    state = _state()
    state.signatures["look"] = {"ts": INGEST, "kind": "unique",
                                "sig": dedupe.pack_signature(lookalike), "banded": True}
    state.bands.add("look", dedupe.short_band_keys(lookalike), 50, lookalike, INGEST, new=True)
    assert state.bands.candidates(dedupe.lsh_band_keys(original)) == ["look"]
    probe = dedupe.short_band_keys(original)
    assert dedupe.held_signature(original).tolist() == dedupe.held_signature(lookalike).tolist()
    assert dedupe._best_candidate("new", original, probe, state, 0.2) is None
    state.signatures["look"]["sig"] = dedupe.pack_signature(original)  # now equal in full
    assert dedupe._best_candidate("new", original, probe, state, 0.2) == ("look", 1.0)


def test_an_index_rebuilt_from_the_table_answers_as_the_incremental_one() -> None:
    """After a (re)assignment the worker rebuilds the index, signatures included, from the
    table alone: its verdicts are those of the index built article by article."""
    texts = _similar_texts(30)
    full = _state()
    for n, text in enumerate(texts):
        dedupe.check_and_remember(_article(f"a{n:02d}", text), full, now=float(n))
    exact, rebuilt = dedupe.rebuild_index(full.signatures)
    assert dict(rebuilt) == dict(full.bands)
    in_chunks_exact: dict[str, object] = {}
    in_chunks = dedupe.BandIndex()
    progress = list(dedupe.rebuild_index_into(in_chunks_exact, in_chunks, full.signatures,
                                              chunk=7))
    assert progress == [7, 14, 21, 28, 30]  # the worker's event loop runs between these
    assert (in_chunks_exact, dict(in_chunks)) == (exact, dict(rebuilt))
    by_table = dedupe.DedupeState(exact=exact, signatures=dict(full.signatures), bands=rebuilt)
    by_index = dedupe.DedupeState(exact=dict(full.exact), signatures=dict(full.signatures),
                                  bands=full.bands)
    for n, text in enumerate([texts[3] + " tail", texts[11] + " more", texts[20][::-1]]):
        probe = _article(f"p{n}", text)
        assert (dedupe.check_and_remember(probe, by_table, now=100.0 + n)
                == dedupe.check_and_remember(probe, by_index, now=100.0 + n))


def test_a_fingerprint_made_elsewhere_gives_the_verdicts_computed_here() -> None:
    """The normalize stage sends each text's fingerprint along; dedupe reads it instead of
    computing it, and computes it when it is missing, garbled or made with other settings."""
    texts = _similar_texts(12)  # the last two are reposts
    other = dedupe.DedupeConfig(shingle_size=3)
    bad = [None, b"", b"\x02" + dedupe.text_fingerprint(texts[0])[1:],
           dedupe.text_fingerprint(texts[0], other)]
    computed, given, garbled = _state(), _state(), _state()
    for n, text in enumerate(texts):
        article = _article(f"a{n:02d}", text)
        fingerprint = dedupe.text_fingerprint(text)
        expected = dedupe.check_and_remember(article, computed, now=float(n))
        assert dedupe.check_and_remember(article, given, now=float(n),
                                         fingerprint=fingerprint) == expected
        assert dedupe.check_and_remember(article, garbled, now=float(n),
                                         fingerprint=bad[n % len(bad)]) == expected
    assert dict(given.signatures) == dict(computed.signatures) == dict(garbled.signatures)
    assert dict(given.bands) == dict(computed.bands)
    assert any(v.get("kind") != "unique" for v in computed.signatures.values())
    # the fingerprint is what is read: one made of another text stands for the article's
    borrowed = _state()
    dedupe.check_and_remember(_article("x", texts[0]), borrowed, now=0.0,
                              fingerprint=dedupe.text_fingerprint(texts[1]))
    assert borrowed.signatures["x"]["sig"] == computed.signatures["a01"]["sig"]
