"""The stage processes: the same bytes as the worker's own process, failures that dead-letter
as the original exception would, and a dead stage process that loses nothing."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from producers.jsonl import read_articles
from schemas.models import CleanArticle, RawArticle
from streams import dedupe, stagepool
from streams.deadletter import make_dead_letter
from streams.errors import RejectedInput, StageFailure

from .test_extract import DEV, SEEDS, require

MAX_CHARS = 200_000


def _raw_values(corpus: Path) -> list[bytes]:
    with open(require(corpus) / "articles.jsonl", encoding="utf-8") as fh:
        return [a.model_dump_json().encode()
                for _, a in read_articles(fh, "test") if isinstance(a, RawArticle)]


@pytest.fixture(scope="module")
def raw_values() -> list[bytes]:
    return _raw_values(SEEDS) + _raw_values(DEV)


@pytest.fixture(scope="module")
def pool() -> Iterator[stagepool.StagePool]:
    started = stagepool.StagePool(2, "warning", "console").start()
    yield started
    started.shutdown()


BAD_VALUES = [b"{not json", b'{"id": "x"}', "\udcff".encode("utf-8", "surrogatepass")]


def _dead_letter_fields(exc: BaseException) -> tuple[str, str]:
    letter = make_dead_letter("normalize", exc, source_topic="t", partition=0, offset=1,
                              key=None, value=b"v", now=0.0)
    return letter.reason, letter.error_type


@pytest.mark.parametrize("value", BAD_VALUES, ids=["invalid-json", "schema", "encoding"])
def test_a_failure_dead_letters_as_the_original_exception(value: bytes) -> None:
    with pytest.raises(Exception) as raised:
        stagepool.normalize_payload(value, MAX_CHARS)
    [failure] = stagepool.run_batch(stagepool.normalize_payload, [value], MAX_CHARS)
    assert isinstance(failure, StageFailure)
    assert _dead_letter_fields(failure) == _dead_letter_fields(raised.value)
    copy = pickle.loads(pickle.dumps(failure))
    assert _dead_letter_fields(copy) == _dead_letter_fields(raised.value)


def test_a_rejection_keeps_its_reason_code() -> None:
    failure = stagepool.as_failure(RejectedInput("empty_text", "nothing left after cleaning"))
    assert _dead_letter_fields(failure) == _dead_letter_fields(
        RejectedInput("empty_text", "nothing left after cleaning"))
    assert failure.reason == "empty_text"


class _TwoPartError(Exception):
    def __init__(self, part: str, detail: str) -> None:
        super().__init__(f"{part}/{detail}")


def test_an_exception_that_does_not_unpickle_comes_back_as_its_failure() -> None:
    original = _TwoPartError("a", "b")
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(original))
    copy = pickle.loads(pickle.dumps(stagepool.as_failure(original)))
    assert _dead_letter_fields(copy) == _dead_letter_fields(original)
    assert copy.error_type == "_TwoPartError"


def test_the_pool_gives_the_bytes_of_the_workers_own_process(
        pool: stagepool.StagePool, raw_values: list[bytes]) -> None:
    batch = raw_values[:40] + BAD_VALUES
    inline = stagepool.run_batch(stagepool.normalize_payload, batch, MAX_CHARS)
    pooled = asyncio.run(pool.run(stagepool.normalize_payload, batch, MAX_CHARS))
    assert [_comparable(o) for o in pooled] == [_comparable(o) for o in inline]
    assert sum(isinstance(o, StageFailure) for o in pooled) == len(BAD_VALUES)
    clean = [o[1] for o in inline if isinstance(o, tuple)]
    for _, value, fingerprint in (o for o in inline if isinstance(o, tuple)):
        text = CleanArticle.model_validate_json(value).text
        assert fingerprint == dedupe.text_fingerprint(text)
    extracted_inline = stagepool.run_batch(stagepool.extract_payload, clean)
    extracted_pooled = asyncio.run(pool.run(stagepool.extract_payload, clean))
    assert extracted_pooled == extracted_inline
    assert sum(len(m) for m in extracted_inline if isinstance(m, list)) > 10


def _comparable(outcome: object) -> object:
    if isinstance(outcome, StageFailure):
        return ("failure", *_dead_letter_fields(outcome))
    return outcome


def _restarts_counted() -> float:
    return REGISTRY.get_sample_value("relwatch_stage_process_restarts_total") or 0.0


def test_a_killed_stage_process_loses_nothing(raw_values: list[bytes]) -> None:
    pool = stagepool.StagePool(1, "warning", "console").start()
    assert REGISTRY.get_sample_value("relwatch_stage_processes") == 1
    counted = _restarts_counted()
    try:
        batch = raw_values[:10]
        expected = stagepool.run_batch(stagepool.normalize_payload, batch, MAX_CHARS)
        assert asyncio.run(pool.run(stagepool.normalize_payload, batch, MAX_CHARS)) == expected
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert asyncio.run(pool.run(stagepool.normalize_payload, batch, MAX_CHARS)) == expected
        assert asyncio.run(pool.run(stagepool.normalize_payload, batch, MAX_CHARS)) == expected
        assert pool.restarts == 1 and _restarts_counted() == counted + 1
        assert pool.pids() and pool.pids() != [pid]
    finally:
        pool.shutdown()


def test_no_processes_runs_in_this_process(raw_values: list[bytes]) -> None:
    pool = stagepool.StagePool(0).start()
    assert pool.pids() == []
    outcomes = asyncio.run(pool.run(stagepool.normalize_payload, raw_values[:3], MAX_CHARS))
    assert outcomes == stagepool.run_batch(stagepool.normalize_payload, raw_values[:3], MAX_CHARS)


@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("max 100000", None), ("150000 100000", 2), ("50000 100000", 1), ("garbled", None)])
def test_a_container_cpu_limit_bounds_the_cpus(tmp_path: Path, cpu_max: str,
                                              limit: int | None) -> None:
    cgroup = tmp_path / "cpu.max"
    cgroup.write_text(cpu_max + "\n")
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if limit is None else min(affinity, limit)
    assert stagepool.available_cpus(cgroup) == expected
    assert stagepool.available_cpus(tmp_path / "absent") == affinity


def test_a_stage_process_killed_in_the_middle_of_a_batch_loses_nothing(
        raw_values: list[bytes]) -> None:
    batch = (raw_values * 12)[:600]  # long enough to be running still when the kill lands
    expected = stagepool.run_batch(stagepool.normalize_payload, batch, MAX_CHARS)
    pool = stagepool.StagePool(1, "warning", "console").start()
    try:
        asyncio.run(pool.run(stagepool.normalize_payload, batch[:2], MAX_CHARS))  # warm
        [pid] = pool.pids()

        async def kill_while_running() -> list[object]:
            running = asyncio.ensure_future(
                pool.run(stagepool.normalize_payload, batch, MAX_CHARS))
            await asyncio.sleep(0.1)
            assert not running.done()  # the kill lands in the middle of the batch
            os.kill(pid, signal.SIGKILL)
            return list(await running)

        assert asyncio.run(kill_while_running()) == expected
        assert pool.restarts == 1
    finally:
        pool.shutdown()



def test_batches_in_flight_together_each_get_their_own_outcomes(
        raw_values: list[bytes]) -> None:
    """Two stages' batches sent to one stage process at once come back to their own
    callers."""
    long = (raw_values * 8)[:300]
    clean = [o[1] for o in stagepool.run_batch(stagepool.normalize_payload, raw_values[:3],
                                               MAX_CHARS) if not isinstance(o, StageFailure)]
    expected = [stagepool.run_batch(stagepool.normalize_payload, long, MAX_CHARS),
                stagepool.run_batch(stagepool.extract_payload, clean)]
    assert clean and expected[0] != expected[1]
    pool = stagepool.StagePool(1, "warning", "console").start()
    try:
        async def both() -> list[list[object]]:
            return list(await asyncio.gather(
                pool.run(stagepool.normalize_payload, long, MAX_CHARS),
                pool.run(stagepool.extract_payload, clean)))

        assert asyncio.run(both()) == expected
        assert asyncio.run(both()) == expected
    finally:
        pool.shutdown()


def test_batches_in_flight_when_the_stage_process_dies_restart_it_once(
        raw_values: list[bytes]) -> None:
    batch = (raw_values * 12)[:600]
    expected = stagepool.run_batch(stagepool.normalize_payload, batch, MAX_CHARS)
    pool = stagepool.StagePool(1, "warning", "console").start()
    try:
        asyncio.run(pool.run(stagepool.normalize_payload, batch[:2], MAX_CHARS))  # warm
        [pid] = pool.pids()

        async def kill_while_two_run() -> list[list[object]]:
            running = [asyncio.ensure_future(pool.run(stagepool.normalize_payload, batch,
                                                      MAX_CHARS)) for _ in range(2)]
            await asyncio.sleep(0.1)
            assert not any(r.done() for r in running)
            os.kill(pid, signal.SIGKILL)
            return [list(await r) for r in running]

        assert asyncio.run(kill_while_two_run()) == [expected, expected]
        assert pool.restarts == 1
        assert pool.pids() and pool.pids() != [pid]
    finally:
        pool.shutdown()

def test_a_pool_that_refuses_the_batch_runs_it_here(raw_values: list[bytes]) -> None:
    pool = stagepool.StagePool(1, "warning", "console").start()
    try:
        [child] = pool._children
        child._requests.close()  # "write to closed file": the batch cannot go out
        batch = raw_values[:5]
        assert asyncio.run(pool.run(stagepool.normalize_payload, batch, MAX_CHARS)) == (
            stagepool.run_batch(stagepool.normalize_payload, batch, MAX_CHARS))
    finally:
        pool.shutdown()


def test_a_stage_process_loads_neither_kafka_nor_the_metrics() -> None:
    """What a stage process imports stays in its memory: Faust, the Kafka clients and
    prometheus_client (with its HTTP server's modules) belong to the worker's own process."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; from streams import stagepool; "
            "stagepool._start_stage_process('warning', 'console'); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    packages = set(json.loads(loaded.stdout.strip().splitlines()[-1]))
    assert "py3langid" in packages  # the stages' model is loaded ...
    assert not packages & {"faust", "aiokafka", "kafka", "mode", "prometheus_client"}


def test_a_stage_process_gives_its_free_heap_back_once_per_quiet_spell(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop of a stage process (:func:`stagepool.serve`, here in a thread over real pipes):
    no release while batches keep coming, one once none has come for ``trim_idle_s``, and no
    other until batches have flowed again."""
    import threading
    import time

    releases: list[float] = []
    monkeypatch.setattr(stagepool, "_start_stage_process", lambda *_: None)
    monkeypatch.setattr(stagepool, "release_free_heap",
                        lambda: releases.append(time.monotonic()) is None)
    requests_read, requests_write = os.pipe()
    outcomes_read, outcomes_write = os.pipe()
    loop = threading.Thread(target=stagepool.serve, daemon=True, args=(
        requests_read, outcomes_write, "warning", "console", 0.3))
    loop.start()
    with open(requests_write, "wb") as requests, open(outcomes_read, "rb") as outcomes:

        def batch(values: list[bytes]) -> list[object]:
            stagepool._write_frame(requests, pickle.dumps((len, values, ())))
            frame = stagepool._read_frame(outcomes)
            assert frame is not None
            return list(pickle.loads(frame))

        for _ in range(5):  # batches keep coming: nothing released
            assert batch([b"ab", b"c"]) == [2, 1]
            time.sleep(0.05)
        assert releases == []
        time.sleep(1.0)  # quiet for more than 0.3 s: released once, not again
        assert len(releases) == 1
        assert batch([b"xyz"]) == [3]  # the next batch is served as ever
        time.sleep(0.6)
        assert len(releases) == 2  # the next quiet spell
    loop.join(5)
    assert not loop.is_alive()  # the worker closed the pipe: the loop ends
