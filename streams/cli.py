"""The ``relwatch`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import structlog

from .logs import configure_logging
from .settings import Settings, load_settings

log = structlog.get_logger("relwatch")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        bootstrap_servers=getattr(args, "bootstrap", None),
        namespace=getattr(args, "namespace", None),
    )


def cmd_broker(args: argparse.Namespace) -> int:
    import time

    from .local_broker import LocalBroker

    settings = _settings(args)
    broker = LocalBroker(
        port=args.port or settings.local_broker_port,
        controller_port=args.controller_port or settings.local_broker_controller_port,
    )
    if args.action == "start":
        started = time.monotonic()
        bootstrap = broker.start()
        print(json.dumps({"bootstrap": bootstrap, "seconds": round(time.monotonic() - started, 2)}))
    elif args.action == "stop":
        print(json.dumps({"stopped": broker.stop()}))
    else:
        status = broker.status()
        print(json.dumps({"running": status.running, "pid": status.pid,
                          "bootstrap": status.bootstrap, "data_dir": str(status.data_dir)}))
        return 0 if status.running else 3
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run_worker

    run_worker()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from producers.topics import ensure_topics

    settings = _settings(args)
    names = ensure_topics(
        settings.bootstrap, settings.namespace, settings.replication_factor,
        {"articles.raw": settings.raw_partitions, "articles.unique": settings.unique_partitions},
    )
    print("\n".join(names))
    return 0


def cmd_ingest_jsonl(args: argparse.Namespace) -> int:
    from producers.jsonl import ingest_jsonl
    from producers.topics import ensure_topics
    from schemas.topics import ARTICLES_RAW

    settings = _settings(args)
    bootstrap = settings.bootstrap
    ensure_topics(bootstrap, settings.namespace, settings.replication_factor)
    summary = ingest_jsonl(
        args.path, bootstrap, topic=settings.topic_name(ARTICLES_RAW.name),
        progress=not args.no_progress, compression=settings.producer_compression,
        linger_ms=settings.producer_linger_ms,
    )
    print(json.dumps({"pushed": summary.pushed, "delivered": summary.delivery.delivered,
                      "failed": summary.delivery.failed, "skipped": dict(summary.skipped)}),
          file=sys.stderr)
    return 0 if summary.delivery.failed == 0 else 1


def _write_entries(entries: list[Any], out: str | None, fmt: str = "jsonl") -> None:
    from .exports import write_timeline

    if out:
        with open(out, "w", encoding="utf-8") as fh:
            write_timeline(entries, fh, fmt)
    else:
        write_timeline(entries, sys.stdout, fmt)


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay

    settings = _settings(args)
    result = replay(args.path, settings, timeout_s=args.timeout, keep_topics=args.keep_topics,
                    progress=not args.no_progress)
    _write_entries(result.entries, args.out, args.format)
    failed = result.ingest.delivery.failed
    return 0 if failed == 0 else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import load_gold, score
    from .replay import replay

    corpus = Path(args.corpus_dir)
    settings = _settings(args)
    if args.in_process:
        from producers.jsonl import read_articles

        from .pipeline import run_in_process

        with open(corpus / "articles.jsonl", encoding="utf-8") as fh:
            raws = [a for _, a in read_articles(fh, "eval") if not isinstance(a, str)]
        entries = run_in_process(raws)
    else:
        entries = replay(str(corpus / "articles.jsonl"), settings, progress=False).entries
    report = score(entries, load_gold(corpus / "gold_events.jsonl"))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.summary())
        if args.verbose:
            print("unmatched gold:", " ".join(report.unmatched_gold))
            print("unmatched entries:", " ".join(report.unmatched_entries))
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.export import check_schemas, write_schemas

    if args.check:
        stale = check_schemas()
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas():
        print(path)
    return 0


def cmd_timeline_export(args: argparse.Namespace) -> int:
    from schemas.topics import TIMELINE_ENTRIES

    from .kafka_io import read_timeline

    settings = _settings(args)
    entries = read_timeline(settings.bootstrap,
                            settings.topic_name(TIMELINE_ENTRIES.name))
    _write_entries(entries, args.out, args.format)
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from schemas.topics import ARTICLES_RAW, EVENTS_MENTIONS, TIMELINE_ENTRIES

    from .reprocess import run_reprocess

    settings = _settings(args)
    names = {spec.name: settings.topic_name(spec.name)
             for spec in (ARTICLES_RAW, EVENTS_MENTIONS, TIMELINE_ENTRIES)}
    plan = run_reprocess(settings.bootstrap, names, dry_run=args.dry_run)
    print(json.dumps({"send": len(plan.send), "retract": len(plan.retract),
                      "unchanged": plan.unchanged, "dry_run": args.dry_run}))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from .monitor import run_monitor

    settings = _settings(args)
    return run_monitor(settings, settings.bootstrap, args.interval, args.once,
                       args.json)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.__main__ import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relwatch", description=__doc__)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--namespace", help="Topic namespace (env RELWATCH_NAMESPACE)")
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="the embedded local Kafka broker")
    broker.add_argument("action", choices=["start", "stop", "status"])
    broker.add_argument("--port", type=int)
    broker.add_argument("--controller-port", type=int)
    broker.set_defaults(func=cmd_broker)

    sub.add_parser("worker", help="run a stream worker").set_defaults(func=cmd_worker)
    sub.add_parser("topics", help="create every topic").set_defaults(func=cmd_topics)

    ingest = sub.add_parser("ingest", help="push articles onto articles.raw")
    ingest_sub = ingest.add_subparsers(dest="source", required=True)
    jsonl = ingest_sub.add_parser("jsonl", help="corpus-format JSON lines (PATH or -)")
    jsonl.add_argument("path")
    jsonl.add_argument("--no-progress", action="store_true")
    jsonl.set_defaults(func=cmd_ingest_jsonl)
    from producers.cli import add_ingest_commands

    add_ingest_commands(ingest_sub)

    rep = sub.add_parser("replay", help="run a file end to end and print the timeline")
    rep.add_argument("path")
    rep.add_argument("--out", help="write the timeline here instead of stdout")
    rep.add_argument("--format", default="jsonl", choices=["jsonl", "md", "html", "csv"])
    rep.add_argument("--timeout", type=float, default=600.0)
    rep.add_argument("--keep-topics", action="store_true", help="keep the replay's topics")
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(func=cmd_replay)

    ev = sub.add_parser("eval", help="score the timeline against gold events")
    ev.add_argument("corpus_dir")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("-v", "--verbose", action="store_true", help="list what did not match")
    ev.add_argument("--in-process", action="store_true", help="skip Kafka (pure pipeline)")
    ev.set_defaults(func=cmd_eval)

    sch = sub.add_parser("schemas", help="write the JSON Schemas of every contract")
    sch.add_argument("--check", action="store_true", help="fail when committed files are stale")
    sch.set_defaults(func=cmd_schemas)

    tl = sub.add_parser("timeline", help="the timeline topic")
    tl_sub = tl.add_subparsers(dest="action", required=True)
    export = tl_sub.add_parser("export", help="read the timeline topic and write it out")
    export.add_argument("--format", default="jsonl", choices=["jsonl", "md", "html", "csv"])
    export.add_argument("--out")
    export.set_defaults(func=cmd_timeline_export)

    rep2 = sub.add_parser("reprocess", help="re-extract articles.raw under the current version "
                          "and publish the differences as ordinary timeline changes")
    rep2.add_argument("--dry-run", action="store_true", help="only print what would change")
    rep2.set_defaults(func=cmd_reprocess)

    mon = sub.add_parser("monitor", help="live view: lag, rates, freshness, dead letters")
    mon.add_argument("--interval", type=float, default=2.0)
    mon.add_argument("--once", action="store_true")
    mon.add_argument("--json", action="store_true")
    mon.set_defaults(func=cmd_monitor)

    bench = sub.add_parser("bench", help="benchmarks (python -m bench --help)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
