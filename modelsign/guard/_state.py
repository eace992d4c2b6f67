"""The guard's state in this process: the installed guard and the functions it replaced."""

from __future__ import annotations

import importlib.abc
import threading
from dataclasses import dataclass, field
from typing import Any

from .._internal.signature.verifiers import Verifier
from ..load._context import Memory
from ..policy import Policy


@dataclass
class Guard:
    """An installed guard: what it enforces and what it patched."""

    policy: Policy
    verifier: Verifier | None  # the caller's, enforced on top of the policy's signers (Trust)
    finder: importlib.abc.MetaPathFinder
    memory: Memory = "copy"
    patched: list[tuple[Any, str, Any, Any]] = field(default_factory=list)  # owner, attr, old, new


#: Held while the guard is installed, uninstalled or patches a module.
LOCK = threading.RLock()
#: The functions the guard replaced, by kind; kept after uninstall so that a
#: reference bound while installed (``from safetensors import safe_open``) falls back to them.
ORIGINAL: dict[str, Any] = {}
_current: Guard | None = None


def current() -> Guard | None:
    """The installed guard, or None."""
    return _current


def set_current(g: Guard | None) -> None:
    """Install ``g`` (None: uninstall); the caller holds :data:`LOCK`."""
    global _current
    _current = g
