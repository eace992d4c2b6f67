"""Runtime integrity monitor: verify models, then re-verify them whenever they change.

A verification holds for a moment; a model served for months can be rewritten
or swapped afterwards. :class:`Watcher` verifies each model — trusting a
verifier (a key, roots, a Sigstore identity), a policy's signers, or both —
then listens for filesystem events (``watchdog``) and re-verifies on any
change. Events the OS does not deliver (network filesystems, an overflowing
inotify queue, a watch limit) are caught by a periodic re-check that compares
every file's stat (size, mtime, ctime, inode) and re-verifies on a difference —
cheap enough to run every minute on models of any size.

It reports transitions, not every check, as :class:`Event` dicts with a stable schema —
every key always present::

    {"event": "verified" | "changed" | "tampered" | "restored" | "removed",
     "model": PATH as given, "time": ISO 8601 UTC,
     "verdict": "verified" | "failed" | null (changed, removed),
     "problems": [Issue as JSON: {"code", "severity", "message", "file", "tensor",
                  "expected", "actual"}],
     "failed_rules": [policy rules that failed], "signer": {...} | null,
     "paths": [absolute paths that changed: changed only]}

``verified``: the first verification passed (``tampered`` if it failed);
``changed``: files changed, a verification follows; ``tampered``: a
verification failed, or failed with other problems than last time;
``restored``: it passes again after ``tampered`` or ``removed``; ``removed``:
the model path is gone. A change that leaves the verdict and the problems as
they were is reported by ``changed`` alone.

Threads: the observer's thread only marks a model dirty; one worker thread
does every verification — so a model is never verified twice at once — and
calls ``on_event`` in order.
"""

from ._watcher import Watcher, watch
from .events import ON_CHANGE_TIMEOUT, Event, EventName, EventProblem, Verdict, command_hook

__all__ = [
    "ON_CHANGE_TIMEOUT",
    "Event",
    "EventName",
    "EventProblem",
    "Verdict",
    "Watcher",
    "command_hook",
    "watch",
]
