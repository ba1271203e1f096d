"""Consumer lag from committed and end offsets, whichever client asked for them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

from streams.lag import partition_lag

Offset = namedtuple("Offset", "offset metadata")
Partition = namedtuple("Partition", "topic partition")


def test_lag_is_the_end_offset_minus_the_committed_one() -> None:
    parts = [Partition("a", 0), Partition("a", 1), Partition("b", 0), Partition("b", 1)]
    committed = {Partition("a", 0): Offset(40, ""), Partition("a", 1): Offset(-1, ""),
                 ("b", 1): 7}
    end = {parts[0]: 50, parts[1]: 12, parts[2]: 3, parts[3]: 5}
    assert partition_lag(parts, committed, end) == {
        ("a", 0): 10,  # committed 40 of 50
        ("a", 1): 12,  # -1: nothing committed yet, the whole partition waits
        ("b", 0): 3,  # never committed: the same
        ("b", 1): 0,  # committed beyond the end offset asked earlier: never negative
    }


def test_the_worker_process_does_not_load_kafka_python(tmp_path: Path) -> None:
    """The worker asks for its lag through aiokafka (its own clients): kafka-python, which
    the monitor and the producers use, would add about 6 MB to its process."""
    code = "import sys, streams.agents; print(sorted(m for m in sys.modules if m == 'kafka'))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
               RELWATCH_DATA_DIR=str(tmp_path), RELWATCH_STAGE_PROCESSES="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "aiokafka" in subprocess.run(
        [sys.executable, "-c", "import sys, streams.agents; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout
