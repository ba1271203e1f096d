"""relwatch settings, from the environment (prefix ``RELWATCH_``) and CLI flags.

Faust reads environment variables of its own (``BROKER_URL``, ``APP_DATADIR``, ``WEB_PORT``, ...)
and lets them override what the code passes to ``faust.App``. relwatch therefore reads only
``RELWATCH_*`` names plus the conventional ``KAFKA_BOOTSTRAP_SERVERS`` and passes every value
to Faust explicitly. Every setting is listed in docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RELWATCH_", extra="ignore", frozen=True, populate_by_name=True
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "RELWATCH_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers; unset = the embedded local broker",
    )
    namespace: str = Field(
        default="", description="Prefix for every topic and the consumer group ('' = none)"
    )
    app_id: str = Field(default="relwatch", description="Faust app id (consumer group base)")
    data_dir: Path = Field(
        default=REPO_ROOT / ".relwatch", description="Worker state (Faust data dir, tables)"
    )
    store: str = Field(
        default="rocksdb://",
        description="Faust table store: rocksdb:// (on disk under the data dir, through "
        "rocksdict; memory stays bounded) or memory:// (everything in RAM)",
    )
    stream_buffer_maxsize: int = Field(
        default=4096, description="Messages each agent may hold in its stream buffer "
        "(more: fewer waits on the fetcher; fewer: less memory in a burst)",
    )
    rocksdb_cache_mb: int = Field(
        default=4, description="RocksDB block cache per table (MB), with rocksdb://. A block "
        "that misses it is read from the OS page cache; the mention table filled 16 MB and "
        "gave no measurable speed for it (bench/README.md, session 16)",
    )
    rocksdb_write_buffer_mb: int = Field(
        default=4, description="RocksDB memtable size (MB; two per table), with rocksdb://"
    )
    malloc_mmap_threshold_kb: int = Field(
        default=64, ge=0,
        description="glibc only: blocks of at least this size (KB) get their own mapping, "
        "given back to the system when freed, and the heap is trimmed above 16 times it; "
        "0 = glibc's defaults, which raise the threshold to the largest block freed so far "
        "(up to 32 MB) and keep such blocks in the heap (about 25 MB more at 20,000 articles)",
    )
    malloc_trim_idle_s: float = Field(
        default=5.0, ge=0,
        description="glibc only: every this many seconds the worker checks whether it "
        "processed anything since the last check; the first quiet check gives the heap's free "
        "space back to the system (malloc_trim, a few ms; about 35 MB at 55,000 articles). "
        "A stage process does the same once no batch has come for this long. 0 = never",
    )
    gc_thresholds: tuple[int, int, int] = Field(
        default=(50_000, 20, 100),
        description="The worker's garbage collector thresholds (Python's gc.set_threshold, "
        "as a JSON list); Python's (700, 10, 10) run a full collection, which walks every "
        "object of the timeline and dedupe state, so often that it took 17 % of the merge's "
        "CPU on a 24,000-article replay. The objects loaded before the first message are "
        "frozen (gc.freeze) and never walked again",
    )
    web_port: int = Field(default=6066, description="Worker HTTP port (/metrics, /health, API)")
    web_host: str = Field(default="127.0.0.1", description="Worker HTTP bind address")
    web_enabled: bool = Field(default=True, description="Serve the worker's HTTP endpoints")
    commit_interval_s: float = Field(default=1.0, description="Consumer offset commit interval")
    session_timeout_s: float = Field(
        default=10.0,
        description="Consumer group session timeout: how soon a dead worker's "
        "partitions move to the others",
    )
    heartbeat_interval_s: float = Field(default=3.0, description="Consumer heartbeat interval")
    replication_factor: int = Field(default=1, description="Replication of created topics")
    raw_partitions: int = Field(
        default=1, description="Partitions of articles.raw (see docs/partitioning.md)"
    )
    unique_partitions: int = Field(default=4, description="Partitions of articles.unique")
    dedupe_window_days: float = Field(
        default=14.0, description="How long dedupe remembers articles"
    )
    timeline_horizon_days: float = Field(
        default=3650.0, description="Rolling window: entries older than this are expired"
    )
    timeline_expire_interval_s: float = Field(
        default=60.0,
        description="How often (at most) the timeline agent runs expiry, on its next message",
    )
    timeline_coalesce_s: float = Field(
        default=0.05,
        description="Window in which timeline changes are coalesced: an entry changed several "
        "times in it is published once, in its last version (0 = every change at once)",
    )
    timeline_yield_factor: float = Field(
        default=6.0,
        description="After a merge that took t seconds, the timeline stage waits factor * t "
        "(at most RELWATCH_TIMELINE_YIELD_MAX_S) before it gathers its next micro-batch, so "
        "that under load the other stages run and the next merge takes more mentions at once "
        "(its cost grows with the entries and months it touches, not with the mentions it "
        "adds: 6 instead of 1 cut the event loop's CPU per article by about a fifth, "
        "bench/README.md runs 37-41); no wait after a full batch (RELWATCH_TIMELINE_BATCH_MAX: "
        "more mentions are already waiting); 0 = no wait",
    )
    timeline_yield_max_s: float = Field(
        default=1.0,
        ge=0,
        description="The longest wait after a merge (RELWATCH_TIMELINE_YIELD_FACTOR): under "
        "load it sets how many mentions the next merge takes, and adds at most this to the "
        "ingest-to-timeline latency of a loaded worker (1.0 instead of 0.5: about 340 instead "
        "of 245 mentions a merge and 203 instead of 199 articles/s, bench/README.md run 43)",
    )
    stage_processes: int = Field(
        default=-1,
        description="Processes that run the stateless stages (normalize, extract + enrich) "
        "beside the worker's event loop; 0 runs them in the worker's own process, -1 = one "
        "fewer than the CPUs the worker may use (its affinity or its container's CPU limit), "
        "at most 3: 1 on a 2-core box",
    )
    stage_batch_max: int = Field(
        default=256,
        description="Most records the normalize or extract stage hands to its processes at once "
        "(under load a longer batch keeps a stage process busy while the event loop merges; 256 "
        "instead of 64 gave 163 -> 176 articles/s end to end in bench/README.md run 39)",
    )
    stage_batch_within_s: float = Field(
        default=0.01,
        description="How long the normalize and extract stages gather a batch (adds at most "
        "this, per stage, to the ingest-to-timeline latency)",
    )
    timeline_batch_max: int = Field(
        default=1024,
        description="Most mention records the timeline stage merges in one pass (a micro-batch: "
        "each touched month is re-clustered and each touched entry rebuilt once per batch)",
    )
    timeline_aggregate_members: int = Field(
        default=100_000,
        ge=0,
        description="Mentions' worth of entry counts the timeline keeps (entries of 32 or more "
        "mentions, least recently changed out; about 0.6-1 kB a mention): a change to an entry "
        "whose counts are kept costs the mentions that moved, otherwise all its mentions are "
        "read again. Lower it to trade merge speed at scale for memory",
    )
    timeline_index_docs_in_use: int = Field(
        default=1_024,
        ge=1,
        description="Timeline index documents of the nested kinds (undated articles' tallies, "
        "anchor groups) held decoded, the most recently used; the others are held marshalled, "
        "about a quarter of the memory. Raise it to trade memory for merge speed",
    )
    timeline_batch_within_s: float = Field(
        default=0.02,
        description="How long the timeline stage gathers a micro-batch before merging it "
        "(adds at most this to the ingest-to-timeline latency; 0.25 merged 10-15 % more "
        "articles/s under load in bench/README.md run 24, for 0.1-0.2 s more latency)",
    )
    lag_metrics_interval_s: float = Field(
        default=15.0,
        description="How often the worker exports its group's consumer lag and the RAM its "
        "tables' RocksDB stores hold on /metrics (0 = never)",
    )
    commit_hole_refetch_s: float = Field(
        default=15.0,
        description="How long a hole in a partition's processed offsets may stay open before "
        "the worker fetches the partition again from its committed offset (0 = never; see "
        "docs/delivery-semantics.md)",
    )
    stalled_partition_refetch_s: float = Field(
        default=30.0,
        description="How long an assigned input partition with records to read may make no "
        "progress before the worker fetches it again from its committed offset (0 = never; "
        "see docs/delivery-semantics.md)",
    )
    max_text_chars: int = Field(default=200_000, description="Longer article texts are truncated")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON otherwise"
    )
    log_level: str = Field(default="INFO", description="Log level")
    local_broker_port: int = Field(default=9092, description="Port of the embedded local broker")
    local_broker_controller_port: int = Field(
        default=9093, description="Controller port of the embedded local broker"
    )
    producer_compression: Literal["none", "gzip"] = Field(
        default="none", description="Producer compression codec"
    )
    producer_linger_ms: int = Field(
        default=5,
        description="How long a producer (the worker's and the ingest commands') waits to fill "
        "a batch (larger: fewer, bigger requests and less CPU in client and broker; adds up "
        "to this per hop to the ingest-to-timeline latency)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol of every client"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)"
    )
    sasl_username: str | None = Field(default=None, description="SASL user name")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (never logged)"
    )
    ssl_cafile: Path | None = Field(default=None, description="CA bundle to verify the brokers")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS)")
    ssl_keyfile: Path | None = Field(default=None, description="Client private key (mTLS)")

    def topic_name(self, base: str) -> str:
        """The deployed name of a topic: ``<namespace>.<base>`` or ``base``."""
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def bootstrap(self) -> str:
        """The configured bootstrap servers, else the embedded local broker's address."""
        return self.bootstrap_servers or f"127.0.0.1:{self.local_broker_port}"

    @property
    def group_id(self) -> str:
        return f"{self.app_id}-{self.namespace}" if self.namespace else self.app_id


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with explicit overrides (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
