"""Walking the stores and ROOTs: which files and folders are models (listings only, no reads).

A folder holding a package marker is one model; otherwise its weight files are
single-file models and its subfolders are walked. Hugging Face caches and
Ollama stores met on the way are read as the layouts they are. No symlink is
followed out of a store.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import Final

from .._internal.discover import MAX_DEPTH, describe_mode, discover
from .._internal.formats import SNIFF_BYTES, detect_format
from .._internal.formats.pickle import TORCH_EXTENSIONS
from .._internal.signature.location import SIGNATURE_FILE, signature_location
from .hf import HF_REPO_DIR, hf_folder, scan_hf
from .jobs import SIDECARS, Job, Jobs, Prepared, Unreadable, os_reason, read_small
from .ollama import scan_ollama
from .report import StoreInfo, StoreKind

_WEIGHT_SUFFIXES: Final = (".safetensors", ".gguf", *TORCH_EXTENSIONS)
# A folder holding one of these is one model package (a transformers / diffusers
# / PEFT folder, a sharded checkpoint, or a folder someone signed).
_PACKAGE_MARKERS: Final = frozenset(
    {"config.json", "model_index.json", "adapter_config.json", SIGNATURE_FILE}
)
_INDEX_SUFFIX: Final = ".safetensors.index.json"
# Half-downloaded files: huggingface_hub, llama.cpp, browsers and download tools.
_PARTIAL_SUFFIXES: Final = (".incomplete", ".downloadinprogress", ".part", ".partial")
_SKIP_DIRS: Final = frozenset({".git", "__pycache__"})


def _weight_name(name: str) -> bool:
    return name.lower().endswith(_WEIGHT_SUFFIXES)


def _partial_name(name: str) -> bool:
    """A half-downloaded file: any ``.incomplete`` one, or a weight file's ``.part``."""
    lower = name.lower()
    if lower.endswith((".incomplete", ".downloadinprogress")):
        return True
    return any(lower.endswith(s) and _weight_name(lower[: -len(s)]) for s in _PARTIAL_SUFFIXES)


def _is_package(names: Iterable[str]) -> bool:
    return any(n in _PACKAGE_MARKERS or n.endswith(_INDEX_SUFFIX) for n in names)


class Finder(Jobs):
    """Finds models (cheap: directory listings only); judging them comes later."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[StoreInfo] = []
        self.scanned: set[str] = set()  # real paths of folders already handled

    def add_store(self, info: StoreInfo) -> None:
        self.stores.append(info)
        if not info.present:
            return
        real = os.path.realpath(info.path)  # the store itself may be a link; nothing inside
        if real in self.scanned:
            return
        if info.kind == "huggingface":
            self.scanned.add(real)
            scan_hf(self, real)
        elif info.kind == "ollama":
            self.scanned.add(real)
            scan_ollama(self, real)
        else:
            self._walk(real, info.kind)

    def add_root(self, root: str) -> None:
        path = os.path.abspath(root)
        st = os.stat(path)  # a ROOT given by the user may be a link to follow
        real = os.path.realpath(path)
        self.stores.append(StoreInfo(kind="path", path=path, origin="root", present=True))
        if stat.S_ISDIR(st.st_mode):
            self._walk(real, "path")
        elif stat.S_ISREG(st.st_mode):
            self._single_file(real, "path", os.path.basename(real))
        else:
            self.broken(
                os.path.basename(path), "path", path, f"{describe_mode(st.st_mode)}; not read"
            )

    def _walk(self, top: str, kind: StoreKind) -> None:
        """Every model under ``top``, without following a symlink anywhere."""
        stack = [top]
        while stack:
            folder = stack.pop()
            rel = os.path.relpath(folder, top)
            name = os.path.basename(folder) if rel == "." else rel.replace(os.sep, "/")
            if folder in self.scanned:
                continue  # reached from another store or ROOT already
            self.scanned.add(folder)
            if rel.count(os.sep) >= MAX_DEPTH:
                why = f"TOO_DEEP: folders nest more than {MAX_DEPTH} levels; not entered"
                self.broken(name, kind, folder, why)
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self.broken(name, kind, folder, f"cannot list folder: {os_reason(exc)}")
                continue
            names = [e.name for e in entries]
            if hf_folder(self, folder, names):
                continue
            if any(HF_REPO_DIR.match(e.name) and e.is_dir(follow_symlinks=False) for e in entries):
                scan_hf(self, folder)
                continue
            if "manifests" in names and "blobs" in names:
                scan_ollama(self, folder)
                continue
            if _is_package(names):
                self._package(folder, kind, name)
                continue
            dirs = self._loose(folder, top, kind, entries)
            stack.extend(reversed(dirs))

    def _loose(
        self, folder: str, top: str, kind: StoreKind, entries: list[os.DirEntry[str]]
    ) -> list[str]:
        """Single weight files of a folder that is not a package; returns its subfolders."""
        dirs = []
        for e in entries:
            rel = os.path.relpath(e.path, top).replace(os.sep, "/")
            try:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if e.name not in _SKIP_DIRS:
                        dirs.append(e.path)
                elif _partial_name(e.name):
                    self.broken(rel, kind, e.path, "download incomplete (a partial file)")
                elif not _weight_name(e.name):
                    continue
                elif stat.S_ISLNK(st.st_mode):
                    self._symlink(e.path, rel, top, kind)
                elif not stat.S_ISREG(st.st_mode):
                    self.broken(
                        rel, kind, e.path, f"{describe_mode(st.st_mode)} named like weights"
                    )
                elif self._looks_like_weights(e.path, e.name):
                    self._single_file(e.path, kind, rel)
            except OSError as exc:
                self.broken(rel, kind, e.path, os_reason(exc))
        return dirs

    def _looks_like_weights(self, path: str, name: str) -> bool:
        """``.bin`` and friends are weights only when their content says so."""
        if name.lower().endswith((".safetensors", ".gguf")):
            return True
        try:
            head = read_small(path, SNIFF_BYTES)
        except (OSError, Unreadable):
            return True  # kept, so that judging it reports why it cannot be read
        return detect_format(name, head) != "opaque"

    def _symlink(self, link: str, rel: str, top: str, kind: StoreKind) -> None:
        target = os.readlink(link)
        real = os.path.realpath(link)
        if not os.path.exists(real):
            self.broken(rel, kind, link, f"dangling symlink to {target!r}")
        elif not real.startswith(top + os.sep):
            self.broken(
                rel,
                kind,
                link,
                f"symlink to {target!r} leaves the store; not followed (scan its folder as a ROOT)",
            )
        elif not _weight_name(os.path.basename(real)) and os.path.isfile(real):
            # An alias of a file the walk does not list under its own name.
            self._single_file(real, kind, rel)
        # Otherwise the target is inventoried under its own name.

    def _single_file(self, path: str, kind: StoreKind, name: str) -> None:
        def prepare() -> Prepared:
            tree = discover(path)
            sig = signature_location(path).signature
            return Prepared(tree, path, sig if os.path.lexists(sig) else None, {})

        self.jobs.append(Job(name, kind, path, prepare))

    def _package(self, folder: str, kind: StoreKind, name: str) -> None:
        def prepare() -> Prepared:
            tree = discover(folder, exclude=SIDECARS, allow_symlinks=True)
            partial = [f.path for f in tree.files if _partial_name(os.path.basename(f.path))]
            if partial:
                raise Unreadable(f"download incomplete: {', '.join(partial)}")
            sig = signature_location(folder).signature
            return Prepared(tree, folder, sig if os.path.lexists(sig) else None, {})

        self.jobs.append(Job(name, kind, folder, prepare))

    # -- Hugging Face ----------------------------------------------------------------------
