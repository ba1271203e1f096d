"""Follow the relwatch timeline with plain kafka-python and keep a local copy of it.

    python examples/timeline_consumer.py [--bootstrap 127.0.0.1:9092] [--from-now]

Prints one line per change. Upserts replace the entry with the same key; a null value deletes
it (the ``relwatch-merged-into`` header names the entry that absorbed it).
"""

from __future__ import annotations

import argparse
import json

from kafka import KafkaConsumer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="timeline.entries")
    parser.add_argument("--group", default="timeline-example")
    parser.add_argument("--from-now", action="store_true", help="skip the current timeline")
    args = parser.parse_args()
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group,
        auto_offset_reset="latest" if args.from_now else "earliest",
        enable_auto_commit=True,
    )
    timeline: dict[str, dict[str, object]] = {}
    for record in consumer:
        key = record.key.decode()
        headers = {k: v.decode() for k, v in record.headers or []}
        if record.value is None:
            timeline.pop(key, None)
            survivor = headers.get("relwatch-merged-into")
            print(f"- {key} {headers.get('relwatch-change', 'tombstone')}"
                  + (f" -> {survivor}" if survivor else ""))
            continue
        entry = json.loads(record.value)
        timeline[key] = entry
        print(f"+ {key} {entry['date']} {entry['cameo_code']} {' '.join(entry['actors'])} "
              f"({entry['independent_source_count']} sources) {entry['summary']}")


if __name__ == "__main__":
    main()
