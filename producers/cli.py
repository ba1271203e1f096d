"""`relwatch ingest feeds` and `relwatch ingest dir`: argparse wiring for the producers.

``streams/cli.py`` calls :func:`add_ingest_commands` with its ``ingest`` sub-parsers; every
command takes the parsed Namespace (which may carry the global ``--bootstrap`` and
``--namespace``) and returns an exit status. ``python -m producers.feeds`` runs the poller on its
own (:func:`feeds_main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from streams.settings import Settings, load_settings

log = structlog.get_logger("relwatch.ingest")

EXIT_USAGE = 2


def add_ingest_commands(ingest_subparsers: Any) -> None:
    """Add ``feeds`` and ``dir`` to the ``relwatch ingest`` sub-parsers."""
    feeds = ingest_subparsers.add_parser(
        "feeds", help="poll RSS/Atom/JSON feeds continuously (or --once)",
        description="Poll the feeds of FEEDS.yaml onto articles.raw until SIGTERM.",
    )
    add_feeds_arguments(feeds)
    feeds.set_defaults(func=cmd_ingest_feeds)

    backfill = ingest_subparsers.add_parser(
        "dir", help="backfill .txt, .html and .json files from a directory",
        description="Push every .txt, .html and .json article under PATH onto articles.raw.",
    )
    backfill.add_argument("path", help="a directory (searched recursively) or one file")
    backfill.add_argument("--no-progress", action="store_true")
    backfill.set_defaults(func=cmd_ingest_dir)


def add_feeds_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feeds_file", metavar="FEEDS.yaml", help="feed list (examples/FEEDS.yaml)")
    parser.add_argument("--once", action="store_true",
                        help="poll every feed once, wait for delivery, exit")
    parser.add_argument("--interval", type=float, metavar="S",
                        help="poll every feed every S seconds (overrides FEEDS.yaml)")
    parser.add_argument("--state", metavar="PATH",
                        help="checkpoint file (default: FEEDS.yaml 'state', else "
                        "<data dir>/feeds-<namespace>.sqlite3)")
    parser.add_argument("--metrics-port", type=int, metavar="N",
                        help="serve Prometheus metrics on this port (0 = any free port)")
    parser.add_argument("--metrics-host", default="127.0.0.1",
                        help="bind address of the metrics server (default 127.0.0.1)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        bootstrap_servers=getattr(args, "bootstrap", None),
        namespace=getattr(args, "namespace", None),
    )


def cmd_ingest_feeds(args: argparse.Namespace) -> int:
    """Run the feed poller; 0 = every record acknowledged, 1 = some pending, 2 = bad input."""
    import yaml

    from schemas.topics import ARTICLES_RAW

    from .feeds import default_state_path, load_feeds, run_feeds
    from .topics import ensure_topics

    settings = _settings(args)
    try:
        config = load_feeds(args.feeds_file, interval=args.interval)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # pydantic errors are ValueErrors
        print(f"relwatch ingest feeds: {args.feeds_file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.state:
        state = Path(args.state)
    elif config.state:
        state = Path(config.state)
    else:
        state = default_state_path(settings.data_dir, settings.namespace)
    bootstrap = settings.bootstrap
    ensure_topics(bootstrap, settings.namespace, settings.replication_factor)
    return run_feeds(
        config,
        bootstrap_servers=bootstrap,
        topic=settings.topic_name(ARTICLES_RAW.name),
        state_path=state,
        once=args.once,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        compression=settings.producer_compression,
        linger_ms=settings.producer_linger_ms,
    )


def cmd_ingest_dir(args: argparse.Namespace) -> int:
    """Backfill a directory; prints the summary as JSON on stderr; 1 if a delivery failed."""
    from schemas.topics import ARTICLES_RAW

    from .dirsource import ingest_dir
    from .topics import ensure_topics

    settings = _settings(args)
    if not Path(args.path).exists():
        print(f"relwatch ingest dir: {args.path}: no such file or directory", file=sys.stderr)
        return EXIT_USAGE
    bootstrap = settings.bootstrap
    ensure_topics(bootstrap, settings.namespace, settings.replication_factor)
    summary = ingest_dir(
        args.path, bootstrap, topic=settings.topic_name(ARTICLES_RAW.name),
        progress=not args.no_progress, compression=settings.producer_compression,
        linger_ms=settings.producer_linger_ms,
    )
    print(json.dumps(summary.as_dict(), ensure_ascii=False), file=sys.stderr)
    return 0 if summary.delivery.failed == 0 else 1


def feeds_main(argv: Sequence[str] | None = None) -> int:
    """``python -m producers.feeds [--bootstrap B] [--namespace N] FEEDS.yaml [options]``."""
    from streams.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m producers.feeds",
                                     description="Poll the feeds of FEEDS.yaml onto articles.raw.")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--namespace", help="topic namespace (env RELWATCH_NAMESPACE)")
    add_feeds_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return cmd_ingest_feeds(args)
