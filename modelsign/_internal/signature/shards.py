"""Shard serialization (OMS v1.0 §6.3.2): byte ranges of files, read strictly.

A shard resource is named ``"<path>:<start>:<end>"`` (start inclusive, end
exclusive, canonical decimal); the suffix is the *last* two colon-separated
components, since file names may contain colons. Every range of a file is
exactly ``shard_size`` bytes except its last, which may be shorter; a
zero-length file has no entry at all.

Two wire forms are read:

* the spec form: ``algorithm`` equals ``serialization.hash_type`` and
  ``serialization.shard_size`` is a JSON integer;
* the form ``model_signing`` 1.1.1 writes: ``algorithm`` is
  ``"<hash>-sharded-<N>"`` and ``shard_size`` a JSON float (``4096.0``), which
  must be integral and equal ``N``.

Only the spec form is written (:func:`shard_resources`).

Error codes (all :class:`~modelsign.errors.VerificationError`):

``SHARD_NAME_INVALID``
    a name without a ``:<start>:<end>`` suffix of canonical ASCII decimals
    (no sign, no leading zero, no ``_``), or with ``start >= end``.
``SHARD_SIZE_INVALID``
    ``serialization.shard_size`` missing, not a positive integer (a bool, a
    string, a non-integral or, in the spec form, any float), or disagreeing
    with the ``-sharded-N`` of the resources.
``UNKNOWN_ALGORITHM``
    a resource algorithm or ``hash_type`` that is not ``sha256``, ``blake2b``
    or ``blake3`` (optionally ``-sharded-N``).
``ALGORITHM_MISMATCH``
    a resource hashed with another algorithm than ``serialization.hash_type``.
``SHARD_OVERLAP``
    two ranges of one file share bytes (the same range listed twice included).
``SHARD_GAP``
    bytes of a file before its last range are in no range (the first range
    must start at 0).
``SHARD_SIZE_MISMATCH``
    a range other than a file's last is not exactly ``shard_size`` bytes, or
    the last is longer than ``shard_size``.

Whether the last range ends at the file's size is for the verifier to check
against the file on disk (``FILE_SIZE_MISMATCH`` there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Literal, NamedTuple, Protocol, cast

from ...codes import Code
from ...errors import InputError, VerificationError

HashType = Literal["sha256", "blake2b", "blake3"]
HASH_TYPES: tuple[HashType, ...] = ("sha256", "blake2b", "blake3")
#: Offsets are ``off_t`` (signed 64-bit); more digits cannot be a real offset
#: and would only make ``int()`` slow or fail.
_MAX_OFFSET = (1 << 63) - 1
# [0-9], not \d: \d matches every Unicode digit, which int() would happily read.
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]{0,18})")
_SHARDED = re.compile(r"(sha256|blake2b|blake3)-sharded-([1-9][0-9]{0,18})(?:\.0)?")


class Shard(NamedTuple):
    """One signed byte range ``[start, end)`` of a file and its hex digest."""

    start: int
    end: int
    digest: str


class _NamedDigest(Protocol):
    """What :func:`tile_shards` needs of a resource (``statement.Resource`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def digest(self) -> str: ...


def _fail(message: str, code: str) -> VerificationError:
    return VerificationError(message, code=code)


def _offset(text: str, name: str) -> int:
    # fullmatch on a str pattern: "$" would accept a trailing newline.
    if not _DECIMAL.fullmatch(text) or int(text) > _MAX_OFFSET:
        raise _fail(
            f"shard resource {name!r}: {text!r} is not a canonical decimal byte offset",
            "SHARD_NAME_INVALID",
        )
    return int(text)


def parse_shard_name(name: str) -> tuple[str, int, int]:
    """``(path, start, end)`` of a shard resource named ``"<path>:<start>:<end>"``."""
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise _fail(
            f"shard resource {name!r} is not named '<path>:<start>:<end>'", "SHARD_NAME_INVALID"
        )
    path, a, b = parts
    start, end = _offset(a, name), _offset(b, name)
    if start >= end:
        raise _fail(
            f"shard resource {name!r}: start {start} is not before end {end}",
            "SHARD_NAME_INVALID",
        )
    return path, start, end


def known_shard_algorithm(algorithm: str) -> bool:
    """Whether a shard resource's algorithm is one of the two forms read here."""
    return algorithm in HASH_TYPES or _SHARDED.fullmatch(algorithm) is not None


def resource_hash(algorithm: str, hash_type: str, name: str = "") -> HashType:
    """The base hash of a resource's ``algorithm``, which must be ``hash_type``.

    ``sha256-sharded-1000`` (model_signing) and ``sha256`` (the spec) both give
    ``sha256``: the ``-N`` is checked against ``shard_size`` by :func:`shard_size_of`.
    """
    if hash_type not in HASH_TYPES:
        raise _fail(f"unknown serialization.hash_type {hash_type!r}", "UNKNOWN_ALGORITHM")
    m = _SHARDED.fullmatch(algorithm)
    base = m.group(1) if m is not None else algorithm
    if base not in HASH_TYPES:
        raise _fail(f"resource {name!r}: unknown hash algorithm {algorithm!r}", "UNKNOWN_ALGORITHM")
    if base != hash_type:
        raise _fail(
            f"resource {name!r} is hashed with {algorithm!r}, "
            f"but serialization.hash_type is {hash_type!r}",
            "ALGORITHM_MISMATCH",
        )
    return cast(HashType, base)


def shard_size_of(serialization: Mapping[str, object], algorithms: Iterable[str]) -> int:
    """``serialization.shard_size`` as a positive int, checked against the resources.

    A JSON float is model_signing's deviation: it is accepted only when the
    resources carry that tool's ``-sharded-N`` algorithms, and only when
    integral; every ``N`` must equal it. The spec form needs a JSON integer.
    """
    if "shard_size" not in serialization:
        raise _fail(
            "serialization.shard_size is required for method 'shards'", "SHARD_SIZE_INVALID"
        )
    raw = serialization["shard_size"]
    sizes = {m.group(2) for a in algorithms if (m := _SHARDED.fullmatch(a)) is not None}
    # bool is a subclass of int in Python: true must not read as a shard size of 1.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _fail(
            f"serialization.shard_size must be a positive integer, got {raw!r}",
            "SHARD_SIZE_INVALID",
        )
    if isinstance(raw, float) and not (sizes and math.isfinite(raw) and raw.is_integer()):
        why = "an integer" if not sizes else "an integral number"
        raise _fail(f"serialization.shard_size must be {why}, got {raw!r}", "SHARD_SIZE_INVALID")
    size = int(raw)
    if size <= 0:
        raise _fail(f"serialization.shard_size must be positive, got {raw!r}", "SHARD_SIZE_INVALID")
    if sizes and sizes != {str(size)}:
        raise _fail(
            f"serialization.shard_size is {size}, but the resources say "
            f"-sharded-{', -sharded-'.join(sorted(sizes))}",
            "SHARD_SIZE_INVALID",
        )
    return size


def tile_shards(resources: Iterable[_NamedDigest], shard_size: int) -> dict[str, tuple[Shard, ...]]:
    """The shards of each file, in offset order, checked to tile it from byte 0.

    Ranges must be contiguous (no gap, no overlap), each exactly ``shard_size``
    bytes except the last of a file, which may be shorter (never empty: names
    with ``start >= end`` are refused by :func:`parse_shard_name`).
    """
    by_file: dict[str, list[Shard]] = {}
    for r in resources:
        path, start, end = parse_shard_name(r.name)
        by_file.setdefault(path, []).append(Shard(start, end, r.digest))
    return {path: _tile(path, shards, shard_size) for path, shards in by_file.items()}


def _tile(path: str, shards: list[Shard], shard_size: int) -> tuple[Shard, ...]:
    shards.sort()
    # Contiguity first: an overlap or gap is the real fault, even where it
    # also makes a range the wrong length.
    expected = 0
    for i, s in enumerate(shards):
        if s.start < expected:
            prev = shards[i - 1]
            raise _fail(
                f"file {path!r}: shards {prev.start}:{prev.end} and {s.start}:{s.end} overlap",
                "SHARD_OVERLAP",
            )
        if s.start > expected:
            raise _fail(f"file {path!r}: bytes {expected}:{s.start} are in no shard", "SHARD_GAP")
        expected = s.end
    for i, s in enumerate(shards):
        last = i == len(shards) - 1
        if (s.end - s.start != shard_size) if not last else (s.end - s.start > shard_size):
            raise _fail(
                f"file {path!r}: shard {s.start}:{s.end} is {s.end - s.start} bytes; "
                f"{'at most ' if last else ''}{shard_size} expected (shard_size)",
                "SHARD_SIZE_MISMATCH",
            )
    return tuple(shards)


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges a file of ``size`` bytes is cut into (none when empty)."""
    if shard_size <= 0:
        raise InputError(f"shard size must be positive, got {shard_size}", code=Code.BAD_SHARD_SIZE)
    return [(a, min(a + shard_size, size)) for a in range(0, size, shard_size)]


def shard_resources(
    digests: Mapping[str, list[str]],
    sizes: Mapping[str, int],
    shard_size: int,
    hash_type: str,
) -> list[dict[str, str]]:
    """Spec-form shard resource descriptors, sorted by name (Unicode code points).

    ``digests`` maps each file name (as it is to appear in the resources) to
    its shard digests in offset order (:func:`modelsign._internal.hashing.hash_shards`);
    ``sizes`` gives each file's size. A zero-length file yields no entry. The
    subject digest must then be computed over the list in this order.
    """
    if hash_type not in HASH_TYPES:
        raise InputError(f"unknown hash type {hash_type!r}", code=Code.BAD_ALGORITHM)
    out: list[dict[str, str]] = []
    for path, ds in digests.items():
        ranges = shard_ranges(sizes[path], shard_size)
        if len(ranges) != len(ds):
            raise InputError(
                f"{path}: {len(ds)} shard digests for {len(ranges)} shards "
                f"of {shard_size} bytes in {sizes[path]} bytes",
                code=Code.BAD_SHARDS,
                path=path,
            )
        out += [
            {"name": f"{path}:{a}:{b}", "algorithm": hash_type, "digest": d}
            for (a, b), d in zip(ranges, ds, strict=True)
        ]
    return sorted(out, key=lambda r: r["name"])
