"""The SQLite checkpoint store: outbox, seen-set bound, validators, scan start, durability."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from producers.checkpoints import CheckpointStore, OutboxItem


def item(n: int, feed: str = "f", *, at: float = 0.0) -> OutboxItem:
    return OutboxItem(feed, f"id{n}", "articles.raw", f"id{n}".encode(), b'{"n": %d}' % n,
                      [("relwatch-feed", feed.encode()), ("x", b"\xff\x00")], at or 1000.0 + n)


def test_new_store_knows_nothing(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        state = store.feed_state("f")
        assert (state.etag, state.last_success, state.failures) == (None, None, 0)
        assert store.seen(["a"]) == set() and store.pending() == []


def test_poll_is_committed_with_its_items_and_validators(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with CheckpointStore(path) as store:
        store.record_poll("f", "https://e.org/rss", new_items=[item(1), item(2)],
                          skipped_ids=["empty"], etag='"v"', last_modified="lm", at=50.0)
    with CheckpointStore(path) as store:  # a new process sees the same
        state = store.feed_state("f")
        assert (state.url, state.etag, state.last_modified, state.last_success) == (
            "https://e.org/rss", '"v"', "lm", 50.0)
        assert store.seen(["id1", "id2", "empty", "other"]) == {"id1", "id2", "empty"}
        pending = store.pending("articles.raw")
        assert pending == [item(1), item(2)]  # bytes and headers round-trip exactly
        assert store.counts("f") == {"pending": 2, "skipped": 1}


def test_validators_kept_when_the_poll_says_so(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        store.record_poll("f", "u", etag='"1"')
        store.record_poll("f", "u", etag='"2"', save_validators=False)
        assert store.feed_state("f").etag == '"1"'


def test_ack_drops_the_bytes_and_moves_the_scan_start(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        store.record_poll("f", "u", new_items=[item(1), item(2)])
        store.mark_acked("f", "id1", "articles.raw", 0, 41)
        assert [p.item_id for p in store.pending()] == ["id2"]
        assert store.counts("f") == {"acked": 1, "pending": 1}
        assert store.scan_start("articles.raw") == {0: 42}
        store.set_scan_start("articles.raw", {0: 10, 1: 5})  # never moves back
        assert store.scan_start("articles.raw") == {0: 42, 1: 5}
        store.mark_acked("f", "id1", "articles.raw", 0, 99)  # second ack of an acked row: no-op
        row = store._db.execute('SELECT "offset" FROM items WHERE item_id=\'id1\'').fetchone()
        assert row == (41,)


def test_failures_count_up_and_a_success_resets_them(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        assert [store.record_failure("f", "u", at=t) for t in (1.0, 2.0, 3.0)] == [1, 2, 3]
        assert store.feed_state("f").last_attempt == 3.0
        store.record_poll("f", "u", at=4.0)
        state = store.feed_state("f")
        assert (state.failures, state.last_attempt, state.last_success) == (0, 4.0, 4.0)


def test_seen_set_is_bounded_per_feed_and_pending_rows_are_never_pruned(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3", seen_bound=3) as store:
        store.record_poll("f", "u", new_items=[item(n) for n in range(6)])
        for n in range(1, 6):
            store.mark_acked("f", f"id{n}", "articles.raw", 0, n)
        store.record_poll("g", "u", new_items=[item(100, "g")])
        store.record_poll("f", "u")  # prunes
        assert store.counts("f") == {"pending": 1, "acked": 3}
        assert store.seen(f"id{n}" for n in range(6)) == {"id0", "id3", "id4", "id5"}
        assert store.counts("g") == {"pending": 1}


def test_seen_is_shared_by_all_feeds_and_handles_many_ids(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        store.record_poll("a", "u", new_items=[item(1, "a")])
        ids = [f"id{n}" for n in range(1500)]
        assert store.seen(ids) == {"id1"}


def test_acks_from_other_threads(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        store.record_poll("f", "u", new_items=[item(n) for n in range(200)])
        def ack_every_fourth(start: int) -> None:
            for n in range(start, 200, 4):
                store.mark_acked("f", f"id{n}", "articles.raw", 0, n)

        threads = [threading.Thread(target=ack_every_fourth, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.pending_count() == 0 and store.counts("f") == {"acked": 200}


def test_a_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    CheckpointStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema 99"):
        CheckpointStore(path)


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    with CheckpointStore(tmp_path / "s.sqlite3") as store:
        with pytest.raises(AttributeError):
            store.record_poll("f", "u", new_items=[item(1), object()])  # type: ignore[list-item]
        assert store.pending() == [] and store.feed_state("f").last_success is None
