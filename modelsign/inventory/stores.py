"""Where models live: the local runtimes' stores, from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from .report import StoreInfo, StoreKind


def _expand(path: str, home: str | None) -> str:
    if home and (path == "~" or path.startswith("~/")):
        path = home + path[1:]
    return os.path.abspath(path)


def store_locations(env: Mapping[str, str]) -> list[StoreInfo]:
    """The documented default locations of the local runtimes' stores, with overrides.

    Hugging Face: ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``),
    else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` or
    ``~/.cache/huggingface/hub``. Ollama: ``OLLAMA_MODELS``, else
    ``~/.ollama/models`` and the Linux service's
    ``/usr/share/ollama/.ollama/models``. LM Studio: ``LMSTUDIO_MODELS``, else
    ``~/.lmstudio/models`` and ``~/.cache/lm-studio/models``. llama.cpp:
    ``LLAMA_CACHE``, else ``$XDG_CACHE_HOME/llama.cpp`` or ``~/.cache/llama.cpp``.
    Without ``HOME`` the home-relative defaults are left out.
    """
    home = env.get("HOME") or None
    cache = env.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home else None)
    found: list[tuple[StoreKind, str | None, str]] = []

    def first(kind: StoreKind, names: Sequence[str], *defaults: str | None) -> None:
        for name in names:
            if env.get(name):
                found.append((kind, env[name], name))
                return
        found.extend((kind, d, "default") for d in defaults)

    def at(base: str | None, *parts: str) -> str | None:
        return os.path.join(base, *parts) if base else None

    hf_home = env.get("HF_HOME")
    hub = at(hf_home, "hub") if hf_home else at(cache, "huggingface", "hub")
    first("huggingface", ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"))
    if not found:
        found.append(("huggingface", hub, "HF_HOME" if hf_home else "default"))
    first(
        "ollama",
        ("OLLAMA_MODELS",),
        at(home, ".ollama", "models"),
        "/usr/share/ollama/.ollama/models",
    )
    first(
        "lmstudio",
        ("LMSTUDIO_MODELS",),
        at(home, ".lmstudio", "models"),
        at(home, ".cache", "lm-studio", "models"),
    )
    first("llama.cpp", ("LLAMA_CACHE",), at(cache, "llama.cpp"))
    out = []
    for kind, path, origin in found:
        if path:
            full = _expand(path, home)
            out.append(StoreInfo(kind=kind, path=full, origin=origin, present=os.path.isdir(full)))
    return out
