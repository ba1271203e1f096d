#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft) for relwatch.
#   deploy/kafka/broker.sh start|stop|status [--port 9092] [--data-dir DIR] [--heap-mb 512]
# `start` prints the bootstrap address (127.0.0.1:<port>) on stdout; progress goes to stderr.
# Thin wrapper around `python -m streams.local_broker`, using the repo's .venv when present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
else
    python="$(command -v python3 || command -v python)"
fi

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m streams.local_broker "$@"
