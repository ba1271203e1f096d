"""The Faust app and its topics, built from relwatch settings.

Every topic is declared here once, from ``schemas.topics``, with ``raw`` serializers: the agents
decode values themselves so that a payload that fails to decode is not acked and lost by Faust
(it would be, with a model codec) but sent to the dead-letter topic with its original bytes.
"""

from __future__ import annotations

from typing import Any

import faust

from schemas.topics import (
    ARTICLES_CLEAN,
    ARTICLES_DUPLICATES,
    ARTICLES_RAW,
    ARTICLES_UNIQUE,
    DEADLETTER,
    EVENTS_MENTIONS,
    TIMELINE_ARCHIVE,
    TIMELINE_ENTRIES,
    TopicSpec,
)

from . import faust_fixes
from .security import faust_broker_credentials
from .settings import Settings, load_settings

faust_fixes.install()  # table changelog writes must be flushed before offsets are committed

MAX_MESSAGE_BYTES = 16 * 1024 * 1024

settings: Settings = load_settings()


def create_app(conf: Settings) -> faust.App:
    (conf.data_dir / conf.group_id).mkdir(parents=True, exist_ok=True)
    return faust.App(
        conf.group_id,
        broker=[f"kafka://{server}" for server in conf.bootstrap.split(",")],
        store=conf.store,
        datadir=str(conf.data_dir / conf.group_id),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_replication_factor=conf.replication_factor,
        topic_partitions=1,
        broker_commit_interval=conf.commit_interval_s,
        broker_session_timeout=conf.session_timeout_s,
        broker_heartbeat_interval=conf.heartbeat_interval_s,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=conf.web_enabled,
        web_port=conf.web_port,
        web_bind=conf.web_host,
        web_host=conf.web_host,
        table_cleanup_interval=30.0,
        producer_linger=conf.producer_linger_ms / 1000,
        producer_acks=-1,
        stream_buffer_maxsize=conf.stream_buffer_maxsize,
        worker_redirect_stdouts=False,
        broker_credentials=faust_broker_credentials(conf),
    )


app = create_app(settings)

_PARTITIONS = {
    ARTICLES_RAW.name: settings.raw_partitions,
    ARTICLES_UNIQUE.name: settings.unique_partitions,
}


def declare(spec: TopicSpec) -> Any:
    config = {"cleanup.policy": "compact"} if spec.compacted else None
    return app.topic(
        settings.topic_name(spec.name),
        partitions=_PARTITIONS.get(spec.name, spec.partitions),
        key_serializer="raw",
        value_serializer="raw",
        config=config,
        compacting=spec.compacted,
    )


raw_topic = declare(ARTICLES_RAW)
clean_topic = declare(ARTICLES_CLEAN)
unique_topic = declare(ARTICLES_UNIQUE)
duplicates_topic = declare(ARTICLES_DUPLICATES)
mentions_topic = declare(EVENTS_MENTIONS)
timeline_topic = declare(TIMELINE_ENTRIES)
archive_topic = declare(TIMELINE_ARCHIVE)
deadletter_topic = declare(DEADLETTER)
