"""Durable per-feed state for the feed poller: a local SQLite file with an outbox.

Why SQLite and not a compacted Kafka topic: the state is private to one poller process, must be
readable before the broker answers (to schedule the first polls and back off), and has to be
updated atomically with the list of items a fetch produced. One file, one transaction per fetch,
no extra topic to create or compact. The file runs in WAL mode with ``synchronous=NORMAL``: a
killed process loses nothing it committed; a power cut may lose the last transactions, which
only means re-sending (see below).

Tables:

``feeds``
    one row per feed: HTTP validators (ETag, Last-Modified) of the last *processed* response,
    last success and last attempt (Unix time), consecutive failures (for the backoff after a
    restart).
``items``
    the outbox and the seen-set in one: one row per (feed, item id) in state ``pending`` (the
    record is stored, its delivery not yet acknowledged), ``acked`` (Kafka acknowledged it; the
    stored value is dropped) or ``skipped`` (nothing to push, e.g. an item with no text).
    Acknowledged and skipped rows are bounded per feed (``seen_bound``, newest kept); pending
    rows are never pruned.
``scan_start``
    per topic and partition, the offset from which a restarted poller looks for records it sent
    but whose acknowledgement it did not record (crash between ack and commit).

The order that makes a restart lose nothing and repeat nothing: new items and the validators of
the response they came from are committed in one transaction *before* anything is sent; an item
becomes ``acked`` only in the delivery callback; on start-up, pending rows are first matched
against the topic (from ``scan_start``), and only those not found are sent again from their
stored bytes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1
DEFAULT_SEEN_BOUND = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    feed_id TEXT PRIMARY KEY,
    url TEXT,
    etag TEXT,
    last_modified TEXT,
    last_success REAL,
    last_attempt REAL,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    feed_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'acked', 'skipped')),
    topic TEXT,
    key BLOB,
    value BLOB,
    headers TEXT,
    created_at REAL NOT NULL,
    acked_at REAL,
    partition INTEGER,
    "offset" INTEGER,
    PRIMARY KEY (feed_id, item_id)
);
CREATE INDEX IF NOT EXISTS items_by_item ON items (item_id);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, topic);
CREATE INDEX IF NOT EXISTS items_by_age ON items (feed_id, created_at);
CREATE TABLE IF NOT EXISTS scan_start (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


@dataclass(frozen=True)
class FeedState:
    """What the store remembers of one feed."""

    feed_id: str
    url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_success: float | None = None
    last_attempt: float | None = None
    failures: int = 0


@dataclass(frozen=True)
class OutboxItem:
    """One record to deliver, exactly as it will be sent."""

    feed_id: str
    item_id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    created_at: float = 0.0


def _dump_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.decode("latin-1")] for k, v in headers])


def _load_headers(text: str | None) -> list[tuple[str, bytes]]:
    if not text:
        return []
    return [(str(k), str(v).encode("latin-1")) for k, v in json.loads(text)]


class CheckpointStore:
    """The poller's SQLite state. Thread-safe: one connection behind one lock.

    Delivery callbacks run on the Kafka producer's I/O thread and call :meth:`mark_acked`;
    everything else runs on the poller's main thread.
    """

    def __init__(self, path: str | Path, *, seen_bound: int = DEFAULT_SEEN_BOUND) -> None:
        if seen_bound < 1:
            raise ValueError("seen_bound must be positive")
        self.path = Path(path)
        self.seen_bound = seen_bound
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS); commits on its own
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{path}: checkpoint schema {row[0]}, this relwatch reads {SCHEMA_VERSION}"
                )

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- feeds ---------------------------------------------------------------------------
    def feed_state(self, feed_id: str) -> FeedState:
        """The remembered state of ``feed_id`` (an empty state for a new feed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT url, etag, last_modified, last_success, last_attempt, failures "
                "FROM feeds WHERE feed_id=?", (feed_id,),
            ).fetchone()
        if row is None:
            return FeedState(feed_id)
        return FeedState(feed_id, *row)

    def record_failure(self, feed_id: str, url: str, *, at: float | None = None) -> int:
        """Count one failed poll; returns the number of consecutive failures."""
        now = time.time() if at is None else at
        with self._tx() as db:
            db.execute(
                "INSERT INTO feeds (feed_id, url, last_attempt, failures) VALUES (?, ?, ?, 1) "
                "ON CONFLICT(feed_id) DO UPDATE SET url=excluded.url, "
                "last_attempt=excluded.last_attempt, failures=failures+1",
                (feed_id, url, now),
            )
            row = db.execute("SELECT failures FROM feeds WHERE feed_id=?", (feed_id,)).fetchone()
        return int(row[0])

    def record_poll(
        self,
        feed_id: str,
        url: str,
        *,
        new_items: Iterable[OutboxItem] = (),
        skipped_ids: Iterable[str] = (),
        etag: str | None = None,
        last_modified: str | None = None,
        save_validators: bool = True,
        at: float | None = None,
    ) -> None:
        """Commit one successful poll: its new items (pending), skips and validators at once.

        With ``save_validators=False`` (some item was deferred, or the feed was only partly
        readable) the old validators stay, so the next poll gets the whole feed again.
        """
        now = time.time() if at is None else at
        with self._tx() as db:
            db.execute(
                "INSERT INTO feeds (feed_id, url, last_success, last_attempt, failures) "
                "VALUES (?, ?, ?, ?, 0) ON CONFLICT(feed_id) DO UPDATE SET url=excluded.url, "
                "last_success=excluded.last_success, last_attempt=excluded.last_attempt, "
                "failures=0",
                (feed_id, url, now, now),
            )
            if save_validators:
                db.execute("UPDATE feeds SET etag=?, last_modified=? WHERE feed_id=?",
                           (etag, last_modified, feed_id))
            db.executemany(
                "INSERT OR IGNORE INTO items (feed_id, item_id, state, topic, key, value, headers,"
                " created_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                [(i.feed_id, i.item_id, i.topic, i.key, i.value, _dump_headers(i.headers),
                  i.created_at or now) for i in new_items],
            )
            db.executemany(
                "INSERT OR IGNORE INTO items (feed_id, item_id, state, created_at) "
                "VALUES (?, ?, 'skipped', ?)",
                [(feed_id, item_id, now) for item_id in skipped_ids],
            )
            self._prune(db, feed_id)

    def _prune(self, db: sqlite3.Connection, feed_id: str) -> None:
        db.execute(
            "DELETE FROM items WHERE feed_id=? AND state!='pending' AND rowid NOT IN ("
            " SELECT rowid FROM items WHERE feed_id=? AND state!='pending'"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?)",
            (feed_id, feed_id, self.seen_bound),
        )

    # -- items ---------------------------------------------------------------------------
    def seen(self, item_ids: Iterable[str]) -> set[str]:
        """The ids among ``item_ids`` that any feed already stored (pending, acked, skipped)."""
        ids = list(dict.fromkeys(item_ids))
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT DISTINCT item_id FROM items WHERE item_id IN ({marks})", chunk
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

    def mark_acked(
        self, feed_id: str, item_id: str, topic: str, partition: int, offset: int,
        *, at: float | None = None,
    ) -> None:
        """Kafka acknowledged the record: drop its bytes, remember where it landed."""
        now = time.time() if at is None else at
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state='acked', value=NULL, key=NULL, headers=NULL, acked_at=?, "
                "partition=?, \"offset\"=? WHERE feed_id=? AND item_id=? AND state='pending'",
                (now, partition, offset, feed_id, item_id),
            )
            self._advance_scan_start(db, topic, partition, offset + 1)

    def pending(self, topic: str | None = None) -> list[OutboxItem]:
        """Stored records whose delivery is not acknowledged, oldest first."""
        query = ("SELECT feed_id, item_id, topic, key, value, headers, created_at FROM items "
                 "WHERE state='pending'")
        params: tuple[str, ...] = ()
        if topic is not None:
            query += " AND topic=?"
            params = (topic,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at, rowid", params).fetchall()
        return [
            OutboxItem(r[0], r[1], r[2], bytes(r[3] or b""), bytes(r[4] or b""),
                       _load_headers(r[5]), r[6])
            for r in rows
        ]

    def pending_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM items WHERE state='pending'").fetchone()
        return int(row[0])

    def counts(self, feed_id: str) -> dict[str, int]:
        """Rows per state for one feed (for tests and the status line)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, count(*) FROM items WHERE feed_id=? GROUP BY state", (feed_id,)
            ).fetchall()
        return {str(state): int(n) for state, n in rows}

    # -- crash recovery ------------------------------------------------------------------
    def scan_start(self, topic: str) -> dict[int, int]:
        """Per partition, where to look for records sent but not recorded as acknowledged."""
        with self._lock:
            rows = self._db.execute(
                "SELECT partition, \"offset\" FROM scan_start WHERE topic=?", (topic,)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def set_scan_start(self, topic: str, offsets: dict[int, int]) -> None:
        """Move the scan start forward (never back) to ``offsets``."""
        with self._tx() as db:
            for partition, offset in offsets.items():
                self._advance_scan_start(db, topic, partition, offset)

    @staticmethod
    def _advance_scan_start(db: sqlite3.Connection, topic: str, partition: int,
                            offset: int) -> None:
        db.execute(
            "INSERT INTO scan_start (topic, partition, \"offset\") VALUES (?, ?, ?) "
            "ON CONFLICT(topic, partition) DO UPDATE SET "
            "\"offset\"=max(\"offset\", excluded.\"offset\")",
            (topic, partition, offset),
        )
