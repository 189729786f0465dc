"""A worker's life: taking jobs, stopping (no new jobs, running ones get a grace period), aborting (grace over)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Lifecycle:
    """Shared by the worker's threads: ``stop()`` once, then everyone looks at ``stopping``/``aborting``."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._stop = threading.Event()
        self._abort = threading.Event()
        self.closed = threading.Event()  # the I/O loop has ended
        self.deadline = float("inf")  # monotonic time the grace period ends

    def stop(self) -> bool:
        """Stop taking jobs; True the first time."""
        if self._stop.is_set():
            return False
        self.deadline = time.monotonic() + self.grace_s
        self._stop.set()
        return True

    def abort(self) -> None:
        """The grace period is over: running jobs unwind at their next progress event."""
        self._abort.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def aborting(self) -> bool:
        return self._abort.is_set()

    def past_deadline(self, slack_s: float = 0.0) -> bool:
        return time.monotonic() > self.deadline + slack_s

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> None:
        """Sleep, waking early when the worker aborts or ``interrupted()`` says so."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0 or self._abort.is_set() or (interrupted is not None and interrupted()):
                return
            self._abort.wait(min(0.1, left))
