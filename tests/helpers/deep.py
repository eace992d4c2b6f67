"""Folder trees nested deeper than Python's recursion limit, made and removed without recursion.

(``os.makedirs`` and, before Python 3.12, ``shutil.rmtree`` recurse once per level.)
"""

from __future__ import annotations

import os
from pathlib import Path

#: Deeper than the default recursion limit (1,000): what an attacker would use.
DEPTH = 1100


def make_deep(top: Path, depth: int = DEPTH, name: str = "d") -> Path:
    """``top/d/d/.../d`` (``depth`` folders) holding one small file; returns the file."""
    folder = top
    for _ in range(depth):
        folder = folder / name
        os.mkdir(folder)
    leaf = folder / "leaf.txt"
    leaf.write_text("deep")
    return leaf


def remove_deep(top: Path, name: str = "d") -> None:
    """Remove what :func:`make_deep` made under ``top``, bottom up."""
    folders = []
    folder = top / name
    while folder.is_dir():
        folders.append(folder)
        folder = folder / name
    for folder in reversed(folders):
        for entry in os.scandir(folder):
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        os.rmdir(folder)
