"""A Hugging Face cache on disk (blobs named by SHA-256, snapshot links), for discovery tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_hf_cache(cache: Path, files: dict[str, bytes], commit: str = "a" * 40) -> Path:
    """Write the Hugging Face cache layout: blobs named by SHA-256, snapshot links."""
    repo = cache / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        touch(blob, data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return repo
