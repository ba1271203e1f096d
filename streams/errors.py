"""Errors a stage raises for input it refuses; the agent turns them into dead letters."""


class RejectedInput(ValueError):
    """The message cannot be processed; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
