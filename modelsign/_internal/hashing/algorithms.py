"""The digest algorithms: tensor and header hashes, and what a byte range may use."""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol

import blake3

from ...codes import Code
from ...errors import InputError

TensorHash = Literal["blake3", "sha256"]
TENSOR_HASHES: tuple[TensorHash, ...] = ("blake3", "sha256")
#: What a byte range may be digested with: the tensor hashes, and BLAKE2b for
#: OMS shard signatures (``serialization.hash_type``).
RangeHash = Literal["blake3", "sha256", "blake2b"]


class Hasher(Protocol):
    """What the pipeline needs of a hash object (hashlib's and blake3's have it)."""

    def update(self, data: bytes | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher(algorithm: TensorHash, *, spread: bool = False) -> Hasher:
    """A fresh hasher for tensor and header digests.

    ``spread``: a BLAKE3 hasher that splits large updates over all cores (the
    digest is the same), for when there are fewer ranges than cores to share.
    """
    if algorithm == "blake3":
        return blake3.blake3(max_threads=blake3.blake3.AUTO if spread else 1)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise InputError(f"unknown tensor hash {algorithm!r}", code=Code.BAD_ALGORITHM)


def range_hasher(algorithm: RangeHash, *, spread: bool = False) -> Hasher:
    """A fresh hasher for a byte range: a tensor hash, or BLAKE2b (OMS shards)."""
    if algorithm == "blake2b":
        return hashlib.blake2b()
    return new_hasher(algorithm, spread=spread)


def digest_bytes(algorithm: TensorHash, data: bytes) -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return h.hexdigest()
