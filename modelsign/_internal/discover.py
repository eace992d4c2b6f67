"""Step 1 of the data flow: turn a path into the exact list of files of a model.

A model is a folder, a single file, or a Hugging Face cache snapshot
(``models--org--name/snapshots/<commit>``, or the ``models--org--name`` folder
resolved through ``refs/main``). Discovery never opens a file and never blocks:
special files are refused from their ``lstat`` mode, and symlinks are refused
unless allowed — and even then never followed out of the model root, except the
Hugging Face case of snapshot links into the same repository's ``blobs/``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..codes import Code
from ..errors import DiscoveryError, InputError
from ._atomic import describe_mode as describe_mode
from ._atomic import open_regular

#: Paths never part of a model (recorded as ignored), as the OMS tool does.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")

#: How many folders deep a model may nest (the root's own files are at depth 0).
#: Real models nest a few levels; the cap turns an absurd tree into ``TOO_DEEP``.
MAX_DEPTH = 256

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO_DIR_RE = re.compile(r"^(models|datasets|spaces)--(.+)$")


@dataclass(frozen=True)
class ModelFile:
    """One file of the model: its recorded name and where to read it."""

    path: str  # POSIX name relative to the model root (what the manifest records)
    real: str  # absolute path to open; the realpath for a followed symlink
    size: int
    dev: int
    ino: int
    symlink: bool = False
    #: Real folder the file must resolve inside when it is opened ("" for no such
    #: rule): the model root, or for a Hugging Face snapshot the cache holding its blobs.
    within: str = ""


@dataclass(frozen=True)
class HFSnapshot:
    """Where a model came from, when it is a Hugging Face cache snapshot."""

    repo_id: str
    revision: str  # the snapshot's commit
    repo_dir: str  # absolute path of ``models--org--name``
    ref: str | None = None  # "main" when resolved through refs/main


@dataclass(frozen=True)
class ModelTree:
    """The discovered model: files sorted by Unicode code point of their name."""

    root: str  # absolute folder the names are relative to
    name: str  # the model's name: folder or file name (the repo id for a snapshot)
    single_file: bool
    files: tuple[ModelFile, ...]
    ignored: tuple[str, ...]  # names that were present and ignored
    ignore_patterns: tuple[str, ...]
    allow_symlinks: bool
    hf: HFSnapshot | None = None


def name_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> str | None:
    """``path`` as a POSIX name relative to folder ``root``, or None when it is not inside it.

    What a signature written into the model folder is excluded from the walk by.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return None
    return rel.replace(os.sep, "/")


def check_relative_name(name: str, *, where: str = "name") -> str:
    """Refuse a name that is not a plain relative POSIX path inside the root.

    Used for names found on disk and, more importantly, for names read from
    signatures and indexes, which an attacker controls.
    """
    problem = None
    if not name:
        problem = "is empty"
    elif "\x00" in name:
        problem = "contains a NUL byte"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        problem = "is absolute"
    elif "\\" in name:
        problem = "contains a backslash"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has an empty, '.' or '..' component"
    else:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
    if problem is not None:
        raise DiscoveryError(f"{where} {name!r} {problem}", code=Code.BAD_NAME, path=name)
    return name


def matches_pattern(rel: str, patterns: Iterable[str]) -> bool:
    """fnmatch on the relative POSIX name, or (for a pattern without ``/``) on its base name."""
    base = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        pat = pattern.rstrip("/")
        if fnmatch.fnmatchcase(rel, pat) or ("/" not in pat and fnmatch.fnmatchcase(base, pat)):
            return True
    return False


def resolve_hf_snapshot(path: str) -> tuple[str, HFSnapshot] | None:
    """Recognise a Hugging Face cache repo folder or snapshot folder."""
    path = os.path.abspath(path)
    base = os.path.basename(path)
    m = _HF_REPO_DIR_RE.match(base)
    if m and os.path.isdir(os.path.join(path, "snapshots")):
        ref_file = os.path.join(path, "refs", "main")
        try:
            with open_regular(ref_file, "r", encoding="ascii") as fh:  # a FIFO: no hang
                commit = fh.read(100).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise DiscoveryError(
                f"Hugging Face cache repo has no readable refs/main ({exc.__class__.__name__}); "
                "pass the snapshots/<commit> folder instead",
                code=Code.HF_CACHE_NO_REF,
                path=path,
            ) from exc
        if not _COMMIT_RE.match(commit):
            raise DiscoveryError(
                f"refs/main holds {commit[:60]!r}, not a 40-hex commit",
                code=Code.HF_CACHE_BAD_REF,
                path=ref_file,
            )
        snap = os.path.join(path, "snapshots", commit)
        if not os.path.isdir(snap):
            raise DiscoveryError(
                f"refs/main points to {commit}, which has no snapshot folder",
                code=Code.HF_CACHE_NO_SNAPSHOT,
                path=path,
            )
        return snap, HFSnapshot(_repo_id(m.group(2)), commit, path, ref="main")
    parent = os.path.dirname(path)
    repo_dir = os.path.dirname(parent)
    m = _HF_REPO_DIR_RE.match(os.path.basename(repo_dir))
    if os.path.basename(parent) == "snapshots" and m:
        return path, HFSnapshot(_repo_id(m.group(2)), base, repo_dir)
    return None


def _repo_id(flat: str) -> str:
    return flat.replace("--", "/")


def discover(
    model: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    allow_symlinks: bool = False,
    ignore_git: bool = True,
) -> ModelTree:
    """Walk ``model`` and return its files, refusing anything unsafe.

    ``ignore`` patterns (fnmatch, on the relative POSIX name or, without a
    ``/``, on a base name at any depth) are recorded; ``exclude`` names exact
    relative paths (such as the signature file) that are ignored the same way.
    With ``ignore_git`` the git paths are excluded at the top level only: OMS
    v1.0 §6.2.1 signs ``sub/.git`` like any other folder.
    """
    given = os.fspath(model)
    st = _lstat(given)
    patterns = tuple(ignore)
    # The default exclusions are top-level names only (OMS §6.2.1): sub/.git is signed.
    exclude = (*exclude, *GIT_PATHS) if ignore_git else tuple(exclude)
    hf = resolve_hf_snapshot(given) if stat.S_ISDIR(st.st_mode) else None
    if hf is not None:
        root = hf[0]
        name = hf[1].repo_id
    else:
        root = os.path.abspath(given)
        name = os.path.basename(root.rstrip("/")) or root

    if stat.S_ISLNK(st.st_mode) and hf is None:
        if not allow_symlinks:
            raise DiscoveryError(
                "the model path is a symlink; pass --allow-symlinks to follow it",
                code=Code.SYMLINK_REFUSED,
                path=given,
            )
        root = os.path.realpath(given)
        st = os.stat(root)
    if stat.S_ISREG(st.st_mode):
        folder = os.path.dirname(root)
        rel = os.path.basename(root)
        check_relative_name(rel, where="file name")
        f = ModelFile(rel, root, st.st_size, st.st_dev, st.st_ino)
        return ModelTree(folder, rel, True, (f,), (), patterns, allow_symlinks)
    if not stat.S_ISDIR(st.st_mode):
        raise DiscoveryError(
            f"{describe_mode(st.st_mode)} is not a model (a folder or a regular file)",
            code=Code.SPECIAL_FILE,
            path=given,
        )

    return _walk_folder(given, root, name, patterns, exclude, allow_symlinks, hf)


def _lstat(given: str) -> os.stat_result:
    try:
        return os.lstat(given)
    except FileNotFoundError as exc:
        raise InputError(
            f"no such file or folder: {given}", code=Code.NOT_FOUND, path=given
        ) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read {given}: {exc.strerror}", code=Code.UNREADABLE, path=given
        ) from exc


def _walk_folder(
    given: str,
    root: str,
    name: str,
    patterns: tuple[str, ...],
    exclude: Sequence[str],
    allow_symlinks: bool,
    hf: tuple[str, HFSnapshot] | None,
) -> ModelTree:
    """The files of a model folder (``root``; ``given`` is what the caller named)."""
    walker = _Walker(root, patterns, set(exclude), allow_symlinks, hf[1] if hf else None)
    walker.walk()
    if not walker.files:
        raise DiscoveryError(
            "the model has no files to record"
            + (f" (ignored: {', '.join(walker.ignored)})" if walker.ignored else ""),
            code=Code.EMPTY_MODEL,
            path=given,
        )
    files = tuple(sorted(walker.files, key=lambda f: f.path))
    return ModelTree(
        root,
        name,
        False,
        files,
        tuple(sorted(walker.ignored)),
        patterns,
        allow_symlinks or hf is not None,
        hf[1] if hf else None,
    )


class _Walker:
    def __init__(
        self,
        root: str,
        patterns: tuple[str, ...],
        exclude: set[str],
        allow_symlinks: bool,
        hf: HFSnapshot | None,
    ) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.patterns = patterns
        self.exclude = exclude
        self.allow_symlinks = allow_symlinks
        self.hf = hf
        self.files: list[ModelFile] = []
        self.ignored: list[str] = []

    def walk(self) -> None:
        """Every entry under the root, depth first in name order, without recursion.

        A stack, not the call stack: a folder nested deeper than Python's
        recursion limit must be an error with a code, not a ``RecursionError``.
        """
        stack: list[tuple[str, str, int]] = [(self.root, "", 0)]
        while stack:
            folder, prefix, depth = stack.pop()
            subfolders = self._list(folder, prefix, depth)
            stack.extend(reversed(subfolders))

    def _list(self, folder: str, prefix: str, depth: int) -> list[tuple[str, str, int]]:
        """Record the files of one folder; return its subfolders (in name order) to walk."""
        if depth > MAX_DEPTH:
            raise DiscoveryError(
                f"folders nest more than {MAX_DEPTH} levels deep; a model is not walked that far",
                code=Code.TOO_DEEP,
                path=prefix.rstrip("/"),
            )
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DiscoveryError(
                f"cannot list folder: {exc.strerror}", code=Code.UNREADABLE, path=prefix or "."
            ) from exc
        subfolders: list[tuple[str, str, int]] = []
        for entry in entries:
            name = entry.name
            rel = f"{prefix}{name}"
            check_relative_name(rel)
            if rel in self.exclude or matches_pattern(rel, self.patterns):
                self.ignored.append(rel)
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subfolders.append((entry.path, rel + "/", depth + 1))
            elif stat.S_ISREG(st.st_mode):
                self.files.append(self._file(rel, entry.path, st))
            elif stat.S_ISLNK(st.st_mode):
                self.files.append(self._symlink(entry.path, rel))
            else:
                raise DiscoveryError(
                    f"{describe_mode(st.st_mode)} cannot be part of a model",
                    code=Code.SPECIAL_FILE,
                    path=rel,
                )
        return subfolders

    def _file(self, rel: str, path: str, st: os.stat_result) -> ModelFile:
        return ModelFile(rel, path, st.st_size, st.st_dev, st.st_ino, within=self.real_root)

    def _symlink(self, link: str, rel: str) -> ModelFile:
        target = os.readlink(link)
        real = os.path.realpath(link)
        within = self.real_root
        if self.hf is not None:
            # A snapshot entry must point into this repo's blobs/ (lexically);
            # the blob itself may link on into the cache's shared store.
            lexical = os.path.normpath(os.path.join(os.path.dirname(link), target))
            blobs = os.path.join(self.hf.repo_dir, "blobs") + os.sep
            within = os.path.realpath(os.path.dirname(self.hf.repo_dir))
            if not lexical.startswith(blobs) or not real.startswith(within + os.sep):
                raise DiscoveryError(
                    f"snapshot link points to {target!r}, outside this repo's blobs/",
                    code=Code.SYMLINK_ESCAPE,
                    path=rel,
                )
        elif not self.allow_symlinks:
            raise DiscoveryError(
                f"symlink to {target!r} refused; pass --allow-symlinks to follow links "
                "that stay inside the model",
                code=Code.SYMLINK_REFUSED,
                path=rel,
            )
        elif not real.startswith(self.real_root + os.sep):
            raise DiscoveryError(
                f"symlink to {target!r} leaves the model root",
                code=Code.SYMLINK_ESCAPE,
                path=rel,
            )
        try:
            st = os.stat(real)
        except OSError as exc:
            raise DiscoveryError(
                f"symlink to {target!r} is dangling", code=Code.SYMLINK_DANGLING, path=rel
            ) from exc
        if not stat.S_ISREG(st.st_mode):
            raise DiscoveryError(
                f"symlink to {target!r} points to {describe_mode(st.st_mode)}, not a regular file",
                code=Code.SYMLINK_NOT_FILE,
                path=rel,
            )
        return ModelFile(rel, real, st.st_size, st.st_dev, st.st_ino, symlink=True, within=within)
