"""Dead letters: the reason a message could not be processed, with its original bytes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import structlog
from pydantic import ValidationError

from schemas.models import DeadLetter

from .errors import RejectedInput, StageFailure

log = structlog.get_logger(__name__)


def failure_reason(exc: BaseException) -> str:
    """A short, stable reason code for an exception (the DLQ's ``reason`` prefix)."""
    if isinstance(exc, RejectedInput | StageFailure):
        return exc.reason
    if isinstance(exc, ValidationError):
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return "invalid_json"
        return "schema_violation"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_encoding"
    if isinstance(exc, json.JSONDecodeError):
        return "invalid_json"
    return "processing_error"


def make_dead_letter(
    stage: str,
    exc: BaseException,
    *,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
    now: float | None = None,
) -> DeadLetter:
    detail = str(exc).splitlines()[0][:500] if str(exc) else ""
    reason = failure_reason(exc)
    return DeadLetter(
        stage=stage,
        reason=f"{reason}: {detail}" if detail and detail != reason else reason,
        error_type=exc.error_type if isinstance(exc, StageFailure) else type(exc).__name__,
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value or b"").decode(),
        failed_at=time.time() if now is None else now,
    )


def reason_code(letter: DeadLetter) -> str:
    return letter.reason.split(":", 1)[0]


async def send_dead_letter(stage: str, event: Any, exc: BaseException) -> None:
    """Publish a dead letter for a Faust event; never raises for a bad payload."""
    from .app import deadletter_topic
    from .metrics import DEADLETTERS

    message = event.message
    key = message.key if isinstance(message.key, bytes | None) else str(message.key).encode()
    value = event.value if isinstance(event.value, bytes) else str(event.value).encode()
    letter = make_dead_letter(
        stage, exc, source_topic=message.topic, partition=message.partition,
        offset=message.offset, key=key, value=value,
    )
    code = reason_code(letter)
    DEADLETTERS.labels(stage=stage, reason=code).inc()
    log.warning("dead_letter", stage=stage, reason=letter.reason, topic=message.topic,
                partition=message.partition, offset=message.offset)
    await deadletter_topic.send(
        key=key,
        value=letter.model_dump_json().encode(),
        headers=[("relwatch-reason", code.encode()), ("relwatch-stage", stage.encode())],
    )
