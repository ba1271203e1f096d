"""The bench reads figures off a worker's /metrics page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bench.__main__ import gauge_total, histogram_totals

PAGE = b"""# HELP relwatch_table_memory_bytes RAM a table's RocksDB store holds
# TYPE relwatch_table_memory_bytes gauge
relwatch_table_memory_bytes{kind="block_cache",table="timeline-mentions"} 1.6702899e+07
relwatch_table_memory_bytes{kind="memtables",table="timeline-mentions"} 2.0992e+06
relwatch_table_memory_bytes_other 5.0
relwatch_timeline_merge_mentions_sum 120.0
relwatch_timeline_merge_mentions_count 40.0
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_a_gauge_is_summed_over_its_labels_and_no_other_metric(port: int) -> None:
    assert gauge_total(port, "relwatch_table_memory_bytes") == pytest.approx(16702899 + 2099200)
    assert gauge_total(port, "relwatch_absent") == 0.0


def test_histogram_totals(port: int) -> None:
    assert histogram_totals(port, "relwatch_timeline_merge_mentions") == (120.0, 40.0)
