"""A progress object for tests: records what long work reports, and can ask it to stop."""

from __future__ import annotations


class RecordingProgress:
    """Records every reported fraction and message; says "cancelled" once ``cancel_after`` reports arrived."""

    def __init__(self, cancel_after: int | None = None):
        self.fractions: list[float] = []
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    def report(self, fraction: float, message: str = "") -> None:
        self.fractions.append(fraction)
        self.messages.append(message)

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.fractions) >= self.cancel_after
