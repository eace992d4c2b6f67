"""Ollama's store: ``manifests/<host>/<namespace>/<model>/<tag>`` → layers in ``blobs/``."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from typing import Final

from .._internal.discover import ModelFile, ModelTree, describe_mode
from .._internal.signature.location import signature_location
from .jobs import Address, Job, Jobs, Prepared, Unreadable, os_reason, read_small, walk_tree

_MANIFEST_LIMIT: Final = 4 << 20  # an Ollama manifest is a few hundred bytes
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_PARTIAL = re.compile(r"sha256-([0-9a-f]{64})-partial(?:-\d+)?")
_HOST = "registry.ollama.ai"
_FILE_NAMES: Final = {
    "model": "model.gguf",
    "projector": "projector.gguf",
    "adapter": "adapter.gguf",
    "license": "LICENSE",
}


def scan_ollama(jobs: Jobs, root: str) -> None:
    """``manifests/<host>/<namespace>/<model>/<tag>`` → layers in ``blobs/sha256-<hex>``.

    A store without ``manifests/`` or ``blobs/`` (nothing pulled yet) holds no
    models; a manifest whose blobs are gone is an unreadable model.
    """
    blobs = os.path.join(root, "blobs")
    manifests = os.path.join(root, "manifests")
    try:
        blob_names = _list(blobs) if _real_dir(blobs) else None
    except FileNotFoundError:
        blob_names = []
    except OSError as exc:
        jobs.broken("blobs", "ollama", blobs, f"cannot list blobs: {os_reason(exc)}")
        return
    if blob_names is None:
        jobs.broken("blobs", "ollama", blobs, "blobs is not a folder (a symlink is not followed)")
        return
    present = set(blob_names)
    pulled = walk_tree(manifests, jobs.walk_error("ollama")) if os.path.lexists(manifests) else ()
    for folder, dirs, files in pulled:
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for d in links:
            path = os.path.join(folder, d)
            jobs.broken(d, "ollama", path, "a symlinked manifest folder; not followed")
        dirs[:] = sorted(d for d in dirs if d not in links)
        for fname in sorted(files):
            path = os.path.join(folder, fname)
            parts = os.path.relpath(path, manifests).split(os.sep)
            _model(jobs, ollama_name(parts), path, blobs)
    # Ollama writes a model's manifest after all its blobs: partial blobs no
    # manifest references yet are a pull that is running or was interrupted.
    partial: dict[str, list[str]] = {}
    for name in blob_names:
        m = _PARTIAL.fullmatch(name)
        if m and f"sha256-{m.group(1)}" not in present:
            partial.setdefault(m.group(1), []).append(name)
    for digest, names in sorted(partial.items()):
        jobs.broken(
            f"sha256-{digest[:12]} (download incomplete)",
            "ollama",
            os.path.join(blobs, f"sha256-{digest}"),
            "download incomplete: " + ", ".join(names),
        )


def _model(jobs: Jobs, name: str, manifest: str, blobs: str) -> None:
    def prepare() -> Prepared:
        layers = read_manifest(manifest)
        files: list[ModelFile] = []
        addresses: dict[str, Address] = {}
        target = None
        for role, digest, size in layers:
            fname = _FILE_NAMES.get(role, role)
            n = 2
            while any(f.path == fname for f in files):
                fname = f"{_FILE_NAMES.get(role, role)}-{n}"
                n += 1
            blob_name = f"sha256-{digest}"
            blob = os.path.join(blobs, blob_name)
            try:
                st = os.lstat(blob)
            except FileNotFoundError:
                partial = [b for b in _list(blobs) if b.startswith(blob_name + "-partial")]
                if partial:
                    raise Unreadable(f"download incomplete: {', '.join(partial)}") from None
                raise Unreadable(f"{fname}: blob {blob_name} is missing") from None
            if not stat.S_ISREG(st.st_mode):
                raise Unreadable(
                    f"{fname}: blob {blob_name} is {describe_mode(st.st_mode)}; not followed"
                )
            files.append(ModelFile(fname, blob, st.st_size, st.st_dev, st.st_ino))
            addresses[fname] = Address("sha256", digest, size, f"blobs/{blob_name}")
            if role == "model" and target is None:
                target = blob
        if not files:
            raise Unreadable("the manifest lists no layers")
        tree = ModelTree(
            root=blobs,
            name=name,
            single_file=False,
            files=tuple(sorted(files, key=lambda f: f.path)),
            ignored=(),
            ignore_patterns=(),
            allow_symlinks=False,
        )
        # A signature of the model's GGUF sits beside its blob (FILE.sig).
        sig = signature_location(target).signature if target is not None else None
        return Prepared(
            tree,
            target or blobs,
            sig if sig is not None and os.path.lexists(sig) else None,
            addresses,
        )

    jobs.jobs.append(Job(name, "ollama", manifest, prepare))


# -- judging ---------------------------------------------------------------------------


def _real_dir(path: str) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _list(folder: str) -> list[str]:
    """The names in ``folder``; none when it does not exist."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def ollama_name(parts: Sequence[str]) -> str:
    """``model:tag`` for the default namespace, else ``namespace/model:tag`` (host kept)."""
    *repo, tag = parts
    if repo and repo[0] == _HOST:
        repo = repo[1:]
        if len(repo) == 2 and repo[0] == "library":
            repo = repo[1:]
    return "/".join(repo) + ":" + tag if repo else tag


def read_manifest(path: str) -> list[tuple[str, str, int]]:
    """``(role, sha256 hex, size)`` of every layer and the config; refuses anything odd."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise Unreadable(f"the manifest is {describe_mode(st.st_mode)}; not followed")
    if st.st_size > _MANIFEST_LIMIT:
        raise Unreadable(f"the manifest is {st.st_size} bytes, over {_MANIFEST_LIMIT}")
    data = read_small(path, _MANIFEST_LIMIT)
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise Unreadable(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("layers"), list):
        raise Unreadable("the manifest has no layers list")
    items: list[tuple[str, object]] = [(f"layers[{i}]", x) for i, x in enumerate(obj["layers"])]
    if obj.get("config") is not None:
        items.append(("config", obj["config"]))
    out = []
    for where, layer in items:
        if not isinstance(layer, dict):
            raise Unreadable(f"manifest {where} is not an object")
        media, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
        m = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if m is None:
            raise Unreadable(f"manifest {where}.digest {digest!r} is not sha256:<64 hex>")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Unreadable(f"manifest {where}.size {size!r} is not a byte count")
        if where == "config":
            role = "config"
        elif isinstance(media, str) and media.startswith("application/vnd.ollama.image."):
            role = re.sub(r"[^A-Za-z0-9._-]", "_", media.rsplit(".", 1)[-1]) or "layer"
        else:
            role = "layer"
        out.append((role, m.group(1), size))
    return out
