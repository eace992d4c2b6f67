"""``modelsign watch`` as a subprocess, its JSON lines read as they come."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers.paths import ROOT


@contextmanager
def cli_watch(*args: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """``python -m modelsign watch ARGS``, its stdout lines on a queue; killed if left running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelsign", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        reader.join()
