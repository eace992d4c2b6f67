"""A local cache of file identities and digests, for incremental re-signing only.

When ``modelsign sign`` finishes it records, per file, the ``(device, inode,
size, mtime, ctime)`` it hashed and the manifest entry it produced, under the
SHA-256 of the signature it wrote: what the signature says, not where it lies,
so a copy of the signature (kept elsewhere, or a release's, downloaded again)
finds the same records. ``sign --reuse OLD_SIGNATURE`` re-hashes only the
files whose identity changed since. The cache is a speed feature:
verification never reads it, and a reused entry must also match the entry in
the old signature being reused. The newest :data:`MAX_RECORDS` signings are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable

from ..errors import ModelsignError
from ._atomic import write_atomic

CACHE_ENV = "MODELSIGN_CACHE_DIR"
#: A file modified this close to the signing may be rewritten again within the
#: same timestamp tick, undetectably: such entries are never reused (as git's
#: "racily clean" index entries).
RACY_NS = 2_000_000_000
#: Records kept (one per signing, the oldest removed first): each is small.
MAX_RECORDS = 64


def cache_dir() -> str:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelsign"
    )
    return os.path.join(base, "resign")


def _cache_file(data: bytes) -> str:
    """Where the records of the signing that wrote ``data`` are: named by its SHA-256."""
    return os.path.join(cache_dir(), hashlib.sha256(data).hexdigest() + ".json")


def identity(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def save(data: bytes, records: Iterable[tuple[str, str, dict[str, object]]]) -> None:
    """Record ``(name, real path, manifest entry)`` for the files just signed as ``data``."""
    now = time.time_ns()
    files = {}
    for name, real, entry in records:
        ident = identity(real)
        if now - ident[3] > RACY_NS:
            files[name] = {"real": real, "identity": ident, "entry": entry}
    record = {"signature_sha256": hashlib.sha256(data).hexdigest(), "files": files}
    try:
        os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
        write_atomic(_cache_file(data), json.dumps(record).encode(), force=True, mode=0o600)
        _prune()
    except (OSError, ModelsignError) as exc:
        # The signature is written and valid; only the next re-signing will be slower.
        warnings.warn(f"modelsign: cannot write the re-signing cache: {exc}", stacklevel=2)


def load(data: bytes) -> dict[str, dict[str, object]]:
    """The records of the signing that wrote the signature ``data`` (empty when unknown)."""
    try:
        with open(_cache_file(data), "rb") as fh:
            record = json.loads(fh.read())
    except (OSError, ValueError):
        return {}  # no cache: everything is hashed, which is always correct
    if not isinstance(record, dict):
        return {}
    if record.get("signature_sha256") != hashlib.sha256(data).hexdigest():
        return {}  # the records describe another signing
    files = record.get("files")
    return files if isinstance(files, dict) else {}


def _prune() -> None:
    """Remove the oldest records beyond :data:`MAX_RECORDS`."""
    folder = cache_dir()
    found = []
    for name in os.listdir(folder):
        if name.endswith(".json"):
            try:
                found.append((os.stat(os.path.join(folder, name)).st_mtime_ns, name))
            except OSError:
                continue  # removed meanwhile
    for _, name in sorted(found, reverse=True)[MAX_RECORDS:]:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            continue
