"""Run an action in a thread with a deadline: a regression that blocks or reads for ever
fails the test instead of hanging the suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def in_thread(
    action: Callable[[], object], deadline: float, *, unblock: Callable[[], None] | None = None
) -> tuple[BaseException | None, float, bool]:
    """(what ``action`` raised, seconds it took, whether it finished before ``deadline``).

    ``unblock`` runs when the deadline passes (e.g. opens a FIFO's other end) so
    the thread can end before the caller fails the test.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(deadline)
    finished = not thread.is_alive()
    if not finished and unblock is not None:
        unblock()
        thread.join(deadline)
    return (outcome[0] if outcome else None), time.monotonic() - start, finished
