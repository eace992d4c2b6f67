"""Which files a check compares, and how: the signed statement laid over the files found.

Pure: the reader asks the plan what to read, and the judge lays the same plan
over what was read, so the two cannot disagree about a file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ...codes import Code
from .._text import plural
from ..manifest import Part, covering_parts
from ..signature.shards import Shard
from ..signature.statement import SINGLE_FILE_RESOURCE, Resource, SignedStatement
from .compare import Problem
from .facts import Listing

#: How a present signed file is checked: by its size alone (another size than
#: signed: not read), its shard digests, its header and tensor digests (the
#: parts covering every byte), its whole SHA-256, or another whole-file digest.
Method = Literal["size", "shards", "fast", "whole", "other"]


@dataclass(frozen=True)
class Plan:
    """The statement against the listing: what is signed, present, missing, unsigned."""

    signed: Mapping[str, tuple[Resource, ...]]  # by file name on disk (shards grouped)
    refusal: Problem | None = None  # a single-file signature for a folder, or the reverse
    present: tuple[str, ...] = ()  # signed and found, in signed order
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # found, not signed, not excused
    excused: tuple[str, ...] = ()  # found, not signed, left out by the verifier's patterns
    empty_unlisted: tuple[str, ...] = ()  # zero-length files a shard signature cannot list
    gone_empty: tuple[str, ...] = ()  # signed empty files (in the manifest only) not found
    methods: Mapping[str, Method] = field(default_factory=dict)
    parts: Mapping[str, list[Part]] = field(default_factory=dict)  # method "fast"
    tiles: Mapping[str, tuple[Shard, ...]] = field(default_factory=dict)  # shard statements
    candidates: tuple[str, ...] = ()  # extra files that may be a missing one renamed: hash these
    total: int = 0  # bytes of the present signed files

    def expected(self, name: str) -> str:
        """The signed digest of a present file (its first resource's, for shards)."""
        return self.signed[name][0].digest


def _grouped(
    st: SignedStatement, listing: Listing
) -> tuple[dict[str, tuple[Resource, ...]], Problem | None]:
    """Signed resources by file name (shards under their file), or why they cannot apply."""
    out: dict[str, list[Resource]] = {}
    for r in st.resources:
        out.setdefault(st.file_of(r), []).append(r)
    if listing.single_file:
        (name,) = listing.sizes
        names = set(out)
        if names <= {SINGLE_FILE_RESOURCE, name} and len(names) == 1:
            return {name: tuple(next(iter(out.values())))}, None
        return {}, Problem(
            code=Code.SIGNATURE_FOR_FOLDER,
            message=f"the signature covers {plural(len(names), 'file')} of a folder, "
            "not this single file",
            file=name,
        )
    if SINGLE_FILE_RESOURCE in out:
        return {}, Problem(
            code=Code.SIGNATURE_FOR_FILE,
            message="the signature is for a single file; verify that file, not a folder",
        )
    return {n: tuple(rs) for n, rs in out.items()}, None


_How = tuple[Method, "list[Part] | None", "tuple[Shard, ...] | None"]


def _method(st: SignedStatement, name: str, size: int, res: Resource) -> _How:
    """How one present file is checked, with its parts or its shards when that is how."""
    entry = st.entry(name)
    if st.method == "shards":
        tiles = st.shards[st.file_of(res)]
        return ("shards" if tiles[-1].end == size else "size"), None, tiles
    if entry is not None and entry.size != size:
        return "size", None, None
    if res.algorithm != "sha256":
        return "other", None, None
    m = st.manifest
    parts = covering_parts(entry, size, m.hashing) if m is not None else None
    if entry is None or parts is None:
        return "whole", None, None
    return "fast", parts, None


def _empty(st: SignedStatement, name: str, size: int) -> Literal["listed", "unlisted"] | None:
    """A zero-length file under shard serialization: accounted for, not unsigned.

    OMS §6.3.2 omits zero-length files from the resources, so a shard
    signature cannot say whether one was there: it is the same signature
    either way. Reported for information, never as an unsigned file — unless
    modelsign's attested manifest lists the files, which decides.
    """
    if st.method != "shards" or size != 0:
        return None
    if st.manifest is not None:
        entry = st.entry(name)
        return "listed" if entry is not None and entry.size == 0 else None
    return "unlisted"


def make_plan(st: SignedStatement, listing: Listing, ignore: Sequence[str] = ()) -> Plan:
    """Lay ``st`` over ``listing``; ``ignore`` (fnmatch) excuses unsigned files, not signed ones."""
    signed, refusal = _grouped(st, listing)
    if refusal is not None:
        return Plan(signed={}, refusal=refusal)
    sizes = listing.sizes
    present = tuple(n for n in signed if n in sizes)
    missing = tuple(n for n in signed if n not in sizes)
    empty = {n: kind for n, size in sizes.items() if (kind := _empty(st, n, size)) is not None}
    unsigned = [n for n in sizes if n not in signed and n not in empty]
    excused = tuple(n for n in unsigned if any(fnmatch.fnmatchcase(n, p) for p in ignore))
    extra = tuple(n for n in unsigned if n not in excused)
    gone: tuple[str, ...] = ()
    if st.method == "shards" and st.manifest is not None:
        # Empty files have no shard: the attested manifest still names them.
        gone = tuple(e.path for e in st.manifest.files if e.size == 0 and e.path not in sizes)
    methods: dict[str, Method] = {}
    parts: dict[str, list[Part]] = {}
    tiles: dict[str, tuple[Shard, ...]] = {}
    for n in present:
        methods[n], covering, shards = _method(st, n, sizes[n], signed[n][0])
        if covering is not None:
            parts[n] = covering
        if shards is not None:
            tiles[n] = shards
    # Only an extra file of a missing file's signed size can be it renamed:
    # others are not read (without recorded sizes, every one is).
    wanted = [st.signed_size(m) for m in missing]
    candidates = tuple(n for n in extra if None in wanted or sizes[n] in wanted) if missing else ()
    return Plan(
        signed=signed,
        present=present,
        missing=missing,
        extra=extra,
        excused=excused,
        empty_unlisted=tuple(n for n, kind in empty.items() if kind == "unlisted"),
        gone_empty=gone,
        methods=methods,
        parts=parts,
        tiles=tiles,
        candidates=candidates,
        total=sum(sizes[n] for n in present),
    )
