"""The rolling timeline: merge event mentions from many outlets into evidence-backed entries.

Pure functions only; the state lives in plain ``MutableMapping``s (dicts in tests, changelog-backed
Faust tables in the worker) holding JSON-friendly values.

Merge rules
-----------
Mentions are compared only within a *bucket*: the CAMEO root (family) plus the country dyad, the
unordered pair of the countries of the source and target actors (the first three letters of the
code; NATO, UNO, EU, IGO whole): RUSGOV→PRKGOV, PRK→RUS and RUSMIL→PRK are all ``PRK-RUS``;
USAGOV→PRK is ``PRK-USA``. Within a bucket two mentions are *compatible*
(:func:`merge_key_compatible`) when

* their dates are compatible at their precisions: a year contains its months and days, a month its
  days; two day dates are compatible when equal, or one day apart **only when both mentions carry
  the same CAMEO code and come from different wire stories** (time zones and relative dates such as
  "on Monday" shift reports of one action by a day between outlets, while consecutive days with
  different actions are usually a sequence: arrival 042, talks 046, signing 057);
* they are not two different codes from one wire story (``wire_id``: reposts share it): a story
  that itself reports two actions of one family on one day reports two events — and so they stay
  two events when other stories report them too (below).

Clustering is a pure function of the bucket's set of mentions, so it cannot depend on arrival order:

1. day-precision mentions of one day group by code; once two stories report the day, the code
   groups merge, in sorted code order, except codes some story reports side by side; then
   groups of consecutive days with the same code from different stories join;
2. a month-precision mention joins the day cluster it is compatible with if exactly one exists
   (narrowed first to clusters with a compatible mention of its very CAMEO code, that is one in
   its month); otherwise it stays with the other unattached month mentions of that month
   (grouped by compatibility);
3. a year-precision mention does the same against the clusters of steps 1-2 within its year.

So coarse dates merge with finer ones (``2024-06`` with ``2024-06-19``) without bridging distinct
events: a vague "in June" report compatible with two June meetings stays apart. Known limits: the
family, not the leaf, is the merge key, so one family's distinct same-day events in one dyad merge
once two stories report that day, unless one story reports them apart; direction is ignored, so each
side's statement about one matter in one month merge; one-day links can chain.

An entry's id is a hash of its anchor (the smallest mention id among its finest-precision members),
so it is stable across updates, restarts and replays. When two clusters join, the survivor keeps
the smaller anchor and the other entry is tombstoned with ``merged_into`` naming the survivor.

Incremental = batch
-------------------
:func:`apply_mention` re-clusters only what a mention can affect: the months it touches (closed
over one-day links across month ends) with the same functions :func:`build_timeline` runs on a
whole bucket, and, where year-precision mentions exist, their year against per-month cluster
summaries. A closed region clustered alone gives the batch clusters, so arrival order cannot
matter; the hypothesis property test checks it with shuffles and replays. The cost grows with the
mentions of one bucket-month (a few hundred microseconds typically), not with the timeline.

Entry fields
------------
* date: candidate dates are the members' dates; the support of a date is the number of independent
  sources (distinct ``wire_id``) whose date equals it or contains it (a "June 2024" report
  supports "19 June 2024"). The best supported wins; ties prefer the more precise date, then more
  mentions, then the earlier date. Candidates that contradict the winner (neither contains the
  other) become ``date_alternatives`` with their support and the outlets that gave exactly them.
* cameo_code: the best supported code of the family, the generic codes (``04``, ``040``) counting
  toward the specific ones; ties prefer the more specific code, then the smaller code.
* source/target actor: the pair with most independent sources (then mentions, then longer codes).
* independent_source_count counts distinct wire stories; reposts (:func:`apply_duplicate`) only add
  their outlet to ``sources``.
* significance = 0.5·min(|goldstein|/10, 1) + 0.5·(1 − 2^(−sources/2)); confidence = (share of
  stories agreeing with the date) × (0.75·(1 − 0.5^sources) + 0.25·(1 − 0.8^mentions)).
* first_seen / updated: min / max ``ingested_at`` of the mentions (``updated`` also counts repost
  notices); never the wall clock.
* mentions (the evidence): at most :data:`MAX_EVIDENCE`, the first in the published order (date,
  outlet, article, mention id) of all members; every other field counts all members. The members
  themselves are kept in the ``e|<entry id>`` index document.
* places: one per (name, lat, lon, country), a place given with a country preferred to the same
  place without; extractor_version: the newest (natural order, then the string).

Every field is a function of counts over the members (:class:`_Aggregate`), so a big entry is
updated by the members that move in and out of it rather than rebuilt from all of them.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import math
import re
import sys
import zlib
from bisect import bisect_left
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import yaml

from schemas.models import (
    DateAlternative,
    DatePrecision,
    DuplicateNotice,
    EventMention,
    MentionEvidence,
    Place,
    TimelineEntry,
)
from streams.dates import anchor_partial, parse_partial
from streams.errors import RejectedInput

__all__ = [
    "MAX_EVIDENCE",
    "CameoTable",
    "CoalescedChanges",
    "CompactMentions",
    "KnownKeys",
    "PackedDocs",
    "TimelineChange",
    "TimelineState",
    "actor_country",
    "apply_duplicate",
    "apply_mention",
    "apply_mentions",
    "build_timeline",
    "cameo_table",
    "check_mention",
    "diff_timelines",
    "empty_derived",
    "entry_id_for",
    "expire",
    "merge_key_compatible",
    "rebuild_derived",
    "rebuild_derived_into",
    "replay_changes",
    "set_aggregate_cache",
    "share_strings",
]

ChangeKind = Literal["upsert", "tombstone", "expire"]

_PRECISIONS: tuple[DatePrecision, DatePrecision, DatePrecision] = ("day", "month", "year")
_RANK: dict[str, int] = {"day": 0, "month": 1, "year": 2}
_DATE_LEN = (10, 7, 4)  # length of a normalized date string per precision rank
_DATE_RE = re.compile(r"^\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_COUNTRY_RE = re.compile(r"^[A-Z0-9]{2,4}$")
_WHOLE_ACTORS = frozenset({"NATO", "UNO", "EU", "IGO"})  # bodies, not countries: kept whole
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_CAMEO_PATH = Path(__file__).parent / "data" / "cameo.yaml"


# --------------------------------------------------------------------------- CAMEO table


@dataclass(frozen=True)
class CameoTable:
    """CAMEO code names and summary phrases (``streams/data/cameo.yaml``)."""

    roots: Mapping[str, tuple[str, str]]  # root -> (name, phrase)
    codes: Mapping[str, tuple[str, str]]  # code -> (name, phrase)

    def lookup(self, code: str) -> tuple[str, str]:
        """(name, phrase) of ``code``, falling back to its 3-digit parent, then its root."""
        for candidate in (code, code[:3]):
            if candidate in self.codes:
                return self.codes[candidate]
        if code[:2] in self.roots:
            return self.roots[code[:2]]
        return (f"CAMEO {code}", "{source} acts toward {target}")

    def root_name(self, root: str) -> str:
        return self.roots[root][0] if root in self.roots else f"CAMEO {root}"


def _phrase_ok(phrase: str) -> bool:
    names = set(re.findall(r"{([^{}]*)}", phrase))
    return names <= {"source", "target"} and "{" not in re.sub(r"{(source|target)}", "", phrase)


@lru_cache(maxsize=4)
def cameo_table(path: Path = _CAMEO_PATH) -> CameoTable:
    """Load and check the CAMEO data file (cached)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    tables: list[dict[str, tuple[str, str]]] = []
    for section in ("roots", "codes"):
        table: dict[str, tuple[str, str]] = {}
        for code, spec in (raw.get(section) or {}).items():
            code = str(code)
            name, phrase = str(spec["name"]), str(spec["phrase"])
            if not code.isdigit() or not _phrase_ok(phrase):
                raise ValueError(f"cameo.yaml: bad {section} entry {code!r}")
            table[code] = (name, phrase)
        tables.append(table)
    roots, codes = tables
    missing = {f"{i:02d}" for i in range(1, 21)} - set(roots)
    if missing:
        raise ValueError(f"cameo.yaml: missing roots {sorted(missing)}")
    return CameoTable(roots=roots, codes=codes)


# --------------------------------------------------------------------------- changes and state


@dataclass(frozen=True)
class TimelineChange:
    """One record for the timeline topic.

    ``upsert`` carries the new entry; ``tombstone`` removes ``entry_id`` (``merged_into`` names the
    survivor when the entry was absorbed); ``expire`` removes it from the rolling window and carries
    the last version of the entry for the archive topic. ``encoded`` is the entry's JSON when
    the merge already made it (to compare with the stored version), so that it is not made twice.
    """

    kind: ChangeKind
    entry_id: str
    entry: TimelineEntry | None = None
    merged_into: str | None = None
    encoded: str | None = field(default=None, compare=False, repr=False)

    def entry_json(self) -> str:
        """The entry as the timeline topic carries it."""
        if self.encoded is not None:
            return self.encoded
        assert self.entry is not None, f"a {self.kind} without an entry"
        return self.entry.model_dump_json()


class CoalescedChanges:
    """Timeline changes waiting to be published, at most one per entry.

    A later change of an entry replaces its waiting one and moves to the end, so that
    :meth:`pop` yields each entry's last change, in the order of those last changes: what a
    consumer of the compacted topic would have seen at the end of the window anyway. An
    ``expire`` is never replaced (it carries the entry for the archive topic); it goes out
    right before the entry's next change.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[TimelineChange, bool]] = {}
        self._kept = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, change: TimelineChange, observe: bool = True) -> None:
        """Queue ``change`` (``observe``: whether its latency is to be measured on sending)."""
        previous = self._waiting.pop(change.entry_id, None)
        if previous is not None and previous[0].kind == "expire":
            self._kept += 1
            self._waiting[f"{change.entry_id}\x00{self._kept}"] = previous
        self._waiting[change.entry_id] = (change, observe)

    def pop(self) -> tuple[TimelineChange, bool]:
        """The oldest waiting change, removed (KeyError when none waits)."""
        key = next(iter(self._waiting), None)
        if key is None:
            raise KeyError("no change waits")
        return self._waiting.pop(key)


class KnownKeys(MutableMapping[str, Any]):
    """``backing`` (a Faust table) with its keys also held in memory, so that asking for an
    absent key reads no store: the merge asks for the reposts of every member article of each
    entry it rebuilds, and most articles have none (a profile at 16,000 articles had those
    misses at 7 % of the worker's CPU). The keys are read from ``backing`` on first use after
    :meth:`reload`, which the worker calls when the table was recovered or reassigned.

    The values last read or written are kept too (at most ``cache_size``; read only): an entry
    of many reposted articles reads the same records at every rebuild, each a store read and a
    JSON decode otherwise (5 % of the worker at 20,000 articles).
    """

    def __init__(self, backing: MutableMapping[str, Any], cache_size: int = 16_384) -> None:
        self.backing = backing
        self._keys: set[str] | None = None
        self._values: dict[str, Any] = {}
        self._cache_size = cache_size

    def reload(self) -> None:
        """Forget the keys and values (the backing table was recovered or changed underneath)."""
        self._keys = None
        self._values = {}

    def _remember(self, key: str, value: Any) -> None:
        if len(self._values) >= self._cache_size:
            self._values = {}
        self._values[key] = value

    def _known(self) -> set[str]:
        if self._keys is None:
            self._keys = set(self.backing)
        return self._keys

    def __getitem__(self, key: str) -> Any:
        if key not in self._known():
            raise KeyError(key)
        if key in self._values:
            return self._values[key]
        value = self.backing[key]
        self._remember(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self._known()

    def __setitem__(self, key: str, value: Any) -> None:
        self.backing[key] = value
        self._known().add(key)
        self._remember(key, value)

    def __delitem__(self, key: str) -> None:
        self._values.pop(key, None)
        del self.backing[key]
        self._known().discard(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.backing)

    def __len__(self) -> int:
        return len(self.backing)


_UNSHARED_FIELDS = frozenset(("mention_id", "article_id", "wire_id", "url", "quote", "published"))
_shared = sys.intern  # interned strings go when nothing holds them: no table of our own to bound


def share_strings(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the mention document ``doc`` whose field names and repeated values (codes,
    dates, actors, entities, place names) are one shared ``str`` object each (``sys.intern``).

    ``json.loads`` gives every document its own copy of each of its 27 field names and of each
    value: on the bench stream a cached mention took 5.0 kB, 2.2 kB with its strings shared.
    Values unique to a mention (ids, URL, quote, time) are left as they are."""
    out: dict[str, Any] = {}
    for name, value in doc.items():
        name = _shared(name)
        kind = type(value)
        if kind is str:
            if name not in _UNSHARED_FIELDS:
                value = _shared(value)
        elif kind is list and value:
            value = [_shared_item(item) for item in value]  # actors, entities, places
        out[name] = value
    return out


def _shared_item(item: Any) -> Any:
    """A list item of a mention document with its strings shared (a place: its keys and
    string values)."""
    if type(item) is str:
        return _shared(item)
    if type(item) is dict:
        return {_shared(k): _shared(v) if type(v) is str else v for k, v in item.items()}
    return item


class CompactMentions(MutableMapping[str, Any]):
    """The stored mentions as compact UTF-8 JSON in ``backing`` (a Faust table of raw values,
    or a dict), read back through a cache of the most recently used documents.

    A mention held as a dict costs about 5 kB with its own strings, 2.2 kB with its field
    names and repeated values shared (:func:`share_strings`); as JSON bytes about 1.2 kB. The
    merge reads the same few hundred documents again and again (those of the entries and
    months it touches), so most reads hit the cache. Documents read are shared, never to be
    mutated, like those of a plain dict. A backing value that is already a dict (an older
    changelog) is read as it is.
    """

    def __init__(self, backing: MutableMapping[str, Any], cache_size: int = 8_192,
                 reads: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.backing = backing
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        # where reads go: a Faust table's store (``lambda: table.data``) answers a read with
        # one lookup, the table itself with two (a membership test, then the read)
        self._reads = reads or (lambda: backing)

    def clear_cache(self) -> None:
        """Forget the decoded documents (after the backing table was recovered or changed)."""
        self._cache.clear()

    def __getitem__(self, key: str) -> dict[str, Any]:
        cache = self._cache
        doc = cache.get(key)
        if doc is not None:
            cache.move_to_end(key)
            return doc
        raw = self._reads()[key]
        doc = share_strings(raw if isinstance(raw, dict) else json.loads(raw))
        self._remember(key, doc)
        return doc

    def __setitem__(self, key: str, doc: dict[str, Any]) -> None:
        self.backing[key] = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        self._remember(key, share_strings(doc))

    def __delitem__(self, key: str) -> None:
        del self.backing[key]
        self._cache.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.backing)

    def __len__(self) -> int:
        return len(self.backing)

    def __contains__(self, key: object) -> bool:
        return key in self.backing

    def _remember(self, key: str, doc: dict[str, Any]) -> None:
        cache = self._cache
        cache[key] = doc
        cache.move_to_end(key)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)


def _holds(entries: MutableMapping[str, str], key: str, text: str) -> bool:
    """Whether ``entries`` holds exactly ``text`` for ``key``."""
    if isinstance(entries, CompressedEntries):
        return entries.holds(key, text)
    return entries.get(key) == text


class CompressedEntries(MutableMapping[str, str]):
    """Entry id -> entry JSON text, held zlib-compressed (level 1), the entries set last as
    they are.

    Entries are the timeline's largest derived state: up to 50 evidence quotes each, mostly
    Cyrillic, which a Python string holds at 2 bytes a character. Compressed they take about a
    quarter of the memory (1.2 vs 4.4 MB for the 564 entries of a 2,000-article stream), for
    about 60 µs to store and 25 µs to read an entry.

    A merge rewrites the same busy entries batch after batch (about 23 kB of JSON each on the
    bench stream), so the texts set last stay uncompressed until ``loose_bytes`` of them wait:
    an entry is compressed when it leaves them, or at :meth:`pack` (the worker packs them
    when the stream goes quiet). With 8 MB of them (as Python strings: 2 bytes a character
    in most entries), 28 % of the text set in a 20,000-article replay was compressed, against
    all of it before (bench/README.md, session 18).
    """

    DEFAULT_LOOSE_BYTES = 8 * 1024 * 1024

    def __init__(self, texts: Mapping[str, str] | None = None,
                 loose_bytes: int = DEFAULT_LOOSE_BYTES) -> None:
        self._packed: dict[str, bytes] = {}
        self._loose: dict[str, str] = {}  # oldest first
        self._loose_size = 0
        self._loose_limit = loose_bytes
        self._hashes: dict[str, int] = {}
        for key, text in (texts or {}).items():
            self[key] = text

    def __getitem__(self, key: str) -> str:
        text = self._loose.get(key)
        if text is not None:
            return text
        return zlib.decompress(self._packed[key]).decode()

    def _take_loose(self, key: str) -> str | None:
        """Remove ``key``'s text from those waiting, if it is one of them."""
        text = self._loose.pop(key, None)
        if text is not None:
            self._loose_size -= sys.getsizeof(text)
        return text

    def __setitem__(self, key: str, text: str) -> None:
        if self._take_loose(key) is None:
            self._packed.pop(key, None)
        self._loose[key] = text
        self._loose_size += sys.getsizeof(text)
        self._hashes[key] = hash(text)
        if self._loose_size > self._loose_limit:
            self._pack_down_to(self._loose_limit)

    def __delitem__(self, key: str) -> None:
        if self._take_loose(key) is None:
            del self._packed[key]
        del self._hashes[key]

    def _pack_down_to(self, size: int) -> None:
        loose = self._loose
        while loose and self._loose_size > size:
            key = next(iter(loose))
            text = self._take_loose(key)
            assert text is not None
            self._packed[key] = zlib.compress(text.encode(), 1)

    def pack(self) -> None:
        """Compress every entry still held as text."""
        self._pack_down_to(0)

    def holds(self, key: str, text: str) -> bool:
        """Whether ``key`` is stored with exactly ``text``. A different hash answers without
        decompressing the stored text (most of the merge's rebuilt entries have changed)."""
        stored = self._hashes.get(key)
        return stored is not None and stored == hash(text) and self[key] == text

    def __iter__(self) -> Iterator[str]:
        return iter(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, key: object) -> bool:
        return key in self._hashes

    def packed_bytes(self) -> int:
        """The memory the compressed texts take (bytes, without the dict)."""
        return sum(len(v) for v in self._packed.values())

    def loose_bytes(self) -> int:
        """The memory the texts not yet compressed take (bytes)."""
        return self._loose_size


_ABSENT: Any = object()


class PackedDocs(MutableMapping[str, Any]):
    """Index documents, those of the ``packed`` kinds (the key's prefix before ``|``) held as
    ``marshal`` bytes unless recently used.

    The index grows with the stream: 92 MB as Python lists, dicts and strings after the bench's
    100,000 articles, a third of it the undated articles' tallies (``t|``). Those and the other
    nested documents (anchor groups ``d|``, resolutions ``r|``, month summaries ``s|``, floating
    rows ``f|``) take a quarter of that marshalled. The month and year rows (``m|``, ``y|``)
    stay as they are, since the merge reads them as the very keys it clusters (``_Key``), and
    so do the flat lists of mention ids (``a|``, ``e|``, ``u|``), whose strings are shared
    with the rest of the state.

    The ``cache_size`` packed-kind documents used last are held decoded, and are marshalled
    only when they fall out of use (one that was only read keeps the bytes it was read from):
    the merge rewrites the same documents again and again (those of the months and articles it
    touches), so most reads and writes cost no encoding. A value read is the very object stored
    while it stays in use, as from a dict; values are never mutated in place (the index's
    rule), so a value and its bytes always agree. marshal keeps the types (lists stay lists,
    tuples tuples) and, unlike json, the non-string keys of a dict.
    """

    PACKED_KINDS = frozenset("dfrst")
    DEFAULT_CACHE_SIZE = 1_024

    def __init__(self, docs: Mapping[str, Any] | None = None,
                 cache_size: int = DEFAULT_CACHE_SIZE,
                 packed: frozenset[str] = PACKED_KINDS) -> None:
        self._docs: dict[str, Any] = {}  # a value, or its marshal bytes once out of use
        self._in_use: OrderedDict[str, bytes | None] = OrderedDict()  # -> bytes it was read from
        self._cache_size = cache_size
        self._packed_prefixes = frozenset(f"{kind}|" for kind in packed)
        for key, value in (docs or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._docs.get(key, _ABSENT)  # the merge's most frequent call: no second one
        if value is _ABSENT:
            return default
        if type(value) is bytes:
            self._docs[key] = decoded = marshal.loads(value)
            self._use(key, value)
            return decoded
        if key in self._in_use:
            self._in_use.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._docs[key] = value
        if key[:2] in self._packed_prefixes:
            self._use(key, None)

    def __delitem__(self, key: str) -> None:
        del self._docs[key]
        self._in_use.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._docs

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def cache_size(self) -> int:
        return self._cache_size

    def packed_bytes(self) -> int:
        """The memory the marshalled documents take (bytes, without the dict and keys)."""
        return sum(len(v) for v in self._docs.values() if type(v) is bytes)

    def _use(self, key: str, packed: bytes | None) -> None:
        in_use = self._in_use
        in_use[key] = packed
        in_use.move_to_end(key)
        if len(in_use) > self._cache_size:
            old, old_packed = in_use.popitem(last=False)
            self._docs[old] = old_packed or marshal.dumps(self._docs[old])


@dataclass
class TimelineState:
    """The merge state, as mappings of JSON-friendly values (Faust tables in the worker).

    * ``mentions``: mention id -> the mention as JSON;
    * ``entries``: entry id -> the current entry as JSON text (``model_dump_json``, compared as
      text; :class:`CompressedEntries` holds it compressed);
    * ``index``: the clustering input, in small documents keyed by bucket and month or year,
      and the mentions citing each article (see "Index documents" below);
    * ``reposts``: original article id -> {repost article id: {outlet, url, ingested_at}}.

    Values are replaced, never mutated in place, as a Faust table only persists assignments.
    """

    mentions: MutableMapping[str, Any]
    entries: MutableMapping[str, Any]
    index: MutableMapping[str, Any]
    reposts: MutableMapping[str, Any]

    @classmethod
    def in_memory(cls) -> TimelineState:
        return cls(mentions={}, entries={}, index={}, reposts={})

    @classmethod
    def compact(cls) -> TimelineState:
        """In memory, mentions held as :class:`CompactMentions`, entries as
        :class:`CompressedEntries` and the index as :class:`PackedDocs` (as the worker holds
        them)."""
        return cls(mentions=CompactMentions({}), entries=CompressedEntries(),
                   index=PackedDocs(), reposts={})

    def timeline(self) -> dict[str, TimelineEntry]:
        """The current entries, by id."""
        return {eid: TimelineEntry.model_validate_json(doc) for eid, doc in self.entries.items()}


# --------------------------------------------------------------------------- keys and dates


class _Key(NamedTuple):
    """What clustering needs to know about a mention, and its row in a month or year document
    of the index: ``[mention id, date, precision rank, code, wire, anchor]`` by position, the
    day's ordinal after them. One object is both, so that the rows need no parse to be
    clustered (a cache of parsed rows held a second copy of the busy months: 17 MB at 100,000
    bench articles)."""

    mention_id: str
    date: str  # normalized, zero-padded, at its precision
    prec: int  # 0 day, 1 month, 2 year
    code: str
    wire: str
    anchor: str  # the entry anchor the mention belongs to ("" before it is clustered)
    ordinal: int  # proleptic ordinal of a day date, else 0

    def row(self, anchor: str) -> _Key:
        return self if anchor == self.anchor else self._replace(anchor=anchor)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> _Key:
        """A row as a key (a row written as a plain list is parsed)."""
        if type(row) is cls:
            return row
        mid, day, prec, code, wire, anchor = row[0], row[1], row[2], row[3], row[4], row[5]
        return cls(mid, day, prec, code, wire, anchor, _day_ordinal(day) if prec == 0 else 0)


@lru_cache(maxsize=65_536)
def _day_ordinal(day: str) -> int:
    """The proleptic ordinal of an ISO day, one int object per day for all the rows of that
    day (an ordinal computed per row took 28 bytes of its own: 2.5 MB at 100,000 articles)."""
    return date.fromisoformat(day).toordinal()


@lru_cache(maxsize=65_536)
def _normalize_date(value: str, precision: str) -> tuple[str, int]:
    """Zero-pad ``value`` and cut it to the coarser of its declared and its written precision."""
    match = _DATE_RE.match(value or "")
    if match is None or precision not in _RANK:
        raise RejectedInput("bad_date", f"{value!r} ({precision})")
    year_s, month_s, day_s = match.groups()
    written = 0 if day_s else 1 if month_s else 2
    rank = max(_RANK[precision], written)
    year = int(year_s)
    try:
        if rank == 0:
            return date(year, int(month_s), int(day_s)).isoformat(), 0
        if rank == 1:
            month = int(month_s)
            if not 1 <= month <= 12:
                raise ValueError(month)
            return f"{year:04d}-{month:02d}", 1
        if year < 1:
            raise ValueError(year)
        return f"{year:04d}", 2
    except ValueError as exc:
        raise RejectedInput("bad_date", f"{value!r}: {exc}") from exc


def actor_country(actor: str) -> str:
    """The country part of an actor code: RUSGOV -> RUS; NATO, UNO, EU and IGO stay whole."""
    code = actor.strip().upper()
    return code if code in _WHOLE_ACTORS else code[:3]


def _country(actor: Any) -> str:
    country = actor_country(str(actor or ""))
    if not _COUNTRY_RE.match(country):
        raise RejectedInput("bad_actor", repr(actor))
    return country


def _root_dyad(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The CAMEO root and the country dyad of a mention; rejects what cannot be placed."""
    root = str(doc["cameo_root"]).strip()
    code = str(doc["cameo_code"]).strip()
    if len(root) != 2 or not code.isdigit() or not code.startswith(root) or len(code) > 4:
        raise RejectedInput("bad_cameo", f"code {code!r}, root {root!r}")
    dyad = "-".join(sorted((_country(doc["source_actor"]), _country(doc["target_actor"]))))
    return root, dyad


def _is_floating(doc: Mapping[str, Any]) -> bool:
    return bool(doc.get("date_anchor"))


def _validate(doc: Mapping[str, Any]) -> None:
    """Reject a mention that cannot be placed (a floating one: its partial date too)."""
    if _is_floating(doc):
        _root_dyad(doc)
        if parse_partial(str(doc["date_anchor"])) is None:
            raise RejectedInput("bad_date", f"date_anchor {doc['date_anchor']!r}")
    else:
        _summarize(doc)


def _summarize(doc: Mapping[str, Any]) -> tuple[str, _Key]:
    """The bucket (``root|dyad``) and the clustering key of a dated mention (an anchored
    floating mention's effective document included); rejects what cannot be placed."""
    root, dyad = _root_dyad(doc)
    code = str(doc["cameo_code"]).strip()
    day, prec = _normalize_date(str(doc["date"]), str(doc["date_precision"]))
    wire = str(doc.get("wire_id") or doc["article_id"])
    ordinal = _day_ordinal(day) if prec == 0 else 0
    return f"{root}|{dyad}", _Key(str(doc["mention_id"]), day, prec, code, wire, "", ordinal)


def _compatible(a: _Key, b: _Key) -> bool:
    """Pairwise compatibility of two mentions of one bucket (see the module docstring)."""
    if a.wire == b.wire and a.code != b.code:
        return False
    if a.prec == 0 and b.prec == 0:
        if a.ordinal == b.ordinal:
            return True
        return abs(a.ordinal - b.ordinal) == 1 and a.code == b.code and a.wire != b.wire
    length = _DATE_LEN[max(a.prec, b.prec)]
    return a.date[:length] == b.date[:length]


def merge_key_compatible(a: EventMention, b: EventMention) -> bool:
    """Whether two mentions may report one event: same bucket, compatible dates, no conflict.

    Compatibility is necessary, not sufficient, for a merge: a coarse-dated mention joins a finer
    cluster only when exactly one candidate fits (see the module docstring).
    """
    if a.date_anchor or b.date_anchor:
        return False  # floating: not placed until anchored
    (bucket_a, key_a), (bucket_b, key_b) = _summarize(a.model_dump()), _summarize(b.model_dump())
    return bucket_a == bucket_b and _compatible(key_a, key_b)


def entry_id_for(anchor_mention_id: str) -> str:
    """Entry id derived from the cluster's anchor mention (stable across replays)."""
    digest = hashlib.sha256(f"relwatch/timeline/{anchor_mention_id}".encode()).hexdigest()
    return "tl-" + digest[:20]


# --------------------------------------------------------------------------- clustering


class _UnionFind:
    """Union-find whose representative is always the smallest member (the anchor)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, item: str) -> None:
        self.parent.setdefault(item, item)

    def find(self, item: str) -> str:
        parent = self.parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            low, high = (ra, rb) if ra < rb else (rb, ra)
            self.parent[high] = low


def _same_period_groups(keys: Sequence[_Key]) -> list[list[_Key]]:
    """Groups of the mentions with one date: one per code, and codes merged once two stories
    report the date, except codes that one story reports side by side (two events for it).

    Codes are placed in sorted order into the first group none of whose codes one story
    reports with them, so the grouping is a function of the set.
    """
    by_code: dict[str, list[_Key]] = defaultdict(list)
    for key in keys:
        by_code[key.code].append(key)
    if len({k.wire for k in keys}) < 2 or len(by_code) == 1:
        return list(by_code.values())
    codes_of_wire: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        codes_of_wire[key.wire].add(key.code)
    apart = {
        (a, b) for codes in codes_of_wire.values() for a in codes for b in codes if a != b
    }
    groups: list[list[str]] = []
    for code in sorted(by_code):
        home = next((g for g in groups if not any((code, c) in apart for c in g)), None)
        if home is None:
            groups.append([code])
        else:
            home.append(code)
    return [[k for code in group for k in by_code[code]] for group in groups]


# What a coarse mention needs to know about a cluster's members within one period: their codes,
# and their wire story when they all share one (None: several stories).
_Info = tuple[list[str], str | None]


def _info_of(members: Iterable[_Key]) -> _Info:
    codes: set[str] = set()
    wires: set[str] = set()
    for key in members:
        codes.add(key.code)
        wires.add(key.wire)
    return sorted(codes), (next(iter(wires)) if len(wires) == 1 else None)


def _merge_info(a: _Info, b: _Info) -> _Info:
    wire = a[1] if a[1] is not None and a[1] == b[1] else None
    return sorted(set(a[0]) | set(b[0])), wire


class _Candidates:
    """The clusters a coarse mention may join, indexed so that a choice costs O(1) typically.

    A coarse mention is compatible with a cluster when some member has its code or comes from
    another story; it joins the one cluster holding its code if exactly one does, otherwise the
    one compatible cluster if exactly one is; otherwise it joins none.
    """

    def __init__(self, info: Mapping[str, _Info]) -> None:
        self.by_code: dict[str, list[str]] = defaultdict(list)
        self.multi: list[str] = []
        self.single: dict[str, list[str]] = defaultdict(list)
        for anchor, (codes, wire) in info.items():
            for code in codes:
                self.by_code[code].append(anchor)
            (self.multi if wire is None else self.single[wire]).append(anchor)
        self.n_single = len(info) - len(self.multi)

    def choose(self, key: _Key) -> str | None:
        narrowed = self.by_code.get(key.code)
        if narrowed:
            return narrowed[0] if len(narrowed) == 1 else None
        # no cluster has the code: those with a member from another story fit
        own = len(self.single.get(key.wire, ()))
        if len(self.multi) + self.n_single - own != 1:
            return None
        if self.multi:
            return self.multi[0]
        return next(a[0] for wire, a in self.single.items() if wire != key.wire and a)


def _group_coarse(keys: Iterable[_Key], candidates: _Candidates, out: dict[str, str]) -> None:
    """Attach coarse mentions of one period (``out``: mention id -> anchor); group the rest."""
    unattached: list[_Key] = []
    for key in keys:
        target = candidates.choose(key)
        if target is None:
            unattached.append(key)
        else:
            out[key.mention_id] = target
    if unattached:
        for group in _same_period_groups(unattached):
            anchor = min(k.mention_id for k in group)
            for key in group:
                out[key.mention_id] = anchor


def _level1(keys: Iterable[_Key]) -> dict[str, str]:
    """Day components, then month mentions attached or grouped: mention id -> anchor.

    ``keys`` are the day and month mentions of a bucket, or of a region of it closed under links
    across month ends (the result restricted to the region is then the same).
    """
    uf = _UnionFind()
    day_groups: dict[tuple[int, str], list[_Key]] = defaultdict(list)
    days: dict[int, list[_Key]] = defaultdict(list)
    months: dict[str, list[_Key]] = defaultdict(list)
    for key in keys:
        if key.prec == 0:
            uf.add(key.mention_id)
            day_groups[(key.ordinal, key.code)].append(key)
            days[key.ordinal].append(key)
        else:
            months[key.date].append(key)
    for same_day in days.values():
        for group in _same_period_groups(same_day):
            for key in group[1:]:
                uf.union(group[0].mention_id, key.mention_id)
    for (ordinal, code), group in day_groups.items():
        following = day_groups.get((ordinal + 1, code))
        if following and len({k.wire for k in group} | {k.wire for k in following}) >= 2:
            uf.union(group[0].mention_id, following[0].mention_id)
    anchors: dict[str, str] = {}
    in_month: dict[str, dict[str, list[_Key]]] = defaultdict(lambda: defaultdict(list))
    for same_day in days.values():
        for key in same_day:
            anchor = anchors[key.mention_id] = uf.find(key.mention_id)
            if key.date[:7] in months:
                in_month[key.date[:7]][anchor].append(key)
    for month, coarse in months.items():
        info = {anchor: _info_of(ms) for anchor, ms in in_month.get(month, {}).items()}
        _group_coarse(coarse, _Candidates(info), anchors)
    return anchors


def _month_summaries(
    keys: Iterable[_Key], anchors: Mapping[str, str]
) -> dict[str, dict[str, _Info]]:
    """Per month, the level-1 clusters with members in it: what year mentions are matched on."""
    members: dict[str, dict[str, list[_Key]]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        members[key.date[:7]][anchors[key.mention_id]].append(key)
    return {
        month: {anchor: _info_of(ms) for anchor, ms in sorted(clusters.items())}
        for month, clusters in members.items()
    }


def _year_info(summaries: Iterable[Mapping[str, _Info]]) -> dict[str, _Info]:
    info: dict[str, _Info] = {}
    for summary in summaries:
        for anchor, item in summary.items():
            info[anchor] = _merge_info(info[anchor], item) if anchor in info else item
    return info


def _cluster_bucket(keys: Iterable[_Key]) -> dict[str, list[str]]:
    """Cluster one bucket's mentions: anchor mention id -> sorted member ids.

    A pure function of the set of keys (see the module docstring for the three levels).
    """
    fine: list[_Key] = []
    years: dict[str, list[_Key]] = defaultdict(list)
    for key in keys:
        (years[key.date] if key.prec == 2 else fine).append(key)
    anchors = _level1(fine)
    if years:
        summaries = _month_summaries(fine, anchors)
        for year, coarse in years.items():
            info = _year_info(s for month, s in summaries.items() if month[:4] == year)
            _group_coarse(coarse, _Candidates(info), anchors)
    clusters: dict[str, list[str]] = defaultdict(list)
    for mid, anchor in anchors.items():
        clusters[anchor].append(mid)
    return {anchor: sorted(members) for anchor, members in clusters.items()}


# --------------------------------------------------------------------------- entry construction


@lru_cache(maxsize=1_024)
def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order of version strings ('1.10' > '1.9')."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", version)
    )


def _preference(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """Total order among payloads sharing one mention id: the greatest wins, whatever the order
    they arrive in (newest extractor version, then earliest ingest, then canonical JSON)."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)
    return (_version_key(str(doc["extractor_version"])), -float(doc["ingested_at"]), canonical)


def _repost_preference(rec: Mapping[str, Any]) -> tuple[float, str]:
    return (-float(rec["ingested_at"]), json.dumps(rec, sort_keys=True, ensure_ascii=False))


def _outlet(outlet: Any, url: Any) -> str | None:
    if outlet:
        return str(outlet)
    if url:
        host = urlsplit(str(url)).hostname
        if host:
            return host.removeprefix("www.")
    return None


def _generalizes(general: str, specific: str) -> bool:
    """'04' and '040' (generic codes) generalize '046'; '031' generalizes '0311'."""
    base = general[:2] if len(general) == 3 and general.endswith("0") else general
    return general != specific and specific.startswith(base) and len(base) < len(specific)


def _format_date(day: str, prec: int) -> str:
    if prec == 2:
        return day
    month = _MONTHS[int(day[5:7]) - 1]
    if prec == 1:
        return f"{month} {day[:4]}"
    return f"{int(day[8:10])} {month} {day[:4]}"


def _summary(code: str, source: str, target: str, day: str, prec: int) -> str:
    _, phrase = cameo_table().lookup(code)
    when = ("on " if prec == 0 else "in ") + _format_date(day, prec)
    return f"{phrase.format(source=source, target=target)} ({code}) {when}"


def _period_end(day: str, prec: int) -> float:
    """Unix time at which the period named by ``day`` ends (UTC)."""
    year = int(day[:4])
    if prec == 2:
        end = datetime(year + 1, 1, 1, tzinfo=UTC)
    elif prec == 1:
        month = int(day[5:7])
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    else:
        end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
    return end.timestamp()


MAX_EVIDENCE = 50
"""Evidence items an entry publishes at most (``mention_count`` counts them all): the first in
the order (date, outlet, article, mention id) of all its members', so that an entry's size and
the cost of publishing it stay bounded however many reports it gathers."""

# Entries are rebuilt whole whenever a member moves, so the same evidence and places are
# validated again and again: both are immutable models, built once per distinct content. The
# entry counts of the busy entries (``_AGGREGATES``) hold their cited evidence themselves, so
# this cache serves the rest: 4,096 models merged as fast as 16,384 on the bench stream, for
# about 15 MB less at 50,000 articles, net of the copies the counts now keep themselves
# (bench/README.md, session 12).
_MODEL_CACHE_SIZE = 4_096
_EVIDENCE_CACHE: dict[tuple[Any, ...], MentionEvidence] = {}
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}  # one shared object per set of names
_PLACE_CACHE: dict[tuple[Any, ...], Place] = {}


def _evidence(d: Mapping[str, Any], day: str, prec: int) -> MentionEvidence:
    url, outlet = d.get("url"), d.get("outlet")
    fields = (
        str(d["mention_id"]),
        str(d["article_id"]),
        str(d.get("wire_id") or d["article_id"]),
        url,
        outlet,
        str(d["lang"]),
        str(d["quote"]),
        day,
        _PRECISIONS[prec],
        str(d.get("date_source")) if _is_floating(d) else None,
    )
    cacheable = (url is None or type(url) is str) and (outlet is None or type(outlet) is str)
    cached = _EVIDENCE_CACHE.get(fields) if cacheable else None
    if cached is None:
        cached = MentionEvidence(
            mention_id=fields[0],
            article_id=fields[1],
            wire_id=fields[2],
            url=url,
            outlet=outlet,
            lang=fields[5],
            quote=fields[6],
            date=day,
            date_precision=fields[8],
            date_source=fields[9],
        )
        # the models' sets of fields set are all alike (every field is passed): share one
        # per distinct set (10 names take 728 bytes, two thirds of a model; the entries'
        # counts hold thousands of these models). Frozen models never add to it, and
        # model_copy copies it before changing it.
        fields_set = cached.model_fields_set
        object.__setattr__(cached, "__pydantic_fields_set__",
                           _FIELDS_SETS.setdefault(frozenset(fields_set), fields_set))
        if cacheable:
            if len(_EVIDENCE_CACHE) >= _MODEL_CACHE_SIZE:
                _EVIDENCE_CACHE.clear()
            _EVIDENCE_CACHE[fields] = cached
    return cached


def _place(raw: Any) -> Place:
    """``Place.model_validate(raw)``, cached for dicts of exactly typed values."""
    key: tuple[Any, ...] | None = None
    if type(raw) is dict and raw.keys() <= _PLACE_FIELDS:
        name, lat, lon, country = (raw.get(f) for f in ("name", "lat", "lon", "country"))
        if (
            type(name) is str
            and type(lat) is float
            and type(lon) is float
            and (country is None or type(country) is str)
        ):
            key = (name, lat, lon, country)
    cached = _PLACE_CACHE.get(key) if key is not None else None
    if cached is None:
        cached = Place.model_validate(raw)
        if key is not None:
            if len(_PLACE_CACHE) >= _MODEL_CACHE_SIZE:
                _PLACE_CACHE.clear()
            _PLACE_CACHE[key] = cached
    return cached


_PLACE_FIELDS = frozenset(("name", "lat", "lon", "country"))


class _Aggregate:
    """What an entry's fields are computed from, as counts over its members: a member that
    joins or leaves updates it in O(its own fields), so that an entry of thousands of mentions
    is not rebuilt from all of them (and all their documents read) whenever one arrives.

    Every field is a function of the member set (counters, exact sums), so the entry built from
    an aggregate updated member by member equals the one built from the members at once.
    """

    __slots__ = (
        "actors",
        "articles",
        "cited",
        "cited_all",
        "code_wires",
        "date_count",
        "date_outlets",
        "date_wires",
        "evidence",
        "first_seen",
        "foreground",
        "goldstein",
        "langs",
        "last_seen",
        "members_doc",
        "n",
        "outlets",
        "pair_count",
        "pair_wires",
        "places",
        "tone",
        "versions",
        "wires",
    )

    def __init__(self) -> None:
        self.n = 0
        self.wires: Counter[str] = Counter()
        self.articles: Counter[str] = Counter()
        self.date_wires: dict[tuple[str, int], Counter[str]] = {}
        self.date_outlets: dict[tuple[str, int], Counter[str]] = {}
        self.date_count: Counter[tuple[str, int]] = Counter()
        self.code_wires: dict[str, Counter[str]] = {}
        self.pair_wires: dict[tuple[str, str], Counter[str]] = {}
        self.pair_count: Counter[tuple[str, str]] = Counter()
        self.actors: Counter[str] = Counter()
        self.outlets: Counter[str] = Counter()
        self.places: Counter[tuple[str, float, float, str | None]] = Counter()
        self.langs: Counter[str] = Counter()
        self.foreground = 0  # members not marked background
        self.versions: Counter[str] = Counter()
        self.goldstein = 0  # exact sums (see _fixed): the same whatever the order of updates
        self.tone = 0
        self.first_seen = math.inf
        self.last_seen = -math.inf
        # the first of the evidence order, sorted: (date, outlet, article, mention id, prec);
        # all members' while cited_all, else at least the first MAX_EVIDENCE
        self.cited: list[tuple[str, str, str, str, int]] = []
        self.cited_all = True
        self.evidence: dict[str, MentionEvidence] = {}  # of the first MAX_EVIDENCE cited
        self.members_doc: Any = None  # the ``e|`` index document this aggregate describes

    @classmethod
    def of(cls, docs: Iterable[Mapping[str, Any]]) -> _Aggregate:
        agg = cls()
        for doc in docs:
            agg.update(doc, +1)
        return agg

    def update(self, d: Mapping[str, Any], sign: int) -> None:
        """Count member ``d`` in (``sign`` +1) or out (-1)."""
        day, prec = _normalize_date(str(d["date"]), str(d["date_precision"]))
        wire = str(d.get("wire_id") or d["article_id"])
        article = str(d["article_id"])
        outlet = _outlet(d.get("outlet"), d.get("url"))
        when = (day, prec)
        self.n += sign
        _bump(self.wires, wire, sign)
        _bump(self.articles, article, sign)
        _bump_in(self.date_wires, when, wire, sign)
        _bump(self.date_count, when, sign)
        if outlet:
            _bump_in(self.date_outlets, when, outlet, sign)
            _bump(self.outlets, outlet, sign)
        _bump_in(self.code_wires, str(d["cameo_code"]).strip(), wire, sign)
        pair = (str(d["source_actor"]).strip(), str(d["target_actor"]).strip())
        _bump_in(self.pair_wires, pair, wire, sign)
        _bump(self.pair_count, pair, sign)
        for name in {*pair, *(n for a in d.get("actors") or () if (n := str(a).strip()))}:
            _bump(self.actors, name, sign)
        for raw in d.get("places") or ():
            place = _place(raw)
            _bump(self.places, (place.name, place.lat, place.lon, place.country), sign)
        _bump(self.langs, str(d["lang"]), sign)
        if not d.get("background"):
            self.foreground += sign
        _bump(self.versions, str(d["extractor_version"]), sign)
        self.goldstein += sign * _fixed(float(d.get("goldstein") or 0.0))
        self.tone += sign * _fixed(float(d.get("tone") or 0.0))
        ingested = float(d["ingested_at"])
        mid = str(d["mention_id"])
        key = (day, str(d.get("outlet") or ""), article, mid, prec)
        cited = self.cited
        at = bisect_left(cited, key)
        if sign > 0:
            self.first_seen = min(self.first_seen, ingested)
            self.last_seen = max(self.last_seen, ingested)
            if self.cited_all or at < len(cited):
                cited.insert(at, key)
                if len(cited) > _CITED_KEPT:
                    del cited[MAX_EVIDENCE:]
                    self.cited_all = False
            if at < MAX_EVIDENCE:
                self.evidence[mid] = _evidence(d, day, prec)
            return
        if ingested in (self.first_seen, self.last_seen):
            raise _StaleAggregate("the first or last report left")  # not kept: count again
        if at < len(cited):
            if cited[at] != key:
                raise _StaleAggregate(f"{mid} is not a member")
            del cited[at]
            self.evidence.pop(mid, None)
        elif self.cited_all:
            raise _StaleAggregate(f"{mid} is not a member")
        if len(cited) < MAX_EVIDENCE and not self.cited_all:
            raise _StaleAggregate("fewer than MAX_EVIDENCE cited known")  # count again

    def cited_evidence(self, read: Callable[[str], Mapping[str, Any]]) -> list[MentionEvidence]:
        """The first MAX_EVIDENCE in the evidence order; ``read`` gives a member's document for
        one not built yet (one that moved up as others left)."""
        top = self.cited[:MAX_EVIDENCE]
        out = []
        for day, _, _, mid, prec in top:
            item = self.evidence.get(mid)
            if item is None:
                item = self.evidence[mid] = _evidence(read(mid), day, prec)
            out.append(item)
        if len(self.evidence) > len(top):
            keep = {c[3] for c in top}
            self.evidence = {m: e for m, e in self.evidence.items() if m in keep}
        return out


_FIXED_SHIFT = 1074  # 2**-1074 is the smallest positive double
_FIXED_ONE = 1 << _FIXED_SHIFT


def _fixed(x: float) -> int:
    """``x`` as an integer count of 2**-1074: doubles add exactly in this form, and the int
    division by 2**1074 rounds correctly, so a sum kept this way equals ``math.fsum``."""
    num, den = x.as_integer_ratio()  # den is a power of two
    return num << (_FIXED_SHIFT - den.bit_length() + 1)


# An aggregate keeps the evidence order of at most this many members (then MAX_EVIDENCE): a
# member that leaves is replaced by the next without reading the others.
_CITED_KEPT = 4 * MAX_EVIDENCE


class _StaleAggregate(Exception):
    """An aggregate cannot count this member out: the entry is counted afresh."""


def _bump(counter: Counter[Any], key: Any, sign: int) -> None:
    value = counter[key] + sign
    if value:
        counter[key] = value
    else:
        del counter[key]


def _bump_in(table: dict[Any, Counter[str]], key: Any, item: str, sign: int) -> None:
    counter = table.get(key)
    if counter is None:
        counter = table[key] = Counter()
    _bump(counter, item, sign)
    if not counter:
        del table[key]


def _build_entry(
    entry_id: str,
    docs: Sequence[Mapping[str, Any]],
    reposts: Mapping[str, Any],
) -> TimelineEntry:
    """The entry for one cluster: a pure function of its mentions and the stored reposts."""
    by_id = {str(d["mention_id"]): d for d in docs}
    return _entry_of_aggregate(entry_id, _Aggregate.of(docs), reposts, by_id.__getitem__)


def _entry_of_aggregate(
    entry_id: str,
    agg: _Aggregate,
    reposts: Mapping[str, Any],
    read: Callable[[str], Mapping[str, Any]],
) -> TimelineEntry:
    """The entry an aggregate describes (``read``: a member's document by mention id)."""
    # date by consensus
    date_wires = agg.date_wires

    def contains(outer: tuple[str, int], inner: tuple[str, int]) -> bool:
        return outer[1] >= inner[1] and inner[0].startswith(outer[0])

    support = {
        cand: len(set().union(*(w.keys() for other, w in date_wires.items()
                                if contains(other, cand))))
        for cand in date_wires
    }
    count_by_date = agg.date_count
    best_date = min(support, key=lambda c: (-support[c], c[1], -count_by_date[c], c[0]))
    alternatives = [
        DateAlternative(
            date=cand[0],
            date_precision=_PRECISIONS[cand[1]],
            support=support[cand],
            sources=sorted(agg.date_outlets.get(cand, ())),
        )
        for cand in sorted(support, key=lambda c: (-support[c], c[0], c[1]))
        if not contains(cand, best_date) and not contains(best_date, cand)
    ]

    # CAMEO code: generic codes count toward the specific ones
    code_wires = agg.code_wires
    code_support = {
        code: len(set().union(*(w.keys() for other, w in code_wires.items()
                                if other == code or _generalizes(other, code))))
        for code in code_wires
    }

    def specificity(code: str) -> int:
        return len(code[:2]) if len(code) == 3 and code.endswith("0") else len(code)

    best_code = min(
        code_support, key=lambda c: (-code_support[c], -specificity(c), -len(c), c)
    )

    # direction by majority
    pair_wires, pair_count = agg.pair_wires, agg.pair_count
    source, target = min(
        pair_wires,
        key=lambda p: (-len(pair_wires[p]), -pair_count[p], -len(p[0]) - len(p[1]), p),
    )

    # sources: outlets of the mentions and of the reposts of the stories they cite
    sources = set(agg.outlets)
    article_ids = agg.articles
    repost_times: list[float] = []
    for ref in sorted(article_ids.keys() | agg.wires.keys()):
        for dup_id, rec in (reposts.get(ref) or {}).items():
            if dup_id in article_ids:
                continue
            repost_times.append(float(rec["ingested_at"]))
            if outlet := _outlet(rec.get("outlet"), rec.get("url")):
                sources.add(outlet)

    # one place per (name, lat, lon, country or ""), the variant naming a country preferred
    places: dict[tuple[Any, ...], tuple[str, float, float, str | None]] = {}
    for variant in sorted(agg.places, key=lambda p: (p[0], p[1], p[2], p[3] or "",
                                                     p[3] is not None)):
        places[(variant[0], variant[1], variant[2], variant[3] or "")] = variant

    n_mentions, n_sources = agg.n, len(agg.wires)
    goldstein = (agg.goldstein / _FIXED_ONE) / n_mentions  # as math.fsum(values) / n
    tone = (agg.tone / _FIXED_ONE) / n_mentions
    intensity = min(abs(goldstein) / 10.0, 1.0)
    breadth = 1.0 - 2.0 ** (-n_sources / 2.0)  # 1 source 0.29, 2: 0.5, 4: 0.75, 8: 0.94
    agreement = support[best_date] / n_sources  # share of stories consistent with the date
    confidence = agreement * (0.75 * (1.0 - 0.5**n_sources) + 0.25 * (1.0 - 0.8**n_mentions))

    return TimelineEntry(
        id=entry_id,
        date=best_date[0],
        date_precision=_PRECISIONS[best_date[1]],
        date_alternatives=alternatives,
        cameo_code=best_code,
        cameo_root=best_code[:2],
        actors=sorted(agg.actors),
        source_actor=source,
        target_actor=target,
        summary=_summary(best_code, source, target, *best_date),
        significance=round(0.5 * intensity + 0.5 * breadth, 4),
        goldstein=round(goldstein, 3),
        tone=round(tone, 3),
        background=agg.foreground == 0,
        places=[_place({"name": v[0], "lat": v[1], "lon": v[2], "country": v[3]})
                for _, v in sorted(places.items())],
        mentions=agg.cited_evidence(read),
        sources=sorted(sources),
        languages=sorted(agg.langs),
        mention_count=n_mentions,
        independent_source_count=n_sources,
        confidence=round(confidence, 4),
        first_seen=agg.first_seen,
        updated=max(agg.last_seen, *repost_times) if repost_times else agg.last_seen,
        extractor_version=max(agg.versions, key=lambda v: (_version_key(v), v)),
    )


# --------------------------------------------------------------------------- cross-source anchoring
#
# A floating mention (``date_anchor`` set: an article without a dated publication states "18
# June", "the 12th", "on Tuesday", "in October") is placed by anchoring its *article*: one
# inferred date per article, from which all its floating mentions resolve
# (:func:`streams.dates.anchor_partial`: the matching date nearest the anchor day).
#
# Anchors are natively dated day-precision mentions of *other* stories in the same country dyad
# whose day of month equals the floating mention's (and the month, when it gives one), dated no
# later than the day after the floating mention was ingested, and sharing a place with it when
# both name places. Tier 1 takes anchors of the same CAMEO root; only if there are none, tier 2
# takes any root of the dyad. Each candidate year-month is supported by the floating mentions of
# the article that have an anchor in it; the best supported wins if it is the only one with that
# support, otherwise the article stays unanchored. The anchor day is the earliest anchor of the
# winning month (then smallest mention id); each anchored mention records
# ``anchored:<mention id>`` of its own matching anchor, else the article's.
#
# Weekday and month-only partial dates never anchor an article, they only resolve once it is
# anchored; anchored mentions never anchor others (no chains). So the placement is a function
# of the set of mentions; unanchored floating mentions stay in the state, out of the timeline.


def _anchor_slot(doc: Mapping[str, Any]) -> str | None:
    """Index slot (``dyad|DD``) of a natively dated day-precision mention."""
    if _is_floating(doc):
        return None
    _, key = _summarize(doc)
    if key.prec != 0:
        return None
    return f"{_root_dyad(doc)[1]}|{key.date[8:10]}"


def _place_names(doc: Mapping[str, Any]) -> list[str]:
    return sorted({str(p["name"]) for p in doc.get("places") or () if p.get("name")})


def _anchor_key(slot: str, month: int) -> str:
    """Index key of the anchors of a ``dyad|DD`` slot in one month (1-12) of any year: a
    floating mention that names its month reads one such document, not the whole slot."""
    return f"d|{slot}|{month:02d}"


# An anchor document groups its rows by (date, CAMEO root), then by place names: everything a
# probe filters on but the story, so that a probe tests each date and root once, each place set
# once, and takes a group's first member from another story, instead of testing every row of a
# busy day. A document is a sorted list of groups [date, root, [[places, [[mention id, wire,
# article], ...]], ...]], place sets sorted, members sorted.
_AnchorGroup = Sequence[Any]


def _with_anchor(
    groups: Sequence[_AnchorGroup] | None, row: Sequence[Any], present: bool
) -> list[_AnchorGroup]:
    """An anchor document with ``row`` added (or removed); a new document, the given one is
    left as it is."""
    head, places = [row[1], row[2]], list(row[5])
    member = [row[0], row[3], row[4]]
    updated: list[_AnchorGroup] = []
    found = False
    for group in groups or ():
        if [group[0], group[1]] != head:
            updated.append(group)
            continue
        found = True
        subgroups: list[list[Any]] = []
        placed = False
        for sub_places, members in group[2]:
            if list(sub_places) == places:
                placed = True
                members = [list(m) for m in members if list(m) != member]
                if present:
                    members = sorted([*members, member])
            if members:
                subgroups.append([sub_places, members])
        if present and not placed:
            subgroups.append([places, [member]])
            subgroups.sort(key=lambda sub: list(sub[0]))
        if subgroups:
            updated.append([*head, subgroups])
    if present and not found:
        updated.append([*head, [[places, [member]]]])
        updated.sort(key=lambda group: (group[0], group[1]))
    return updated


def _anchor_groups(index: Mapping[str, Any], slot: str, month: int | None) -> list[_AnchorGroup]:
    """The anchor groups of a slot in ``month`` (None: in any month)."""
    months = range(1, 13) if month is None else (month,)
    return [group for m in months for group in index.get(_anchor_key(slot, m)) or ()]


def _anchor_row(doc: Mapping[str, Any]) -> list[Any]:
    _, key = _summarize(doc)
    return [key.mention_id, key.date, str(doc["cameo_root"]).strip(), key.wire,
            str(doc["article_id"]), _place_names(doc)]


def _floating_slot(doc: Mapping[str, Any]) -> str | None:
    """Index slot (``dyad|DD``) of a floating mention that can anchor its article."""
    parsed = parse_partial(str(doc["date_anchor"]))
    if parsed is None or parsed[0] not in ("month_day", "day") or parsed[2] is None:
        return None
    return f"{_root_dyad(doc)[1]}|{parsed[2]:02d}"


# What a floating mention looks for among anchor rows: its mention id, CAMEO root, wire story,
# article, month (or None), place names, and the latest acceptable anchor date.
_Probe = tuple[str, str, str, str, int | None, set[str], str]


def _probe(doc: Mapping[str, Any]) -> _Probe:
    parsed = parse_partial(str(doc["date_anchor"]))
    assert parsed is not None
    bound = (
        datetime.fromtimestamp(float(doc["ingested_at"]), UTC).date() + timedelta(days=1)
    ).isoformat()
    return (
        str(doc["mention_id"]), str(doc["cameo_root"]).strip(),
        str(doc.get("wire_id") or doc["article_id"]), str(doc["article_id"]), parsed[1],
        set(_place_names(doc)), bound,
    )  # fmt: skip


def _accepts(probe: _Probe, row: Sequence[Any]) -> bool:
    """Whether an anchor row (of the probe's slot) may anchor the probing mention, any tier."""
    _, _, wire, article, month, places, bound = probe
    a_date, a_wire, a_article, a_places = row[1], row[3], row[4], row[5]
    if a_wire == wire or a_article == article or a_date > bound:
        return False
    if month is not None and int(a_date[5:7]) != month:
        return False
    return not (places and a_places and not places & set(a_places))


# What an undated article's floating mentions found among anchor rows, per tier (0: same CAMEO
# root, 1: any root): {year-month: {floating mention id: [anchor date, anchor mention id]}}, the
# earliest anchor per mention. It only grows as anchor rows are added, so the merge keeps it in
# the index (``t|<article>``) and counts a new row into it instead of scanning all rows again.
_Tally = list[dict[str, dict[str, list[str]]]]


def _count(tally: _Tally, probe: _Probe, a_date: str, a_root: str, a_mid: str) -> bool:
    """Count one accepted anchor into the tally; whether it changed."""
    # one shared copy of each year-month (a slice is a new string): tallies hold many
    mid, ym, changed = probe[0], sys.intern(a_date[:7]), False
    for tier in (0, 1) if a_root == probe[1] else (1,):
        cells = tally[tier].setdefault(ym, {})
        current = cells.get(mid)
        if current is None or (a_date, a_mid) < (current[0], current[1]):
            cells[mid] = [a_date, a_mid]
            changed = True
    return changed


def _tally_article(floating: Sequence[Mapping[str, Any]], index: Mapping[str, Any]) -> _Tally:
    """The tally of an undated article's floating mentions over all anchor rows in ``index``
    (:func:`_anchor_key` documents)."""
    tally: _Tally = [{}, {}]
    for doc in sorted(floating, key=lambda d: str(d["mention_id"])):
        slot = _floating_slot(doc)
        if slot is None:
            continue
        probe = _probe(doc)
        _, _, wire, article, month, places, bound = probe
        for a_date, a_root, subgroups in _anchor_groups(index, slot, month):
            if a_date > bound:
                continue  # the document is the probe's month already (_anchor_groups)
            # the smallest mention id of the group that may anchor the probe (what _accepts
            # says of each row): the first member from another story of each fitting place set
            a_mid: str | None = None
            for a_places, members in subgroups:
                if places and a_places and places.isdisjoint(a_places):
                    continue
                for m_mid, m_wire, m_article in members:
                    if m_wire != wire and m_article != article:
                        if a_mid is None or m_mid < a_mid:
                            a_mid = str(m_mid)
                        break
            if a_mid is not None:
                _count(tally, probe, a_date, a_root, a_mid)
    return tally


def _decide(tally: _Tally) -> dict[str, Any] | None:
    """The article's anchor from its tally: tier 1 decides when it found support, tier 2
    otherwise; the best supported year-month wins if it is the only one with that support."""
    for tier in tally:
        if not tier:
            continue
        top = max(len(cells) for cells in tier.values())
        winners = [ym for ym, cells in tier.items() if len(cells) == top]
        if len(winners) != 1:
            return None
        cells = tier[winners[0]]
        by = {mid: cells[mid][1] for mid in sorted(cells)}
        anchor_date, anchor_mid = min((c[0], c[1]) for c in cells.values())
        return {"date": anchor_date, "via": anchor_mid, "by": by}
    return None


def _resolve_article(
    floating: Sequence[Mapping[str, Any]], index: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The anchor of an undated article from its floating mentions, looking up anchor rows in
    ``index`` (:func:`_anchor_key` documents). None when no unique year-month is found."""
    return _decide(_tally_article(floating, index))


def _effective(doc: Mapping[str, Any], resolution: Mapping[str, Any]) -> dict[str, Any] | None:
    """A floating mention as placed by its article's anchor (None: it cannot be placed)."""
    resolved = anchor_partial(str(doc["date_anchor"]), date.fromisoformat(resolution["date"]))
    if resolved is None:
        return None
    via = resolution["by"].get(str(doc["mention_id"]), resolution["via"])
    return {**doc, "date": resolved.date, "date_precision": resolved.precision,
            "date_source": f"anchored:{via}"}


# --------------------------------------------------------------------------- batch


def build_timeline(
    mentions: Iterable[EventMention], duplicates: Iterable[DuplicateNotice] = ()
) -> list[TimelineEntry]:
    """The timeline of a set of mentions (and repost notices), sorted by date then id.

    The reference the incremental :func:`apply_mention` must agree with, in any arrival order.
    """
    docs: dict[str, dict[str, Any]] = {}
    for mention in mentions:
        doc = mention.model_dump(mode="json")
        _validate(doc)
        current = docs.get(mention.mention_id)
        if current is None or _preference(doc) > _preference(current):
            docs[mention.mention_id] = doc
    reposts: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for notice in duplicates:
        rec = _repost_record(notice)
        current_rec = reposts[notice.duplicate_of].get(notice.article_id)
        if current_rec is None or _repost_preference(rec) > _repost_preference(current_rec):
            reposts[notice.duplicate_of][notice.article_id] = rec
    dated = {mid: doc for mid, doc in docs.items() if not _is_floating(doc)}
    anchors: dict[str, list[_AnchorGroup]] = {}
    for doc in dated.values():
        if (slot := _anchor_slot(doc)) is not None:
            anchor_key = _anchor_key(slot, int(str(doc["date"])[5:7]))
            anchors[anchor_key] = _with_anchor(anchors.get(anchor_key), _anchor_row(doc), True)
    by_article: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs.values():
        if _is_floating(doc):
            by_article[str(doc["article_id"])].append(doc)
    for floating in by_article.values():
        resolution = _resolve_article(floating, anchors)
        for doc in floating:
            if resolution is not None and (eff := _effective(doc, resolution)) is not None:
                dated[str(doc["mention_id"])] = eff
    docs = dated
    buckets: dict[str, list[_Key]] = defaultdict(list)
    for doc in docs.values():
        bucket, key = _summarize(doc)
        buckets[bucket].append(key)
    entries = [
        _build_entry(entry_id_for(anchor), [docs[m] for m in members], reposts)
        for keys in buckets.values()
        for anchor, members in _cluster_bucket(keys).items()
    ]
    return sorted(entries, key=lambda e: (e.date, e.id))


# --------------------------------------------------------------------------- incremental
#
# Index documents (``TimelineState.index``), all small and replaced whole on change:
#   m|<bucket>|YYYY-MM  rows [mention_id, date, precision rank, code, wire, anchor] of the day and
#                       month mentions of that month (``_Key`` tuples: the day's ordinal follows)
#   y|<bucket>|YYYY     the same rows for the year mentions of that year
#   s|<bucket>|YYYY-MM  {anchor: [codes, wire or null]}: the level-1 clusters with members in the
#                       month (what year mentions are matched on)
#   a|<article id>      the mention ids citing that article or wire story
#   d|<dyad>|DD|MM      the natively dated day-precision mentions on day DD of month MM, any
#                       year (cross-source anchoring), grouped: [[date, root, places,
#                       [[mention_id, wire, article], ...]], ...]
#   f|<dyad>|DD         [article id, mention id, month or 0] of the floating mentions whose
#                       partial date names day DD: the articles a new anchor that day may place
#   r|<article id>      the anchor of an undated article {date, via, by} (absent: unanchored)
#   t|<article id>      what the floating mentions of an undated article found among anchor rows
#                       (see _Tally), kept so that a new anchor row is counted, not searched for
#   e|<entry id>        the sorted mention ids of the entry (its evidence may be capped)
#   u|<article id>      the sorted ids of the article's floating mentions (what expiry reads)
# A mention's entry id is entry_id_for(its row's anchor).


def _repost_record(notice: DuplicateNotice) -> dict[str, Any]:
    return {"outlet": notice.outlet, "url": notice.url, "ingested_at": notice.ingested_at}


def _doc_key(bucket: str, key: _Key) -> str:
    return f"y|{bucket}|{key.date}" if key.prec == 2 else f"m|{bucket}|{key.date[:7]}"


def _shift_month(month: str, delta: int) -> str:
    index = int(month[:4]) * 12 + int(month[5:7]) - 1 + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_neighbours(doc_key: str, rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    """Adjacent months whose boundary day mentions may link to these rows (a day apart):
    (their doc key, the boundary date to look for there)."""
    prefix, month = doc_key.rsplit("|", 1)
    dates = {row[1] for row in rows if row[2] == 0}
    out: list[tuple[str, str]] = []
    if f"{month}-01" in dates and month > "0001-01":
        before = _shift_month(month, -1)
        last = date.fromisoformat(f"{month}-01") - timedelta(days=1)
        out.append((f"{prefix}|{before}", last.isoformat()))
    after = _shift_month(month, 1)
    last_day = (date.fromisoformat(f"{after}-01") - timedelta(days=1)).isoformat()
    if last_day in dates:
        out.append((f"{prefix}|{after}", f"{after}-01"))
    return out


def _article_refs(doc: Mapping[str, Any]) -> set[str]:
    return {str(doc["article_id"]), str(doc.get("wire_id") or doc["article_id"])}


def _index_article(state: TimelineState, doc: Mapping[str, Any], present: bool) -> None:
    mid = str(doc["mention_id"])
    refs = [f"a|{ref}" for ref in _article_refs(doc)]
    if _is_floating(doc):  # what expiry looks at, instead of every stored mention
        refs.append(f"u|{doc['article_id']}")
    for key in refs:
        current = set(state.index.get(key) or ())
        updated = current | {mid} if present else current - {mid}
        if updated != current:
            if updated:
                state.index[key] = sorted(updated)
            else:
                del state.index[key]


def _load_region(
    state: TimelineState, start: Iterable[str], added_rows: Mapping[str, Sequence[Sequence[Any]]]
) -> dict[str, Sequence[Sequence[Any]]]:
    """The month documents to re-cluster: those touched, closed over links across month ends."""
    region: dict[str, Sequence[Sequence[Any]]] = {}
    pending = list(start)
    while pending:
        doc_key = pending.pop()
        if doc_key in region:
            continue
        region[doc_key] = state.index.get(doc_key) or []  # read only
        rows = [*region[doc_key], *added_rows.get(doc_key, ())]
        for neighbour, boundary in _month_neighbours(doc_key, rows):
            if neighbour in region:
                continue
            there = [*(state.index.get(neighbour) or ()), *added_rows.get(neighbour, ())]
            if any(row[2] == 0 and row[1] == boundary for row in there):
                pending.append(neighbour)
    return region


def _keys_of(rows: Sequence[Sequence[Any]]) -> list[_Key]:
    """The rows of a month or year document as keys (they are keys already, unless written
    as plain lists)."""
    return [_Key.from_row(r) for r in rows]


def _mutate(
    state: TimelineState,
    added: Sequence[Mapping[str, Any]] = (),
    removed: Sequence[Mapping[str, Any]] = (),
) -> list[TimelineChange]:
    """Add and remove mentions, re-cluster what they affect and return the entry changes.

    Level 1 (days, months) is recomputed over the touched months closed over links across month
    ends; level 2 (year mentions) over the touched years, from the month summaries. Each is the
    batch computation restricted to a closed region, so the incremental result equals the batch
    result by construction; the property test checks it.
    """
    add_keys = [_summarize(d) for d in added]
    remove_keys = [_summarize(d) for d in removed]
    removed_ids = {key.mention_id for _, key in remove_keys}
    dirty = {key.mention_id for _, key in add_keys}

    added_rows: dict[str, list[Sequence[Any]]] = defaultdict(list)
    for bucket, key in add_keys:
        added_rows[_doc_key(bucket, key)].append(key.row(""))
    touched = {_doc_key(b, k) for b, k in add_keys + remove_keys}
    region = _load_region(state, (d for d in touched if d[0] == "m"), added_rows)
    years = {d for d in touched if d[0] == "y"} | {f"y|{d[2:-3]}" for d in region}
    year_rows = {d: state.index.get(d) or [] for d in years}  # read only

    seen = [*region.values(), *year_rows.values()]
    old_anchor = {row[0]: row[5] for rows in seen for row in rows}
    new_keys: dict[str, list[_Key]] = {
        d: [k for k in _keys_of(rows) if k.mention_id not in removed_ids]
        for d, rows in [*region.items(), *year_rows.items()]
    }
    for bucket, key in add_keys:
        new_keys[_doc_key(bucket, key)].append(key)

    # level 1 over the region, then the month summaries, then level 2 per touched year
    fine_by_bucket: dict[str, list[_Key]] = defaultdict(list)
    for d in region:
        fine_by_bucket[d[2:-8]].extend(new_keys[d])
    anchors: dict[str, str] = {}
    summaries: dict[str, dict[str, _Info]] = {}
    for bucket, keys in fine_by_bucket.items():
        level1 = _level1(keys)
        anchors.update(level1)
        for month, summary in _month_summaries(keys, level1).items():
            summaries[f"s|{bucket}|{month}"] = summary
    for d in region:
        summaries.setdefault(f"s|{d[2:]}", {})
    for d in sorted(years):
        if new_keys[d]:
            bucket, year = d[2:-5], d[-4:]
            info = _year_info(
                summaries[s] if s in summaries else state.index.get(s) or {}
                for s in (f"s|{bucket}|{year}-{m:02d}" for m in range(1, 13))
            )
            _group_coarse(new_keys[d], _Candidates(info), anchors)

    # membership changes: entries hold their members; only rows seen here can have moved
    moved_out: dict[str, set[str]] = defaultdict(set)
    moved_in: dict[str, set[str]] = defaultdict(set)
    for mid in old_anchor.keys() | anchors.keys():
        before, after = old_anchor.get(mid), anchors.get(mid)
        if before == after and mid not in dirty:
            continue
        if before is not None:
            moved_out[before].add(mid)
        if after is not None:
            moved_in[after].add(mid)
    upserts: list[TimelineChange] = []
    tombstones: list[TimelineChange] = []
    changed_docs = _ChangedDocs(state, removed, added)
    for anchor in sorted(moved_out.keys() | moved_in.keys(), key=entry_id_for):
        eid = entry_id_for(anchor)
        members_doc = state.index.get(f"e|{eid}")
        before_members = _members(state, eid)
        members = (set(before_members) - moved_out[anchor]) | moved_in[anchor]
        listed = sorted(members)
        agg = _updated_aggregate(eid, members_doc, moved_out[anchor], moved_in[anchor],
                                 changed_docs)
        if listed != before_members:
            if listed:
                state.index[f"e|{eid}"] = members_doc = listed
            else:
                state.index.pop(f"e|{eid}", None)
        if members:
            if agg is None:
                agg = _Aggregate.of(_placed(state, m) for m in listed)
            entry = _entry_from_cached(state, eid, agg, members_doc)
            encoded = entry.model_dump_json()
            if not _holds(state.entries, eid, encoded):
                state.entries[eid] = encoded
                upserts.append(TimelineChange("upsert", eid, entry=entry, encoded=encoded))
        elif eid in state.entries:
            del state.entries[eid]
            survivor = _survivor(entry_id_for(a) for m in moved_out[anchor]
                                 if (a := anchors.get(m)) is not None)
            tombstones.append(TimelineChange("tombstone", eid, merged_into=survivor))

    for d, keys in new_keys.items():
        previous = region.get(d, year_rows.get(d)) or []
        if d not in touched and previous and len(previous) == len(keys) and all(
            anchors[k.mention_id] == old_anchor.get(k.mention_id) for k in keys
        ):
            continue  # no row added, removed or re-anchored: the document stays as it is
        if not keys:
            state.index.pop(d, None)
            continue
        # the rows of members that neither moved nor changed are kept as they are
        kept = {r[0]: r for r in previous}
        changed = len(previous) != len(keys)
        rows: list[_Key] = []
        for k in keys:
            anchor = anchors[k.mention_id]
            row = kept.get(k.mention_id)
            if row is None or row[5] != anchor or k.mention_id in dirty:
                row = k.row(anchor)
                changed = changed or row != kept.get(k.mention_id)
            rows.append(_Key.from_row(row))
        if not changed:
            continue
        rows.sort(key=_by_mention_id)  # mostly in order already: about linear
        state.index[d] = rows
    for s, summary in summaries.items():
        if not summary:
            state.index.pop(s, None)
        elif state.index.get(s) != _jsonable(summary):
            state.index[s] = _jsonable(summary)
    return upserts + tombstones


# --------------------------------------------------------------------------- entry aggregates
#
# The aggregates of recently changed entries, by entry id, each valid for the ``e|`` document it
# was made for (documents are replaced, never mutated, so identity says the members are those):
# a merge updates the aggregate of each entry it touches by the members that moved, instead of
# reading all members and rebuilding. Bounded by the members they describe, least recent out.
AGGREGATE_CACHE_MEMBERS = 100_000  # the worker sets RELWATCH_TIMELINE_AGGREGATE_MEMBERS
AGGREGATE_MIN_MEMBERS = 32  # a smaller entry is rebuilt from its members: cheap, and its
# aggregate would hold about 1.4 kB a member (evidence included), a bigger one about 1 kB
_AGGREGATES: OrderedDict[str, _Aggregate] = OrderedDict()
_AGGREGATE_SIZE = {"members": 0}


def set_aggregate_cache(members: int) -> None:
    """Keep the counts of at most ``members`` mentions' worth of entries (0: none)."""
    global AGGREGATE_CACHE_MEMBERS
    AGGREGATE_CACHE_MEMBERS = members
    _evict_aggregates()


def _evict_aggregates() -> None:
    """Drop the least recently changed aggregates until they fit the bound."""
    while _AGGREGATES and _AGGREGATE_SIZE["members"] > AGGREGATE_CACHE_MEMBERS:
        _, oldest = _AGGREGATES.popitem(last=False)
        _AGGREGATE_SIZE["members"] -= oldest.n


def _cached_aggregate(entry_id: str, members_doc: Any) -> _Aggregate | None:
    agg = _AGGREGATES.pop(entry_id, None)
    if agg is None:
        return None
    _AGGREGATE_SIZE["members"] -= agg.n
    return agg if members_doc is not None and agg.members_doc is members_doc else None


def _cache_aggregate(entry_id: str, agg: _Aggregate, members_doc: Any) -> None:
    if agg.n < AGGREGATE_MIN_MEMBERS:
        return
    agg.members_doc = members_doc
    _AGGREGATES[entry_id] = agg
    _AGGREGATE_SIZE["members"] += agg.n
    _evict_aggregates()


class _ChangedDocs:
    """The documents of one change's members: as they were (removed) and as they are (added);
    a member that only moved between entries is read as it is stored."""

    def __init__(self, state: TimelineState, removed: Sequence[Mapping[str, Any]],
                 added: Sequence[Mapping[str, Any]]) -> None:
        self.state = state
        self.old = {str(d["mention_id"]): d for d in removed}
        self.new = {str(d["mention_id"]): d for d in added}

    def before(self, mid: str) -> Mapping[str, Any] | None:
        """The document ``mid`` was counted with (None: not known here)."""
        if mid in self.old:
            return self.old[mid]
        return None if mid in self.new else _placed(self.state, mid)

    def after(self, mid: str) -> Mapping[str, Any]:
        return self.new[mid] if mid in self.new else _placed(self.state, mid)


def _updated_aggregate(entry_id: str, members_doc: Any, moved_out: Iterable[str],
                       moved_in: Iterable[str], docs: _ChangedDocs) -> _Aggregate | None:
    """The entry's cached aggregate with the moved members counted out and in, or None when
    there is none (or a member's former document is unknown): then it is built afresh."""
    agg = _cached_aggregate(entry_id, members_doc)
    if agg is None:
        return None
    try:
        for mid in moved_out:
            before = docs.before(mid)
            if before is None:
                return None
            agg.update(before, -1)
        for mid in moved_in:
            agg.update(docs.after(mid), +1)
    except _StaleAggregate:
        return None
    return agg


def _entry_from_cached(state: TimelineState, entry_id: str, agg: _Aggregate,
                       members_doc: Any) -> TimelineEntry:
    reposts = {ref: rec for ref in agg.articles.keys() | agg.wires.keys()
               if (rec := state.reposts.get(ref))}
    entry = _entry_of_aggregate(entry_id, agg, reposts, lambda mid: _placed(state, mid))
    _cache_aggregate(entry_id, agg, members_doc)
    return entry


def _current_entry(state: TimelineState, entry_id: str) -> TimelineEntry:
    """An entry rebuilt from its stored members (and the reposts now stored)."""
    members_doc = state.index.get(f"e|{entry_id}")
    agg = _cached_aggregate(entry_id, members_doc)
    if agg is None:
        agg = _Aggregate.of(_placed(state, m) for m in _members(state, entry_id))
    return _entry_from_cached(state, entry_id, agg, members_doc)


def _by_mention_id(key: _Key) -> str:
    return key.mention_id


def _jsonable(summary: Mapping[str, _Info]) -> dict[str, list[Any]]:
    return {anchor: [list(codes), wire] for anchor, (codes, wire) in summary.items()}


def _members(state: TimelineState, entry_id: str) -> list[str]:
    """The sorted mention ids of an entry (its ``e|`` index document: the published evidence
    may be capped, see :data:`MAX_EVIDENCE`)."""
    listed = state.index.get(f"e|{entry_id}")
    return [str(m) for m in listed] if listed else []


def _survivor(entry_ids: Iterable[str]) -> str | None:
    """The entry holding most of a removed entry's mentions (ties: smallest id), if any."""
    counts = Counter(entry_ids)
    if not counts:
        return None
    return min(counts, key=lambda eid: (-counts[eid], eid))


def _placed(state: TimelineState, mention_id: str) -> dict[str, Any]:
    """The document a mention is clustered by (a floating one as anchored); it must be placed."""
    placed = _placed_or_none(state, mention_id)
    assert placed is not None, mention_id
    return placed


def _placed_or_none(state: TimelineState, mention_id: str) -> dict[str, Any] | None:
    stored = state.mentions[mention_id]
    doc: dict[str, Any] = stored if type(stored) is dict else dict(stored)  # read, never changed
    if not _is_floating(doc):
        return doc
    resolution = state.index.get(f"r|{doc['article_id']}")
    return _effective(doc, resolution) if resolution else None


def _floating_of(state: TimelineState, article: str) -> list[dict[str, Any]]:
    """The floating mentions of an article, by id (its ``u|`` document lists them: the ``a|``
    one also lists its dated mentions and those citing it as their wire story)."""
    out = []
    for mid in state.index.get(f"u|{article}") or ():
        doc = state.mentions.get(mid)
        if doc is not None and _is_floating(doc) and str(doc["article_id"]) == article:
            out.append(dict(doc))
    return sorted(out, key=lambda d: str(d["mention_id"]))


def _index_slot(state: TimelineState, key: str, row: list[Any], present: bool) -> None:
    """Add or remove ``row`` in the sorted rows of ``key`` (a new list: never mutated)."""
    rows = state.index.get(key) or []
    at = bisect_left(rows, row)
    there = at < len(rows) and list(rows[at]) == row
    if present == there:
        return
    updated = [*rows[:at], row, *rows[at:]] if present else [*rows[:at], *rows[at + 1:]]
    if updated:
        state.index[key] = updated
    else:
        del state.index[key]


def _index_anchoring(state: TimelineState, doc: Mapping[str, Any], present: bool) -> None:
    if _is_floating(doc):
        if (slot := _floating_slot(doc)) is not None:
            parsed = parse_partial(str(doc["date_anchor"]))
            month = parsed[1] if parsed is not None and parsed[1] is not None else 0
            row = [str(doc["article_id"]), str(doc["mention_id"]), month]
            _index_slot(state, f"f|{slot}", row, present)
    elif (slot := _anchor_slot(doc)) is not None:
        key = _anchor_key(slot, int(str(doc["date"])[5:7]))
        groups = _with_anchor(state.index.get(key), _anchor_row(doc), present)
        if groups:
            state.index[key] = groups
        else:
            state.index.pop(key, None)


def _note_placed(
    state: TimelineState, floating: Iterable[Mapping[str, Any]], into: dict[str, dict[str, Any]]
) -> None:
    """Note where the stored anchor of their article places these floating mentions."""
    for doc in floating:
        if (placed := _placed_or_none(state, str(doc["mention_id"]))) is not None:
            into[str(doc["mention_id"])] = placed


def _change(
    state: TimelineState,
    added: Sequence[Mapping[str, Any]] = (),
    removed: Sequence[Mapping[str, Any]] = (),
) -> list[TimelineChange]:
    """Add and remove stored mentions: re-anchor the undated articles they concern, then
    re-cluster (:func:`_mutate`) what moved."""
    affected: set[str] = set()
    rows_by_change: dict[bool, dict[str, list[list[Any]]]] = {
        True: defaultdict(list), False: defaultdict(list)}
    maybe: set[str] = set()
    scanned: set[tuple[str, int]] = set()  # a batch's rows share few (slot, month) pairs
    for doc, present in [*((d, True) for d in added), *((d, False) for d in removed)]:
        if _is_floating(doc):
            affected.add(str(doc["article_id"]))
        elif (slot := _anchor_slot(doc)) is not None:
            rows_by_change[present][slot].append(_anchor_row(doc))
            month = int(str(doc["date"])[5:7])
            if (slot, month) not in scanned:
                scanned.add((slot, month))
                maybe.update(
                    str(r[0]) for r in state.index.get(f"f|{slot}") or () if r[2] in (0, month)
                )
    # an undated article is re-anchored only if a changed anchor row passes one of its
    # mentions' filters: rows none accepts cannot change its resolution. Rows that are only
    # added are counted into its tally; a removed one makes it count everything again.
    counted: dict[str, list[tuple[_Probe, list[list[Any]]]]] = {}
    for article in sorted(maybe - affected):
        hits: list[tuple[_Probe, list[list[Any]]]] = []
        for doc in _floating_of(state, article):
            slot = _floating_slot(doc) or ""
            new_rows, gone_rows = rows_by_change[True].get(slot), rows_by_change[False].get(slot)
            if not new_rows and not gone_rows:
                continue
            probe = _probe(doc)
            if any(_accepts(probe, row) for row in gone_rows or ()):
                affected.add(article)
                break
            if accepted := [row for row in new_rows or () if _accepts(probe, row)]:
                hits.append((probe, accepted))
        else:
            if hits and f"t|{article}" in state.index:
                counted[article] = hits
            elif hits:
                affected.add(article)
    before: dict[str, dict[str, Any]] = {}
    for article in affected:
        _note_placed(state, _floating_of(state, article), before)
    for doc in removed:
        del state.mentions[str(doc["mention_id"])]
        _index_article(state, doc, present=False)
        _index_anchoring(state, doc, present=False)
    for doc in added:
        state.mentions[str(doc["mention_id"])] = dict(doc)
        _index_article(state, doc, present=True)
        _index_anchoring(state, doc, present=True)

    after: dict[str, dict[str, Any]] = {}

    def place(article: str, floating: Sequence[dict[str, Any]],
              resolution: dict[str, Any] | None) -> None:
        key = f"r|{article}"
        if resolution is None:
            state.index.pop(key, None)
            return
        if state.index.get(key) != resolution:
            state.index[key] = resolution
        for doc in floating:
            if (placed := _effective(doc, resolution)) is not None:
                after[str(doc["mention_id"])] = placed

    for article in sorted(affected):
        floating = _floating_of(state, article)
        if not floating:
            state.index.pop(f"t|{article}", None)
            place(article, floating, None)
            continue
        tally = _tally_article(floating, state.index)
        state.index[f"t|{article}"] = tally
        place(article, floating, _decide(tally))
    for article, hits in sorted(counted.items()):
        stored = state.index[f"t|{article}"]
        tally = [{ym: {m: list(c) for m, c in cells.items()} for ym, cells in tier.items()}
                 for tier in stored]  # a new document: the stored one is never mutated
        changed = False
        for probe, accepted in hits:
            for row in accepted:
                changed |= _count(tally, probe, row[1], row[2], row[0])
        if not changed:
            continue
        state.index[f"t|{article}"] = tally
        previous = state.index.get(f"r|{article}")
        resolution = _decide(tally)
        if resolution == previous:
            continue
        floating = _floating_of(state, article)
        _note_placed(state, floating, before)  # by the anchor still stored
        place(article, floating, resolution)
    cluster_removed = [d for d in removed if not _is_floating(d)]
    cluster_removed += [d for mid, d in sorted(before.items()) if after.get(mid) != d]
    cluster_added = [d for d in added if not _is_floating(d)]
    cluster_added += [d for mid, d in sorted(after.items()) if before.get(mid) != d]
    return _mutate(state, added=cluster_added, removed=cluster_removed)


def _entry_of(state: TimelineState, mention_id: str) -> str | None:
    placed = _placed_or_none(state, mention_id)
    if placed is None:
        return None
    bucket, key = _summarize(placed)
    for row in state.index.get(_doc_key(bucket, key)) or ():
        if row[0] == mention_id:
            return entry_id_for(row[5])
    return None


def apply_mention(state: TimelineState, mention: EventMention) -> list[TimelineChange]:
    """Merge one mention into the timeline; return the changes to publish.

    Idempotent: a mention id already applied with the same payload changes nothing. Two payloads
    with one id resolve to the same winner in any order (:func:`_preference`).
    Raises :class:`RejectedInput` for a mention that cannot be placed (bad date, actor, code).
    """
    doc = mention.model_dump(mode="json")
    _validate(doc)
    current = state.mentions.get(mention.mention_id)
    if current is not None:
        if current == doc or _preference(current) >= _preference(doc):
            return []
        return _change(state, added=[doc], removed=[current])
    return _change(state, added=[doc])


def pause_after_merge(merge_s: float, merged: int, batch_max: int, factor: float,
                      longest: float) -> float:
    """How long the timeline stage waits after merging ``merged`` mentions in ``merge_s``
    seconds before it gathers its next micro-batch: ``factor * merge_s``, at most ``longest``.

    Under load the wait lets mentions gather, so that the next merge takes more at once (its
    cost grows with the entries and months it touches more than with the mentions it adds).
    A full batch (``batch_max``) says more are already waiting: then the wait would only add
    to the backlog and to the time a burst takes to drain, so there is none.
    """
    if merged >= batch_max:
        return 0.0
    return max(0.0, min(factor * merge_s, longest))


def apply_mentions(state: TimelineState, mentions: Iterable[EventMention]) -> list[TimelineChange]:
    """Merge a batch of mentions in one pass; return the changes to publish.

    The state after equals the state after applying them one by one with :func:`apply_mention`
    (the merge is a function of the set of mentions), but each touched month is re-clustered and
    each touched entry rebuilt once per batch instead of once per mention: with big entries and
    busy months that is most of the merge's cost. The changes name each entry once, in its
    version after the whole batch. Raises :class:`RejectedInput` for the first mention that
    cannot be placed, before anything is changed (check them one by one with
    :func:`check_mention` to sort the bad ones out first).
    """
    chosen: dict[str, dict[str, Any]] = {}
    for mention in mentions:
        doc = mention.model_dump(mode="json")
        _validate(doc)
        earlier = chosen.get(mention.mention_id)
        if earlier is None or (earlier != doc and _preference(doc) > _preference(earlier)):
            chosen[mention.mention_id] = doc
    added: list[dict[str, Any]] = []
    removed: list[Any] = []
    for mid, doc in chosen.items():
        current = state.mentions.get(mid)
        if current is not None:
            if current == doc or _preference(current) >= _preference(doc):
                continue
            removed.append(current)
        added.append(doc)
    if not added:
        return []
    return _change(state, added=added, removed=removed)


def check_mention(mention: EventMention) -> None:
    """Raise :class:`RejectedInput` if the mention cannot be placed (bad date, actor, code)."""
    _validate(mention.model_dump(mode="json"))


def retract_mention(state: TimelineState, mention_id: str) -> list[TimelineChange]:
    """Drop a mention the current extractor no longer finds (``relwatch reprocess``)."""
    current = state.mentions.get(mention_id)
    if current is None:
        return []
    return _change(state, removed=[current])


def apply_duplicate(state: TimelineState, notice: DuplicateNotice) -> list[TimelineChange]:
    """Record a repost: entries citing the original gain the repost's outlet in ``sources``.

    Stored whatever the order, so a notice that arrives before the original's mentions is applied
    when they come. Reposts never add independent sources.
    """
    rec = _repost_record(notice)
    current = dict(state.reposts.get(notice.duplicate_of) or {})
    previous = current.get(notice.article_id)
    if previous is not None and (
        previous == rec or _repost_preference(previous) >= _repost_preference(rec)
    ):
        return []
    current[notice.article_id] = rec
    state.reposts[notice.duplicate_of] = current
    entry_ids = {
        eid for mid in state.index.get(f"a|{notice.duplicate_of}") or ()
        if (eid := _entry_of(state, mid)) is not None
    }
    # a new repost whose outlet an entry already lists, no later than its last update, leaves
    # the entry as it is (reposts only add outlets to sources and times to updated): no rebuild
    outlet = _outlet(rec["outlet"], rec["url"])
    # a first repost of an article without mentions of its own can only add its outlet to
    # sources and its time to updated: the stored entry is patched instead of rebuilt
    patchable = previous is None and not state.index.get(f"a|{notice.article_id}")
    changes: list[TimelineChange] = []
    for eid in sorted(entry_ids):
        encoded = state.entries.get(eid)
        if encoded is None:
            continue
        stored = json.loads(encoded)
        if (
            previous is None
            and (outlet is None or outlet in stored["sources"])
            and float(rec["ingested_at"]) <= float(stored["updated"])
        ):
            continue
        if patchable:
            sources = set(stored["sources"]) | ({outlet} if outlet else set())
            updated = max(float(stored["updated"]), float(rec["ingested_at"]))
            entry = TimelineEntry.model_validate(
                {**stored, "sources": sorted(sources), "updated": updated}
            )
        else:
            entry = _current_entry(state, eid)
        if (new := entry.model_dump_json()) != encoded:
            state.entries[eid] = new
            changes.append(TimelineChange("upsert", eid, entry=entry, encoded=new))
    return changes


def expire(state: TimelineState, horizon_days: float, now: float) -> list[TimelineChange]:
    """Drop entries whose event date and last evidence are both older than the horizon.

    Returns ``expire`` changes carrying the entries (for the archive topic), plus any upserts or
    tombstones of entries whose clustering the removal changes. Repost notices older than the
    horizon that no remaining mention cites are forgotten too.
    """
    cutoff = now - horizon_days * 86400.0
    expired: dict[str, TimelineEntry] = {}
    for eid, encoded in list(state.entries.items()):
        doc = json.loads(encoded)
        prec = _RANK[doc["date_precision"]]
        if float(doc["updated"]) < cutoff and _period_end(doc["date"], prec) <= cutoff:
            expired[eid] = TimelineEntry.model_validate(doc)
    removed = [state.mentions[m] for eid in expired for m in _members(state, eid)]
    # floating mentions no dated report anchored within the horizon are forgotten too; the
    # ``u|`` documents list them, so that expiry reads them and not every stored mention
    floating = sorted(mid for key in [k for k in state.index if k.startswith("u|")]
                      for mid in state.index[key])
    removed += [
        doc for mid in floating
        if float((doc := state.mentions[mid])["ingested_at"]) < cutoff
        and _placed_or_none(state, mid) is None
    ]
    changes = _change(state, removed=removed) if removed else []
    out: list[TimelineChange] = []
    for change in changes:
        if change.kind == "tombstone" and change.entry_id in expired:
            continue
        out.append(change)
    out.extend(TimelineChange("expire", eid, entry=expired[eid]) for eid in sorted(expired))
    for original, recs in list(state.reposts.items()):
        if f"a|{original}" in state.index:
            continue
        if all(float(r["ingested_at"]) < cutoff for r in recs.values()):
            del state.reposts[original]
    return out


# --------------------------------------------------------------------------- crash repair


def rebuild_derived(state: TimelineState) -> TimelineState:
    """A state whose index and entries are derived afresh from ``state``'s mentions and reposts.

    The worker's tables are separate changelog topics, so a crash can persist some writes of
    one message and lose others. Mentions and reposts are the source of truth; everything else
    follows from them, order-independently, so this is the batch result for the same input.
    """
    fresh = empty_derived(state)
    for _ in rebuild_derived_into(fresh, state):
        pass
    return fresh


def empty_derived(state: TimelineState) -> TimelineState:
    """An empty index and no entries, beside a copy of ``state``'s reposts: what
    :func:`rebuild_derived_into` fills."""
    index_docs_in_use = (state.index.cache_size if isinstance(state.index, PackedDocs)
                         else PackedDocs.DEFAULT_CACHE_SIZE)
    return TimelineState(mentions={}, entries=CompressedEntries(),
                         index=PackedDocs(cache_size=index_docs_in_use),
                         reposts=dict(state.reposts.items()))


def rebuild_derived_into(fresh: TimelineState, state: TimelineState,
                         chunk: int | None = None) -> Iterator[int]:
    """Merge ``state``'s mentions into ``fresh`` (:func:`empty_derived`) a chunk at a time
    (:data:`_REBUILD_CHUNK`, in the order of their ids), yielding the mentions merged so far
    after each chunk. The worker awaits between chunks, so that a rebuild of hundreds of
    thousands of mentions (minutes) does not stop its event loop: the consumer's heartbeats go
    on. Only a chunk's mentions are decoded at a time (all at once took about 1.8 kB each).
    """
    size = chunk or _REBUILD_CHUNK
    ids = sorted(state.mentions)
    for at in range(0, len(ids), size):
        apply_mentions(fresh, [EventMention.model_validate(state.mentions[m])
                               for m in ids[at:at + size]])
        yield min(at + size, len(ids))


# Mentions merged in one pass when the state is rebuilt (apply_mentions: each touched month is
# re-clustered once per pass, not once per mention; 11,000 mentions took 15 s one by one).
_REBUILD_CHUNK = 4_096


# --------------------------------------------------------------------------- diffs and replay


def diff_timelines(
    old: Mapping[str, TimelineEntry], new: Mapping[str, TimelineEntry]
) -> list[TimelineChange]:
    """Changes turning ``old`` into ``new`` (for reprocessing): upserts of new and changed entries,
    then tombstones of entries no longer supported, naming the entry that took over most of their
    mentions when there is one."""
    upserts = [
        TimelineChange("upsert", eid, entry=entry)
        for eid, entry in sorted(new.items())
        if old.get(eid) != entry
    ]
    holder = {m.mention_id: eid for eid, entry in new.items() for m in entry.mentions}
    tombstones = [
        TimelineChange(
            "tombstone",
            eid,
            merged_into=_survivor(holder[m.mention_id] for m in entry.mentions
                                  if m.mention_id in holder),
        )
        for eid, entry in sorted(old.items())
        if eid not in new
    ]
    return upserts + tombstones


def replay_changes(
    changes: Iterable[TimelineChange], into: MutableMapping[str, TimelineEntry] | None = None
) -> MutableMapping[str, TimelineEntry]:
    """What a consumer of the compacted topic sees after reading ``changes`` in order."""
    view: MutableMapping[str, TimelineEntry] = {} if into is None else into
    for change in changes:
        if change.kind == "upsert" and change.entry is not None:
            view[change.entry_id] = change.entry
        else:
            view.pop(change.entry_id, None)
    return view
