"""Errors a stage raises for input it refuses; the agent turns them into dead letters."""

from __future__ import annotations


class RejectedInput(ValueError):
    """The message cannot be processed; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class StageFailure(Exception):
    """A stage's exception as a dead letter records it, raised in a stage process and sent back
    (the original may not survive a pickle: one whose ``__init__`` takes other arguments than
    its message does not)."""

    def __init__(self, reason: str, message: str, error_type: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.error_type = error_type

    def __reduce__(self) -> tuple[type[StageFailure], tuple[str, str, str]]:
        return (StageFailure, (self.reason, str(self), self.error_type))
