"""Merge semantics, idempotence, reposts, expiry, diffs and order independence of the timeline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.models import (
    DuplicateNotice,
    EventMention,
    MentionEvidence,
    Place,
    TimelineEntry,
)
from streams.errors import RejectedInput
from streams.timeline import (
    CoalescedChanges,
    CompactMentions,
    KnownKeys,
    PackedDocs,
    TimelineChange,
    TimelineState,
    actor_country,
    apply_duplicate,
    apply_mention,
    apply_mentions,
    build_timeline,
    cameo_table,
    diff_timelines,
    empty_derived,
    entry_id_for,
    expire,
    merge_key_compatible,
    pause_after_merge,
    rebuild_derived,
    rebuild_derived_into,
    replay_changes,
    retract_mention,
    share_strings,
)

T0 = datetime(2024, 6, 20, tzinfo=UTC).timestamp()


def mention(mid: str, **over: Any) -> EventMention:
    """A synthetic mention: RUSGOV signs with PRKGOV on 2024-06-19 unless overridden."""
    fields: dict[str, Any] = {
        "mention_id": mid,
        "article_id": f"art-{mid}",
        "wire_id": f"art-{mid}",
        "url": f"https://outlet-{mid}.example/news/{mid}",
        "outlet": f"outlet-{mid}.example",
        "lang": "en",
        "quote": f"Synthetic sentence {mid}.",
        "cameo_code": "057",
        "source_actor": "RUSGOV",
        "target_actor": "PRKGOV",
        "actors": [],
        "date": "2024-06-19",
        "date_precision": "day",
        "goldstein": 8.0,
        "ingested_at": T0,
        "extractor_version": "1.0",
    }
    fields.update(over)
    fields.setdefault("cameo_root", fields["cameo_code"][:2])
    return EventMention(**fields)


def notice(article_id: str, duplicate_of: str, outlet: str, at: float = T0) -> DuplicateNotice:
    return DuplicateNotice(
        article_id=article_id, duplicate_of=duplicate_of, kind="near", similarity=0.95,
        url=f"https://{outlet}/{article_id}", outlet=outlet, ingested_at=at,
    )


def run(*mentions: EventMention) -> tuple[TimelineState, list[TimelineChange]]:
    state = TimelineState.in_memory()
    changes: list[TimelineChange] = []
    for m in mentions:
        changes += apply_mention(state, m)
    return state, changes


def only(state: TimelineState) -> TimelineEntry:
    entries = list(state.timeline().values())
    assert len(entries) == 1, entries
    return entries[0]


# ----------------------------------------------------------------- compatibility rules


def test_dates_compatible_at_their_precisions() -> None:
    day = mention("a", date="2024-06-19")
    assert merge_key_compatible(day, mention("b", date="2024-06", date_precision="month"))
    assert merge_key_compatible(day, mention("b", date="2024", date_precision="year"))
    assert not merge_key_compatible(day, mention("b", date="2024-07", date_precision="month"))
    assert not merge_key_compatible(day, mention("b", date="2023", date_precision="year"))
    assert not merge_key_compatible(day, mention("b", date="2024-06-21"))


def test_one_day_apart_needs_same_code_and_another_story() -> None:
    day = mention("a", date="2024-06-19")
    assert merge_key_compatible(day, mention("b", date="2024-06-18"))
    assert not merge_key_compatible(day, mention("b", date="2024-06-18", cameo_code="051"))
    same_story = mention("b", date="2024-06-18", article_id="art-a", wire_id="art-a")
    assert not merge_key_compatible(day, same_story)


def test_actor_dyad_ignores_direction_and_granularity() -> None:
    a = mention("a", source_actor="RUSGOV", target_actor="PRKGOV")
    assert merge_key_compatible(a, mention("b", source_actor="PRK", target_actor="RUS"))
    assert merge_key_compatible(a, mention("b", source_actor="RUSMIL", target_actor="PRK"))
    assert not merge_key_compatible(a, mention("b", source_actor="USAGOV", target_actor="PRK"))
    # bodies are kept whole: EU and NATO are actors of their own
    eu = mention("c", source_actor="EU", target_actor="PRK", cameo_code="163")
    assert merge_key_compatible(eu, mention("d", source_actor="PRKGOV", target_actor="EU",
                                            cameo_code="163"))
    assert not merge_key_compatible(eu, mention("d", source_actor="NATO", target_actor="PRK",
                                                cameo_code="163"))


def test_family_not_leaf_and_story_conflicts() -> None:
    a = mention("a", cameo_code="042")
    assert merge_key_compatible(a, mention("b", cameo_code="046"))
    assert not merge_key_compatible(a, mention("b", cameo_code="057"))
    # one story reporting two actions of one family reports two events
    assert not merge_key_compatible(a, mention("b", cameo_code="046", wire_id="art-a"))


def test_malformed_mentions_are_rejected() -> None:
    state = TimelineState.in_memory()
    with pytest.raises(RejectedInput):
        apply_mention(state, mention("a", date="June", date_precision="month"))
    with pytest.raises(RejectedInput):
        apply_mention(state, mention("a", date="2024-02-30"))
    with pytest.raises(RejectedInput):
        apply_mention(state, mention("a", cameo_code="57", cameo_root="05"))
    with pytest.raises(RejectedInput):
        apply_mention(state, mention("a", source_actor=""))
    assert not state.mentions and not state.entries and not state.index


# ----------------------------------------------------------------- merge semantics


def test_cross_language_reports_merge_into_one_entry() -> None:
    state, _ = run(
        mention("en1", lang="en", outlet="wire-a.example"),
        mention("ru1", lang="ru", outlet="wire-b.example", source_actor="PRKGOV",
                target_actor="RUSGOV", quote="Синтетическое предложение."),
        mention("ko1", lang="ko", outlet="wire-c.example", source_actor="RUS",
                target_actor="PRK", quote="합성 문장.", cameo_code="05"),
    )
    entry = only(state)
    assert entry.mention_count == 3
    assert entry.independent_source_count == 3
    assert entry.languages == ["en", "ko", "ru"]
    assert entry.sources == ["wire-a.example", "wire-b.example", "wire-c.example"]
    assert entry.cameo_code == "057"  # the generic 05 supports 057
    assert entry.actors == ["PRK", "PRKGOV", "RUS", "RUSGOV"]
    assert (entry.source_actor, entry.target_actor) == ("PRK", "RUS") or entry.source_actor
    assert entry.summary.endswith("(057) on 19 June 2024")
    assert entry.id == entry_id_for("en1")


def test_summary_from_majority_direction_and_cameo_table() -> None:
    state, _ = run(mention("a"), mention("b"), mention("c", source_actor="PRKGOV",
                                                       target_actor="RUSGOV"))
    entry = only(state)
    assert (entry.source_actor, entry.target_actor) == ("RUSGOV", "PRKGOV")
    assert entry.summary == "RUSGOV and PRKGOV sign formal agreement (057) on 19 June 2024"


def test_same_day_distinct_events_stay_distinct() -> None:
    state, _ = run(
        mention("sign1", cameo_code="057"),
        mention("sign2", cameo_code="057"),
        mention("meet1", cameo_code="043"),
        mention("meet2", cameo_code="046"),
        mention("usa", cameo_code="111", source_actor="USAGOV", target_actor="PRK"),
    )
    entries = sorted(state.timeline().values(), key=lambda e: e.cameo_root)
    assert [(e.cameo_root, e.mention_count) for e in entries] == [("04", 2), ("05", 2), ("11", 1)]


def test_single_story_with_two_actions_of_one_family_gives_two_entries() -> None:
    state, _ = run(
        mention("talks", cameo_code="046", article_id="art-x", wire_id="art-x"),
        mention("reception", cameo_code="043", article_id="art-x", wire_id="art-x"),
    )
    assert len(state.entries) == 2


def test_month_mention_attaches_only_when_unambiguous() -> None:
    june = {"date": "2024-06", "date_precision": "month"}
    state, _ = run(mention("day", cameo_code="042"), mention("vague", cameo_code="040", **june))
    assert only(state).mention_count == 2
    assert only(state).date == "2024-06-19"
    # a second June visit makes "in June" ambiguous: it leaves and stands alone
    state, _ = run(mention("day", cameo_code="042"), mention("vague", cameo_code="040", **june))
    changes = apply_mention(state, mention("other", cameo_code="046", date="2024-06-02"))
    assert sorted(e.mention_count for e in state.timeline().values()) == [1, 1, 1]
    assert sorted(c.entry_id for c in changes if c.kind == "upsert") == sorted(
        entry_id_for(m) for m in ("day", "vague", "other")
    )
    # ...unless its own code singles one out
    state, _ = run(
        mention("day", cameo_code="042"), mention("vague", cameo_code="042", **june),
        mention("other", cameo_code="046", date="2024-06-02"),
    )
    assert sorted(e.mention_count for e in state.timeline().values()) == [1, 2]


def test_year_mention_joins_the_only_event_of_its_family_that_year() -> None:
    state, _ = run(
        mention("m", cameo_code="062", date="2023-10", date_precision="month"),
        mention("y", cameo_code="062", date="2023", date_precision="year", background=True),
    )
    entry = only(state)
    assert (entry.date, entry.date_precision) == ("2023-10", "month")
    assert not entry.background


def test_merge_tombstones_the_absorbed_entry() -> None:
    # 18th and 20th are two entries; a report of the 19th bridges them
    state, _ = run(mention("b", date="2024-06-18"), mention("c", date="2024-06-20"))
    assert len(state.entries) == 2
    changes = apply_mention(state, mention("a2", date="2024-06-19"))
    entry = only(state)
    assert entry.id == entry_id_for("a2")
    tomb = sorted((c.entry_id, c.merged_into) for c in changes if c.kind == "tombstone")
    assert tomb == sorted([(entry_id_for("b"), entry.id), (entry_id_for("c"), entry.id)])
    assert [c.kind for c in changes] == ["upsert", "tombstone", "tombstone"]


def test_date_consensus_and_alternatives() -> None:
    state, _ = run(
        mention("a", date="2024-06-19", outlet="one.example"),
        mention("b", date="2024-06-19", outlet="two.example"),
        mention("c", date="2024-06-18", outlet="three.example"),
        mention("d", date="2024-06", date_precision="month", outlet="four.example"),
    )
    entry = only(state)
    assert (entry.date, entry.date_precision) == ("2024-06-19", "day")
    assert [(a.date, a.support, a.sources) for a in entry.date_alternatives] == [
        ("2024-06-18", 2, ["three.example"])  # the month report supports both days
    ]
    assert entry.confidence < run(mention("a"), mention("b"))[0].timeline().popitem()[1].confidence


def test_more_precise_date_wins_a_tie() -> None:
    state, _ = run(
        mention("a", date="2024-06", date_precision="month"),
        mention("b", date="2024-06-19"),
    )
    assert only(state).date == "2024-06-19"
    assert only(state).date_alternatives == []


def test_scores_are_bounded_and_grow_with_support() -> None:
    one = only(run(mention("a"))[0])
    three = only(run(mention("a"), mention("b"), mention("c"))[0])
    for entry in (one, three):
        assert 0 <= entry.significance <= 1 and 0 <= entry.confidence <= 1
    assert three.significance > one.significance
    assert three.confidence > one.confidence


def test_fields_derived_from_mentions_only() -> None:
    state, _ = run(
        mention("a", ingested_at=T0 + 50, extractor_version="1.9"),
        mention("b", ingested_at=T0 + 10, extractor_version="1.10", background=True),
    )
    entry = only(state)
    assert (entry.first_seen, entry.updated) == (T0 + 10, T0 + 50)
    assert entry.extractor_version == "1.10"
    assert not entry.background
    assert [m.mention_id for m in entry.mentions] == ["a", "b"]


# ----------------------------------------------------------------- idempotence and reposts


def test_reapplying_a_mention_changes_nothing() -> None:
    state, _ = run(mention("a"), mention("b"))
    before = (dict(state.mentions), dict(state.entries), dict(state.index))
    assert apply_mention(state, mention("a")) == []
    assert apply_mention(state, mention("b")) == []
    assert (dict(state.mentions), dict(state.entries), dict(state.index)) == before
    assert only(state).mention_count == 2


def test_two_payloads_for_one_mention_id_resolve_the_same_in_any_order() -> None:
    old, new = mention("a", extractor_version="1.0"), mention("a", extractor_version="1.1",
                                                               date="2024-06-18")
    first, _ = run(old, new)
    second, _ = run(new, old)
    assert first.timeline() == second.timeline()
    assert only(first).date == "2024-06-18"


def test_repost_adds_an_outlet_not_an_independent_source() -> None:
    state, _ = run(mention("a", outlet="origin.example"))
    changes = apply_duplicate(state, notice("copy-1", "art-a", "mirror.example", at=T0 + 99))
    entry = only(state)
    assert [c.kind for c in changes] == ["upsert"]
    assert entry.sources == ["mirror.example", "origin.example"]
    assert entry.independent_source_count == 1
    assert entry.mention_count == 1
    assert entry.updated == T0 + 99
    assert apply_duplicate(state, notice("copy-1", "art-a", "mirror.example", at=T0 + 99)) == []


def test_repost_notice_before_the_original_still_counts() -> None:
    early = TimelineState.in_memory()
    assert apply_duplicate(early, notice("copy-1", "art-a", "mirror.example")) == []
    apply_mention(early, mention("a", outlet="origin.example"))
    late, _ = run(mention("a", outlet="origin.example"))
    apply_duplicate(late, notice("copy-1", "art-a", "mirror.example"))
    assert early.timeline() == late.timeline()
    assert only(early).sources == ["mirror.example", "origin.example"]


def test_two_copies_of_one_wire_story_count_once() -> None:
    state, _ = run(
        mention("a", article_id="wire-1", wire_id="wire-1", outlet="one.example"),
        mention("b", article_id="copy-1", wire_id="wire-1", outlet="two.example"),
    )
    entry = only(state)
    assert (entry.mention_count, entry.independent_source_count) == (2, 1)


# ----------------------------------------------------------------- expiry and diffs


def test_expire_needs_old_event_and_old_evidence() -> None:
    state, _ = run(
        mention("old", date="2024-01-10", ingested_at=T0 - 200 * 86400),
        mention("old-news-recent", date="2024-01-10", cameo_code="111", ingested_at=T0),
        mention("recent", date="2024-06-19", ingested_at=T0 - 200 * 86400),
    )
    assert len(state.entries) == 3
    changes = expire(state, horizon_days=90, now=T0)
    assert [(c.kind, c.entry_id) for c in changes] == [("expire", entry_id_for("old"))]
    assert changes[0].entry is not None and changes[0].entry.mentions[0].mention_id == "old"
    assert "old" not in state.mentions
    assert len(state.entries) == 2
    assert expire(state, horizon_days=90, now=T0) == []
    # the state stays consistent: a new mention still merges as in a batch
    apply_mention(state, mention("late", date="2024-06-19", ingested_at=T0))
    rest = [mention("old-news-recent", date="2024-01-10", cameo_code="111", ingested_at=T0),
            mention("recent", date="2024-06-19", ingested_at=T0 - 200 * 86400),
            mention("late", date="2024-06-19", ingested_at=T0)]
    assert state.timeline() == {e.id: e for e in build_timeline(rest)}


def test_expire_forgets_stale_reposts_of_uncited_articles() -> None:
    state = TimelineState.in_memory()
    apply_duplicate(state, notice("copy", "nobody-cites-me", "x.example", at=T0 - 400 * 86400))
    expire(state, horizon_days=90, now=T0)
    assert dict(state.reposts) == {}


def test_diff_timelines_for_reprocessing() -> None:
    old = {e.id: e for e in build_timeline([mention("a"), mention("b", date="2024-06-21")])}
    new = {e.id: e for e in build_timeline(
        [mention("a"), mention("b", date="2024-06-20"), mention("c", cameo_code="046")]
    )}
    changes = diff_timelines(old, new)
    kinds = [(c.kind, c.entry_id, c.merged_into) for c in changes]
    merged = entry_id_for("a")
    assert ("tombstone", entry_id_for("b"), merged) in kinds
    assert ("upsert", merged, None) in kinds and ("upsert", entry_id_for("c"), None) in kinds
    assert replay_changes(changes, dict(old)) == new
    assert diff_timelines(new, new) == []
    gone = diff_timelines(new, {})
    assert {c.merged_into for c in gone} == {None}


def test_cameo_table_covers_every_root() -> None:
    table = cameo_table()
    assert sorted(table.roots) == [f"{i:02d}" for i in range(1, 21)]
    assert table.lookup("057")[1] == "{source} and {target} sign formal agreement"
    assert table.lookup("0571")[0] == "Sign formal agreement"  # falls back to the parent


# ----------------------------------------------------------------- order independence


class JsonTable(MutableMapping[str, Any]):
    """Stores values as JSON text, like a Faust table with the json serializer."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)


def json_state() -> TimelineState:
    return TimelineState(JsonTable(), JsonTable(), JsonTable(), JsonTable())


def index_as_json(index: Mapping[str, Any]) -> dict[str, Any]:
    """Index documents as a JSON table gives them back (month rows as lists, not keys)."""
    return dict(json.loads(json.dumps(dict(index))))


DATES = [
    ("2023-12-31", "day"), ("2024-01-01", "day"), ("2024-01-02", "day"),
    ("2024-05-31", "day"), ("2024-06-01", "day"), ("2024-06-19", "day"), ("2024-06-20", "day"),
    ("2024-06", "month"), ("2024-05", "month"), ("2024-01", "month"), ("2023-12", "month"),
    ("2024", "year"), ("2023", "year"),
]
CODES = ["04", "040", "042", "043", "046", "051", "057"]
PARTIALS = ["--06-19", "---19", "---01", "---31", "--01-01", "-W-3", "--06", "--05-31"]
ACTORS = [("RUSGOV", "PRKGOV"), ("PRK", "RUS"), ("RUSMIL", "PRK"), ("USAGOV", "PRK")]


@st.composite
def mention_sets(draw: st.DrawFn) -> tuple[list[EventMention], list[DuplicateNotice]]:
    n = draw(st.integers(min_value=1, max_value=16))
    out: list[EventMention] = []
    for i in range(n):
        day, prec = draw(st.sampled_from(DATES))
        src, tgt = draw(st.sampled_from(ACTORS))
        wire = draw(st.sampled_from(["w1", "w2", "w3", "w4"]))
        article = draw(st.sampled_from([wire, f"{wire}-copy"]))
        mid = f"m{i:02d}" if draw(st.integers(0, 5)) else f"m{max(i - 1, 0):02d}"  # id reuse
        if draw(st.integers(0, 3)) == 0:  # a floating mention of an undated article
            partial = draw(st.sampled_from(PARTIALS))
            undated = draw(st.sampled_from(["u1", "u2"]))
            out.append(mention(
                mid, date=partial, date_anchor=partial, date_precision="month"
                if partial == "--06" else "day", cameo_code=draw(st.sampled_from(CODES)),
                source_actor=src, target_actor=tgt, wire_id=undated, article_id=undated,
                ingested_at=T0 + draw(st.integers(0, 3)),
                extractor_version=draw(st.sampled_from(["1.0", "1.1"])),
            ))
            continue
        out.append(mention(
            mid, date=day, date_precision=prec, cameo_code=draw(st.sampled_from(CODES)),
            source_actor=src, target_actor=tgt, wire_id=wire, article_id=article,
            outlet=f"{article}.example", lang=draw(st.sampled_from(["en", "ru", "ko"])),
            goldstein=draw(st.sampled_from([1.0, 3.5, 7.0, -2.0])),
            ingested_at=T0 + draw(st.integers(0, 3)),
            extractor_version=draw(st.sampled_from(["1.0", "1.1"])),
            background=draw(st.booleans()),
        ))
    notices = [
        notice(f"r{j}", draw(st.sampled_from(["w1", "w2", "w1-copy", "w9"])),
               draw(st.sampled_from(["m1.example", "m2.example"])), at=T0 + draw(st.integers(0, 9)))
        for j in range(draw(st.integers(0, 3)))
    ]
    return out, notices


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mention_sets(), seed=st.randoms(use_true_random=False), as_json=st.booleans())
def test_any_order_with_replays_equals_the_batch(
    data: tuple[list[EventMention], list[DuplicateNotice]], seed: Any, as_json: bool
) -> None:
    mentions, notices = data
    expected = {e.id: e for e in build_timeline(mentions, notices)}
    events: list[EventMention | DuplicateNotice] = [*mentions, *notices]
    events += seed.sample(events, k=min(len(events), 4))  # crash replays: applied again
    seed.shuffle(events)
    state = json_state() if as_json else TimelineState.in_memory()
    published: dict[str, TimelineEntry] = {}
    for event in events:
        if isinstance(event, EventMention):
            changes = apply_mention(state, event)
        else:
            changes = apply_duplicate(state, event)
        replay_changes(changes, published)
    assert state.timeline() == expected
    assert published == expected  # the topic's consumers see the same timeline


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mention_sets(), seed=st.randoms(use_true_random=False), as_json=st.booleans())
def test_micro_batches_equal_the_batch(
    data: tuple[list[EventMention], list[DuplicateNotice]], seed: Any, as_json: bool
) -> None:
    """apply_mentions over batches of any size, replays and one id twice in a batch included,
    leaves the state one-at-a-time merging leaves, and publishes the same timeline."""
    mentions, notices = data
    expected = {e.id: e for e in build_timeline(mentions, notices)}
    stream = [*mentions, *seed.sample(mentions, k=min(len(mentions), 4))]
    seed.shuffle(stream)
    state = json_state() if as_json else TimelineState.in_memory()
    one_by_one = TimelineState.in_memory()
    published: dict[str, TimelineEntry] = {}
    for notice in notices:
        replay_changes(apply_duplicate(state, notice), published)
        apply_duplicate(one_by_one, notice)
    at = 0
    while at < len(stream):
        size = seed.randint(1, 6)
        replay_changes(apply_mentions(state, stream[at:at + size]), published)
        at += size
    for m in stream:
        apply_mention(one_by_one, m)
    assert state.timeline() == expected
    assert published == expected
    assert index_as_json(state.index) == index_as_json(one_by_one.index)


def test_a_batch_with_a_bad_mention_changes_nothing() -> None:
    state = TimelineState.in_memory()
    with pytest.raises(RejectedInput):
        apply_mentions(state, [mention("a"), mention("b", date="2024-02-30")])
    assert not state.mentions and not state.index and not state.entries


def test_a_batch_merges_each_entry_once() -> None:
    """Five reports of one event in one batch: one upsert of the entry, not five."""
    state = TimelineState.in_memory()
    batch = [mention(f"m{i}", article_id=f"w{i}", wire_id=f"w{i}") for i in range(5)]
    changes = apply_mentions(state, batch)
    assert [c.kind for c in changes] == ["upsert"]
    assert changes[0].entry is not None and changes[0].entry.mention_count == 5


def test_apply_mention_is_cheap() -> None:
    """Coarse guard only (the report quotes the measured figure): a busy bucket stays fast."""
    state = TimelineState.in_memory()
    mentions = [
        mention(f"p{i:04d}", date=f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                cameo_code=CODES[i % len(CODES)], wire_id=f"w{i % 97}", article_id=f"w{i % 97}")
        for i in range(600)
    ]
    start = time.perf_counter()
    for m in mentions:
        apply_mention(state, m)
    per_call = (time.perf_counter() - start) / len(mentions)
    assert per_call < 0.02


def _bucket(m: EventMention) -> tuple[str, tuple[str, ...]]:
    return m.cameo_root, tuple(sorted((actor_country(m.source_actor),
                                       actor_country(m.target_actor))))


def period_groups(items: list[EventMention]) -> list[list[EventMention]]:
    """Rule for mentions of one period, naively: per bucket and date, code groups merged once
    two stories report it, unless a story reports both codes (sorted codes, first fitting)."""
    groups: list[list[EventMention]] = []
    for day, where in sorted({(m.date, _bucket(m)) for m in items}):
        same = [m for m in items if m.date == day and _bucket(m) == where]
        codes = sorted({m.cameo_code for m in same})
        if len({m.wire_id for m in same}) < 2:
            groups += [[m for m in same if m.cameo_code == c] for c in codes]
            continue
        apart = {(m.cameo_code, x.cameo_code) for m in same for x in same
                 if m.wire_id == x.wire_id and m.cameo_code != x.cameo_code}
        placed: list[list[str]] = []
        for code in codes:
            home = next((g for g in placed if not any((code, c) in apart for c in g)), None)
            if home is None:
                placed.append([code])
            else:
                home.append(code)
        groups += [[m for m in same if m.cameo_code in g] for g in placed]
    return groups


def day_clusters(days: list[EventMention]) -> list[list[EventMention]]:
    """Rule 1: same-day groups, then groups of consecutive days sharing a code from different
    stories join (transitively)."""

    def linked(a: list[EventMention], b: list[EventMention]) -> bool:
        return any(
            x.cameo_code == y.cameo_code and x.wire_id != y.wire_id and _bucket(x) == _bucket(y)
            and abs((date.fromisoformat(x.date) - date.fromisoformat(y.date)).days) == 1
            for x in a for y in b
        )

    merged: list[list[EventMention]] = []
    for g in period_groups(days):
        joined = [h for h in merged if linked(g, h)]
        merged = [h for h in merged if h not in joined] + [g + [x for h in joined for x in h]]
    return merged


def reference_partition(mentions: list[EventMention]) -> set[frozenset[str]]:
    """The documented clustering, naively (quadratic): day clusters, then coarse mentions
    attached through merge_key_compatible where exactly one cluster fits (narrowed first to
    the clusters with a compatible member of the same code: a cluster that spans a month's end
    has the code only if one of its members in the period does)."""
    clusters = day_clusters([m for m in mentions if m.date_precision == "day"])
    for precision in ("month", "year"):
        unattached = []
        attach: list[tuple[list[EventMention], EventMention]] = []
        for m in (x for x in mentions if x.date_precision == precision):
            fits = [c for c in clusters if any(merge_key_compatible(m, x) for x in c)]
            narrowed = [c for c in fits if any(
                x.cameo_code == m.cameo_code and merge_key_compatible(m, x) for x in c)]
            chosen = narrowed or fits
            if len(chosen) == 1:
                attach.append((chosen[0], m))
            else:
                unattached.append(m)
        for cluster, m in attach:
            cluster.append(m)
        clusters += period_groups(unattached)
    return {frozenset(m.mention_id for m in c) for c in clusters}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mention_sets())
def test_fast_clustering_matches_the_documented_rules(
    data: tuple[list[EventMention], list[DuplicateNotice]],
) -> None:
    # the documented rules cluster dated mentions (floating ones are placed first)
    unique = [m for m in {m.mention_id: m for m in data[0]}.values() if m.date_anchor is None]
    built = {frozenset(m.mention_id for m in e.mentions) for e in build_timeline(unique)}
    assert built == reference_partition(unique)


def test_rebuild_repairs_derived_tables_after_a_partial_write() -> None:
    mentions = [mention(f"m{i}") for i in range(3)]
    state = TimelineState.in_memory()
    for m in mentions:
        apply_mention(state, m)
    expected = state.timeline()
    # a crash lost the derived writes of the last message, not its mention
    state.entries.clear()
    state.index.clear()
    fresh = rebuild_derived(state)
    assert fresh.timeline() == expected
    assert fresh.mentions == state.mentions and dict(fresh.reposts) == dict(state.reposts)


def test_retract_mention_removes_it_and_tombstones_an_emptied_entry() -> None:
    state = TimelineState.in_memory()
    apply_mention(state, mention("m1"))
    (entry_id,) = state.timeline()
    changes = retract_mention(state, "m1")
    assert [(c.kind, c.entry_id) for c in changes] == [("tombstone", entry_id)]
    assert state.timeline() == {} and retract_mention(state, "m1") == []


# ----------------------------------------------------------------- cross-source date anchoring


def floating(mid: str, partial: str, article: str = "undated", **over: Any) -> EventMention:
    """A mention of an article without a publication date: only a partial date is known."""
    precision = "month" if len(partial) == 4 else "day"
    return mention(mid, date=partial, date_anchor=partial, date_precision=precision,
                   article_id=article, wire_id=article, **over)


def test_floating_mention_waits_for_a_dated_report_then_is_upserted() -> None:
    state = TimelineState.in_memory()
    assert apply_mention(state, floating("f1", "---19")) == []
    assert state.timeline() == {} and "f1" in state.mentions
    changes = apply_mention(state, mention("d1", date="2024-06-19"))
    assert [c.kind for c in changes] == ["upsert"]
    (entry,) = state.timeline().values()
    assert entry.date == "2024-06-19" and entry.mention_count == 2
    evidence = {m.mention_id: m for m in entry.mentions}
    assert evidence["f1"].date == "2024-06-19"
    assert evidence["f1"].date_source == "anchored:d1" and evidence["d1"].date_source is None


def test_one_anchor_per_article_resolves_all_its_partial_dates() -> None:
    late = T0 + 86400 * 400  # ingested in July 2025
    mentions = [
        mention("d1", date="2025-07-12", cameo_code="043"),
        floating("f1", "---12", cameo_code="043", ingested_at=late),
        floating("f2", "---11", cameo_code="042", ingested_at=late),  # "the previous day"
        floating("f3", "-W-5", cameo_code="051", ingested_at=late),  # 12 July 2025: a Saturday
        floating("f4", "--07", cameo_code="010", source_actor="PRKGOV", target_actor="RUSGOV",
                 ingested_at=late),
    ]
    entries = build_timeline(mentions)
    placed = {m.mention_id: (m.date, m.date_precision) for e in entries for m in e.mentions}
    assert placed == {
        "d1": ("2025-07-12", "day"), "f1": ("2025-07-12", "day"), "f2": ("2025-07-11", "day"),
        "f3": ("2025-07-11", "day"), "f4": ("2025-07", "month"),
    }
    sources = {m.mention_id: m.date_source for e in entries for m in e.mentions}
    assert sources["f2"] == sources["f3"] == "anchored:d1"


def test_anchoring_needs_a_unique_year_month_and_compatible_reports() -> None:
    two_months = [mention("d1", date="2024-06-19"), mention("d2", date="2024-05-19"),
                  floating("f1", "---19")]
    assert "f1" not in {m.mention_id for e in build_timeline(two_months) for m in e.mentions}
    # the month in the partial date decides; places must overlap where both name some
    pyongyang = [{"name": "Pyongyang", "lat": 39.0, "lon": 125.7, "country": "PRK"}]
    moscow = [{"name": "Moscow", "lat": 55.7, "lon": 37.6, "country": "RUS"}]
    cases = [
        ([mention("d1", date="2024-06-19"), mention("d2", date="2024-05-19"),
          floating("f1", "--05-19")], "2024-05-19"),
        ([mention("d1", date="2024-06-19", places=pyongyang),
          mention("d2", date="2024-05-19", places=moscow),
          floating("f1", "---19", places=moscow)], "2024-05-19"),
        # another family of the same dyad anchors only when the family has no report that day
        ([mention("d1", date="2024-06-19", cameo_code="042"), floating("f1", "---19")],
         "2024-06-19"),
        # a report of the same story, or one after the floating mention arrived, is no anchor
        ([mention("d1", date="2024-06-19", article_id="undated", wire_id="undated"),
          floating("f1", "---19")], None),
        ([mention("d1", date="2024-06-19"), floating("f1", "---19", ingested_at=T0 - 86400 * 30)],
         None),
    ]
    for mentions, expected in cases:
        placed = {m.mention_id: m.date for e in build_timeline(mentions) for m in e.mentions}
        assert placed.get("f1") == expected, mentions


def test_anchoring_is_incremental_and_reversible() -> None:
    mentions = [floating("f1", "---19"), floating("f2", "--06-18", cameo_code="042"),
                mention("d1", date="2024-06-19"), mention("d2", date="2024-05-19", cameo_code="04"),
                mention("d3", date="2024-05-19")]
    expected = {e.id: e for e in build_timeline(mentions)}
    for order in (mentions, mentions[::-1], mentions[2:] + mentions[:2]):
        state = json_state()
        published: dict[str, TimelineEntry] = {}
        for m in order:
            replay_changes(apply_mention(state, m), published)
        assert state.timeline() == expected and published == expected
        fresh = rebuild_derived(state)
        assert fresh.timeline() == expected
        assert index_as_json(fresh.index) == index_as_json(state.index)
        assert dict(fresh.entries) == dict(state.entries)
    # the dated report d3 made the month ambiguous; retracting it anchors the article again
    state = TimelineState.in_memory()
    for m in mentions:
        apply_mention(state, m)
    assert not any(m.mention_id == "f1" for e in state.timeline().values() for m in e.mentions)
    published = dict(state.timeline())
    replay_changes(retract_mention(state, "d3"), published)
    assert published == state.timeline() == {e.id: e for e in build_timeline(mentions[:4])}
    assert any(m.mention_id == "f2" and m.date == "2024-06-18"
               for e in published.values() for m in e.mentions)


def test_unanchored_floating_mentions_expire_with_the_horizon() -> None:
    state = TimelineState.in_memory()
    apply_mention(state, floating("f1", "---19"))
    expire(state, horizon_days=30, now=T0 + 86400 * 10)
    assert "f1" in state.mentions
    expire(state, horizon_days=30, now=T0 + 86400 * 31)
    assert state.mentions == {} and state.index == {}


def test_malformed_partial_dates_are_rejected() -> None:
    for bad in ("--13-01", "---32", "-W-8", "June"):
        with pytest.raises(RejectedInput):
            apply_mention(TimelineState.in_memory(), floating("f1", bad))


def test_codes_one_story_reports_apart_stay_apart_when_others_report_them() -> None:
    # story A tells a pledge (030) and a military-cooperation intent (0312) the same day;
    # story B tells both too: two events of family 03, not one
    state, _ = run(
        mention("a1", cameo_code="030", cameo_root="03", wire_id="A", article_id="A"),
        mention("a2", cameo_code="0312", cameo_root="03", wire_id="A", article_id="A"),
        mention("b1", cameo_code="030", cameo_root="03", wire_id="B", article_id="B"),
        mention("b2", cameo_code="0312", cameo_root="03", wire_id="B", article_id="B"),
    )
    assert sorted(sorted(m.mention_id for m in e.mentions) for e in state.timeline().values()) \
        == [["a1", "b1"], ["a2", "b2"]]
    # a generic and a specific code from different stories are still one event
    state, _ = run(mention("g", cameo_code="040", cameo_root="04", wire_id="A", article_id="A"),
                   mention("s", cameo_code="046", cameo_root="04", wire_id="B", article_id="B"))
    assert len(state.timeline()) == 1


def test_evidence_is_capped_deterministically_but_counts_stay_whole() -> None:
    """An entry publishes at most MAX_EVIDENCE evidence items, the first of the published order
    among all its members, whatever the arrival order; counts and dates use every member."""
    from streams.timeline import MAX_EVIDENCE

    n = MAX_EVIDENCE + 30
    ms = [mention(f"m{i:03d}", outlet=f"o{(i * 37) % n:03d}.example",
                  ingested_at=T0 + i) for i in range(n)]
    state, _ = run(*ms)
    entry = only(state)
    assert entry.mention_count == n and entry.independent_source_count == n
    assert len(entry.mentions) == MAX_EVIDENCE
    assert [m.outlet for m in entry.mentions] == sorted(m.outlet or "" for m in ms)[:MAX_EVIDENCE]
    assert entry.updated == T0 + n - 1
    shuffled, _ = run(*ms[::-1])
    assert shuffled.timeline() == state.timeline()
    assert build_timeline(ms) == [entry]
    # a member that is not cited still leaves the entry when retracted
    uncited = next(m for m in ms if m.mention_id not in {e.mention_id for e in entry.mentions})
    retract_mention(state, uncited.mention_id)
    assert only(state).mention_count == n - 1
    assert rebuild_derived(state).timeline() == state.timeline()



@pytest.mark.parametrize("kept", [100_000, 0])
def test_an_entry_updated_member_by_member_equals_one_built_from_its_members(kept: int) -> None:
    """A big entry is kept as counts updated by the members that come and go: after cited
    members, the earliest and the latest one leave, payloads are replaced and members return,
    it equals the entry built from its members at once (evidence past the cap moves up) —
    and so it does when no counts are kept (RELWATCH_TIMELINE_AGGREGATE_MEMBERS=0)."""
    import random

    from streams import timeline

    previous = timeline.AGGREGATE_CACHE_MEMBERS
    timeline.set_aggregate_cache(kept)
    try:
        _member_by_member(random.Random(5))
    finally:
        timeline.set_aggregate_cache(previous)
    if kept:  # the counts were used: the entry was not rebuilt from its members each time
        assert timeline._AGGREGATE_SIZE["members"] > 0


def _member_by_member(rng: Any) -> None:
    from streams.timeline import MAX_EVIDENCE

    n = MAX_EVIDENCE + 40
    ms = {f"m{i:03d}": mention(
        f"m{i:03d}", outlet=f"o{rng.randrange(n):03d}.example", wire_id=f"w{i % 23}",
        article_id=f"a{i}", goldstein=rng.choice([0.1, 0.2, 0.3, -7.7, 1e-3]),
        tone=rng.uniform(-9, 9), lang=rng.choice(["en", "ru", "bg"]),
        places=[{"name": "Pyongyang", "lat": 39.03, "lon": 125.75, "country": "PRK"}]
        if i % 3 == 0 else [], ingested_at=T0 + rng.uniform(0, 1000)) for i in range(n)}
    state = TimelineState.in_memory()
    apply_mentions(state, list(ms.values()))
    present = dict(ms)
    for step in range(60):
        entry = only(state)
        if step % 4 == 0:  # a cited member leaves
            gone = entry.mentions[rng.randrange(len(entry.mentions))].mention_id
        elif step % 4 == 1:  # the earliest or latest report leaves
            pick = min if step % 8 == 1 else max
            gone = pick(present.values(), key=lambda m: m.ingested_at).mention_id
        else:
            gone = rng.choice(sorted(present))
        if step % 4 == 3:  # a newer extractor's payload replaces it
            present[gone] = ms[gone].model_copy(update={
                "extractor_version": f"1.{step}", "tone": rng.uniform(-9, 9),
                "quote": f"Revised at step {step}."})
            apply_mention(state, present[gone])
        else:
            retract_mention(state, gone)
            del present[gone]
        if step % 5 == 4:  # and one that left comes back
            back = rng.choice(sorted(set(ms) - set(present)))
            present[back] = ms[back]
            apply_mention(state, ms[back])
        assert state.timeline() == {e.id: e for e in build_timeline(present.values())}, step


def test_sums_kept_as_integers_equal_fsum_in_any_order() -> None:
    import math
    import random

    from streams.timeline import _fixed

    rng = random.Random(3)
    values = [rng.choice([0.1, -0.1, 1e16, -1e16, 3.3, 1e-300, 5e-324])
              * rng.uniform(-2, 2) for _ in range(500)]
    total = sum(_fixed(v) for v in values)
    assert total / (1 << 1074) == math.fsum(values)
    removed = values[:250]
    rest = total - sum(_fixed(v) for v in removed)
    assert rest / (1 << 1074) == math.fsum(values[250:])

# --- coalesced publishing -------------------------------------------------------------------
def _drain(waiting: CoalescedChanges) -> list[tuple[TimelineChange, bool]]:
    """Pop the waiting changes until none is left, as the worker's flush does."""
    out = []
    while waiting:
        out.append(waiting.pop())
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mention_sets(), seed=st.randoms(use_true_random=False),
       window=st.integers(min_value=1, max_value=8))
def test_coalesced_changes_leave_consumers_the_same_timeline(
    data: tuple[list[EventMention], list[DuplicateNotice]], seed: Any, window: int
) -> None:
    """Publishing each entry's last change per window of messages (the worker's coalescing)
    shows a consumer of the compacted topic the same timeline, with at most as many records."""
    mentions, notices = data
    events: list[EventMention | DuplicateNotice] = [*mentions, *notices]
    seed.shuffle(events)
    state = TimelineState.in_memory()
    every: dict[str, TimelineEntry] = {}
    coalesced: dict[str, TimelineEntry] = {}
    waiting = CoalescedChanges()
    n_every = n_coalesced = 0
    for n, event in enumerate(events, start=1):
        if isinstance(event, EventMention):
            changes = apply_mention(state, event)
        else:
            changes = apply_duplicate(state, event)
        replay_changes(changes, every)
        n_every += len(changes)
        for change in changes:
            waiting.add(change)
        if n % window == 0:
            sent = [change for change, _ in _drain(waiting)]
            n_coalesced += len(sent)
            replay_changes(sent, coalesced)
    sent = [change for change, _ in _drain(waiting)]
    n_coalesced += len(sent)
    replay_changes(sent, coalesced)
    assert coalesced == every == state.timeline()
    assert n_coalesced <= n_every
    assert len(waiting) == 0


def test_coalescing_keeps_the_last_change_per_entry_in_order_and_every_expiry() -> None:
    def entry(eid: str, tone: float) -> TimelineEntry:
        state = TimelineState.in_memory()
        apply_mention(state, mention("m1", tone=tone))
        only = next(iter(state.timeline().values()))
        return only.model_copy(update={"id": eid})

    waiting = CoalescedChanges()
    waiting.add(TimelineChange("upsert", "a", entry=entry("a", 1.0)))
    waiting.add(TimelineChange("upsert", "b", entry=entry("b", 1.0)))
    waiting.add(TimelineChange("upsert", "a", entry=entry("a", 2.0)), observe=False)
    waiting.add(TimelineChange("expire", "c", entry=entry("c", 1.0)))
    waiting.add(TimelineChange("upsert", "c", entry=entry("c", 3.0)))
    waiting.add(TimelineChange("tombstone", "b", merged_into="a"))
    drained = _drain(waiting)
    assert [(c.kind, c.entry_id) for c, _ in drained] == [
        ("upsert", "a"), ("expire", "c"), ("upsert", "c"), ("tombstone", "b")]
    assert drained[0][0].entry is not None and drained[0][0].entry.tone == 2.0
    assert drained[0][1] is False  # the replacing change's own flag
    assert _drain(waiting) == []
    waiting.add(TimelineChange("tombstone", "x"))
    waiting.add(TimelineChange("tombstone", "y"))
    assert waiting.pop()[0].entry_id == "x" and len(waiting) == 1
    waiting.pop()
    with pytest.raises(KeyError):
        waiting.pop()


# --- compact mention storage ----------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mention_sets(), seed=st.randoms(use_true_random=False))
def test_compact_mentions_give_the_same_timeline_as_dicts(
    data: tuple[list[EventMention], list[DuplicateNotice]], seed: Any
) -> None:
    """Mentions stored as JSON bytes behind a tiny cache (2 documents, so most reads decode),
    reposts behind their keys held in memory, and index documents marshalled but for the 2
    last used, merge exactly as plain dicts."""
    mentions, notices = data
    events: list[EventMention | DuplicateNotice] = [*mentions, *notices]
    seed.shuffle(events)
    plain = TimelineState.in_memory()
    backing: dict[str, Any] = {}
    compact = TimelineState(mentions=CompactMentions(backing, cache_size=2), entries={},
                            index=PackedDocs(cache_size=2), reposts=KnownKeys({}))
    for event in events:
        for state in (plain, compact):
            if isinstance(event, EventMention):
                apply_mention(state, event)
            else:
                apply_duplicate(state, event)
    assert compact.timeline() == plain.timeline()
    assert dict(compact.index) == dict(plain.index)
    assert all(isinstance(v, bytes) for v in backing.values())
    assert {k: json.loads(v) for k, v in backing.items()} == dict(plain.mentions)


def test_packed_docs_hold_documents_out_of_use_as_bytes_and_read_them_back_equal() -> None:
    """The nested kinds are marshalled once out of use (types and non-string keys kept); a
    document in use is the very object stored; the other kinds are never packed."""
    docs = PackedDocs(cache_size=2)
    groups = [["2024-06-19", "04", ["Pyongyang"], [["m1", "w1", "art1"]]]]
    tally = [{"2024-06": {"m1": [1, 2]}}, {}]
    month = [["m1", "2024-06-19", 0, "042", "w1", "m1"]]
    flat = ["m1", "m2"]
    docs["d|PRK-RUS|19|06"] = groups
    docs["a|art1"] = flat
    docs["m|PRK-RUS|04|2024-06"] = month
    assert docs["d|PRK-RUS|19|06"] is groups and docs.packed_bytes() == 0
    docs["t|art1"] = tally
    docs["r|art1"] = {"date": "2024-06-19", "by": ("m1", 3), 7: 1.5}
    assert docs.packed_bytes() > 0  # the anchor groups fell out of use
    assert docs["d|PRK-RUS|19|06"] == groups
    assert docs["d|PRK-RUS|19|06"] is docs["d|PRK-RUS|19|06"]  # in use again
    assert docs["a|art1"] is flat and docs["m|PRK-RUS|04|2024-06"] is month
    assert docs.get("a|none") is None
    assert docs.pop("t|art1") == tally and "t|art1" not in docs
    docs["s|PRK-RUS|04|2024-06"] = {"m1": [["04"], None]}
    docs["y|PRK-RUS|04|2024"] = []
    assert docs["r|art1"] == {"date": "2024-06-19", "by": ("m1", 3), 7: 1.5}
    assert sorted(docs) == ["a|art1", "d|PRK-RUS|19|06", "m|PRK-RUS|04|2024-06", "r|art1",
                            "s|PRK-RUS|04|2024-06", "y|PRK-RUS|04|2024"]
    del docs["r|art1"]
    with pytest.raises(KeyError):
        docs.pop("r|art1")
    assert len(docs) == 5 and docs.pop("r|art1", None) is None


def test_compact_mentions_read_legacy_dicts_and_forget_their_cache() -> None:
    doc = mention("m1").model_dump(mode="json")
    backing: dict[str, Any] = {"m1": doc}  # as an older changelog holds it
    store = CompactMentions(backing)
    assert store["m1"] == doc and "m1" in store and len(store) == 1
    store["m2"] = {**doc, "mention_id": "m2"}
    assert json.loads(backing["m2"])["mention_id"] == "m2"
    backing["m2"] = json.dumps({**doc, "mention_id": "m2", "tone": -1.0}).encode()
    assert store["m2"]["tone"] == doc["tone"]  # served from the cache
    store.clear_cache()
    assert store["m2"]["tone"] == -1.0  # read again from the backing table
    del store["m2"]
    assert "m2" not in backing and store.get("m2") is None


def test_documents_read_back_share_their_names_and_repeated_values() -> None:
    """Two mentions decoded apart hold one object per field name and per repeated value (the
    codes, actors, date, places), not a copy each, and are equal to what was stored."""
    place = Place(name="Vladivostok", lat=43.1, lon=131.9, country="RU")
    first, second = (mention(mid, places=[place], actors=["RUSGOV", "PRKGOV"])
                     for mid in ("m1", "m2"))
    backing: dict[str, Any] = {}
    store = CompactMentions(backing, cache_size=1)
    for m in (first, second):
        store[m.mention_id] = m.model_dump(mode="json")
    store.clear_cache()
    a, b = store["m1"], store["m2"]
    assert a == first.model_dump(mode="json") and b == second.model_dump(mode="json")
    assert all(x is y for x, y in zip(a, b, strict=True))  # the field names
    for name in ("cameo_code", "source_actor", "target_actor", "date", "lang"):
        assert a[name] is b[name], name
    assert a["actors"][0] is b["actors"][0]
    assert a["places"][0]["name"] is b["places"][0]["name"]
    assert a["mention_id"] != b["mention_id"]
    decoded = json.loads(backing["m1"])
    assert share_strings(decoded) == decoded and share_strings(decoded) is not decoded


def test_evidence_models_share_one_set_of_fields_set() -> None:
    """Every evidence model sets all its fields, so all share one ``model_fields_set`` (two
    thirds of a model's memory otherwise), and stay equal to a model built the plain way."""
    from streams.timeline import _evidence

    a, b = (_evidence(mention(mid).model_dump(mode="json"), "2024-06-19", 0)
            for mid in ("m1", "m2"))
    assert a.model_fields_set == set(MentionEvidence.model_fields)
    assert a.model_fields_set is b.model_fields_set
    assert a == MentionEvidence(**a.model_dump()) and a != b
    changed = a.model_copy(update={"lang": "ru"})
    assert changed.lang == "ru" and a.lang == "en"
    assert b.model_fields_set == set(MentionEvidence.model_fields)  # the copy left it alone


class _ReadCounting(dict[str, Any]):
    reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def test_compact_mentions_read_through_the_reader_they_are_given() -> None:
    """In the worker reads go to the table's store (one lookup), writes to the table (its
    changelog); both hold the same data."""
    backing: dict[str, Any] = {}
    store = _ReadCounting()
    mentions = CompactMentions(backing, cache_size=1, reads=lambda: store)
    doc = mention("m1").model_dump(mode="json")
    mentions["m1"] = doc
    mentions["m2"] = {**doc, "mention_id": "m2"}  # m1 leaves the one-document cache
    store.update(backing)
    assert mentions["m1"] == doc and store.reads == 1
    with pytest.raises(KeyError):
        mentions["m3"]


def test_known_keys_answer_absent_keys_without_reading_the_table() -> None:
    backing = _ReadCounting({"a1": {"r1": {"outlet": "x"}}})
    reposts = KnownKeys(backing)
    assert reposts.get("a9") is None and "a9" not in reposts and backing.reads == 0
    assert reposts["a1"] == {"r1": {"outlet": "x"}} and backing.reads == 1
    with pytest.raises(KeyError):
        reposts["a9"]
    reposts["a2"] = {"r2": {}}
    assert backing["a2"] == {"r2": {}} and reposts.get("a2") == {"r2": {}}
    del reposts["a1"]
    assert "a1" not in backing and reposts.get("a1") is None and len(reposts) == 1
    backing["a3"] = {"r3": {}}  # written underneath (a recovery): seen after reload
    assert reposts.get("a3") is None
    reposts.reload()
    assert reposts.get("a3") == {"r3": {}} and sorted(reposts) == ["a2", "a3"]



def test_known_keys_read_a_value_once_until_it_is_written_or_reloaded() -> None:
    backing = _ReadCounting({"a1": {"r1": {"outlet": "x"}}})
    reposts = KnownKeys(backing, cache_size=2)
    assert reposts["a1"] == reposts.get("a1") == {"r1": {"outlet": "x"}}
    assert backing.reads == 1
    reposts["a1"] = {"r1": {"outlet": "y"}}  # a write is what later reads see
    assert reposts.get("a1") == {"r1": {"outlet": "y"}} and backing.reads == 1
    dict.__setitem__(backing, "a1", {"r1": {"outlet": "z"}})  # changed underneath (a recovery)
    reposts.reload()
    assert reposts.get("a1") == {"r1": {"outlet": "z"}} and backing.reads == 2
    for key in ("a2", "a3", "a4"):  # a full cache starts again: bounded
        reposts[key] = {}
    assert len(reposts._values) <= 2

def test_compressed_entries_round_trip_and_take_less_memory() -> None:
    from streams.timeline import CompressedEntries

    text = json.dumps({"quote": "Путин и Ким Чен Ын подписали договор о всеобъемлющем "
                       "стратегическом партнёрстве " * 20}, ensure_ascii=False)
    entries = CompressedEntries({"tl-a": text})
    entries["tl-b"] = text.replace("Путин", "Лавров")
    assert entries["tl-a"] == text and "Лавров" in entries["tl-b"]
    assert sorted(entries) == ["tl-a", "tl-b"] and len(entries) == 2 and "tl-a" in entries
    assert entries.get("tl-missing") is None
    del entries["tl-a"]
    assert "tl-a" not in entries and len(entries) == 1
    entries.pack()
    assert entries.loose_bytes() == 0
    assert entries.packed_bytes() * 4 < len(entries["tl-b"].encode())
    # holds: the exact text only, without a false "same" for a different one of equal length
    other = entries["tl-b"]
    assert entries.holds("tl-b", other) and not entries.holds("tl-a", text)
    same_length = other.replace("Лавров", "Шойгу!")
    assert len(same_length) == len(other) and not entries.holds("tl-b", same_length)
    entries["tl-b"] = same_length
    assert entries.holds("tl-b", same_length) and not entries.holds("tl-b", other)


def test_compressed_entries_hold_the_texts_set_last_as_they_are() -> None:
    import sys

    from streams.timeline import CompressedEntries

    texts = {f"tl-{i}": json.dumps({"quote": f"Визит {i} " * 400}, ensure_ascii=False)
             for i in range(6)}
    size = sys.getsizeof(texts["tl-0"])
    entries = CompressedEntries(loose_bytes=3 * size + 64)
    for key, text in texts.items():
        entries[key] = text
    # the three set last wait as text, the three before them were compressed, oldest first
    assert entries.loose_bytes() == 3 * size
    assert entries["tl-5"] is texts["tl-5"] and entries["tl-0"] is not texts["tl-0"]
    assert all(entries[key] == text for key, text in texts.items())
    assert 0 < entries.packed_bytes() < 3 * size
    changed = texts["tl-1"] + " "
    entries["tl-1"] = changed  # a compressed entry set again waits as text ...
    assert entries["tl-1"] is changed and entries["tl-4"] is texts["tl-4"]
    assert entries["tl-3"] is not texts["tl-3"]  # ... and the oldest text was compressed
    assert entries["tl-3"] == texts["tl-3"] and entries.loose_bytes() <= 3 * size + 64
    waiting = entries.loose_bytes()
    entries["tl-5"] = texts["tl-5"]  # set again while waiting: still one text of it
    assert entries.loose_bytes() == waiting
    del entries["tl-4"]
    # the order of first setting, as a dict's: setting an entry again does not move it
    assert list(entries) == ["tl-0", "tl-1", "tl-2", "tl-3", "tl-5"]
    assert entries.holds("tl-5", texts["tl-5"]) and not entries.holds("tl-3", texts["tl-5"])
    entries.pack()
    assert entries.loose_bytes() == 0 and entries["tl-5"] == texts["tl-5"]
    assert entries.holds("tl-1", changed) and len(entries) == 5


def test_an_upsert_carries_the_json_the_merge_compared_and_stored() -> None:
    state = TimelineState.compact()
    changes = apply_mention(state, mention("m01", date="2024-06-01"))
    changes += apply_mention(state, mention("m02", date="2024-06-01", outlet="other"))
    upserts = [c for c in changes if c.kind == "upsert"]
    assert len(upserts) == 2
    for change in upserts:
        assert change.encoded is not None and change.entry is not None
        assert change.entry_json() == change.encoded == change.entry.model_dump_json()
    assert upserts[-1].entry_json() == state.entries[upserts[-1].entry_id]
    made_here = TimelineChange("upsert", upserts[0].entry_id, entry=upserts[0].entry)
    assert made_here.entry_json() == upserts[0].encoded and made_here == upserts[0]


def test_a_rebuild_in_chunks_equals_one_at_once_and_reports_progress() -> None:
    state = json_state()
    ms = [mention(f"m{i:02d}", date=f"2024-06-{1 + i % 9:02d}", cameo_code=("042", "057")[i % 2])
          for i in range(23)]
    for m in ms:
        apply_mention(state, m)
    whole = rebuild_derived(state)
    fresh = empty_derived(state)
    assert list(rebuild_derived_into(fresh, state, chunk=5)) == [5, 10, 15, 20, 23]
    assert fresh.timeline() == whole.timeline() == state.timeline()
    assert index_as_json(fresh.index) == index_as_json(whole.index) == index_as_json(state.index)
    assert list(rebuild_derived_into(empty_derived(TimelineState.in_memory()),
                                     TimelineState.in_memory())) == []


def test_the_pause_after_a_merge_grows_with_it_up_to_its_cap_and_a_full_batch_has_none() -> None:
    # factor 6, cap 1 s, batches of at most 1,024 mentions
    assert pause_after_merge(0.05, 300, 1024, 6.0, 1.0) == pytest.approx(0.3)
    assert pause_after_merge(0.4, 300, 1024, 6.0, 1.0) == 1.0  # capped
    assert pause_after_merge(0.4, 1023, 1024, 6.0, 1.0) == 1.0
    # a full batch: more mentions are waiting, a pause would only hold them back
    assert pause_after_merge(0.4, 1024, 1024, 6.0, 1.0) == 0.0
    assert pause_after_merge(0.05, 300, 1024, 0.0, 1.0) == 0.0  # factor 0: never


def test_index_rows_of_one_day_share_its_ordinal() -> None:
    """A month's rows hold the day's ordinal for clustering; each row holding its own int took
    28 bytes a row, so rows of one day share one object, whichever way they were made."""
    from streams import timeline

    first = timeline._Key.from_row(["m1", "2024-05-01", 0, "042", "w1", "m1"])
    again = timeline._Key.from_row(["m2", "".join(["2024-05-", "01"]), 0, "057", "w2", "m1"])
    assert first.ordinal == date(2024, 5, 1).toordinal()
    assert first.ordinal is again.ordinal
    assert timeline._Key.from_row(["m3", "2024-05", 1, "042", "w3", "m3"]).ordinal == 0
