"""The manifest schema: what a model package is, byte for byte.

The manifest is a versioned pydantic schema serialized canonically (RFC 8785),
so the same model gives byte-identical manifests on every run and machine. It
holds no timestamp; the builder (CI) section is the only part that depends on
the environment, and only inside a CI job.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ...codes import Code
from ...errors import InputError, ManifestError
from .._atomic import open_regular
from .._json import added_field as _added_field
from .._json import canonical_dumps, out_of_domain, paused_gc, strict_loads
from ..findings import Finding
from ..formats import FileFormat
from ..formats.layout import MetadataValue
from ..hashing import TensorHash
from ..metadata.licence import Licence
from ..metadata.provenance import Provenance
from ..metadata.quantization import FileQuantization, ModelQuantization

MANIFEST_KIND: Final = "modelsign.manifest"
MANIFEST_VERSION: Final = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorEntry(_Model):
    """One tensor: where its bytes are and their digest (absent with ``--no-tensors``).

    In an archive (a torch checkpoint) ``storage`` names the member that holds
    it; a tensor that is no contiguous range of it has no digest of its own.
    """

    name: str
    dtype: str
    shape: list[int]
    offset: int
    length: int
    digest: str | None = None
    storage: str | None = _added_field()


class StorageEntry(_Model):
    """One storage of an archive: a member holding tensor bytes, digested once."""

    name: str
    offset: int
    length: int
    digest: str | None = None


class WeightsInfo(_Model):
    """What a strictly parsed safetensors, GGUF, torch checkpoint, NumPy or Keras file holds.

    For a torch checkpoint, ``.npy``/``.npz`` or ``.keras`` archive the header
    digest covers every byte outside the storages (ZIP structure, pickles,
    array headers, Keras config), so with the storage digests it vouches for
    the whole file.
    """

    format: Literal["safetensors", "gguf", "pytorch", "onnx", "numpy", "keras"]
    header_size: int
    header_digest: str
    tensor_count: int
    tensors: list[TensorEntry]
    weights_digest: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    quantization: FileQuantization
    # GGUF only
    gguf_version: int | None = None
    alignment: int | None = None
    kv_digest: str | None = None
    chat_template_digest: str | None = None
    padding: list[list[int]] = Field(default_factory=list)
    storages: list[StorageEntry] = _added_field(list)


class FileEntry(_Model):
    """One file of the model."""

    path: str
    size: int
    sha256: str
    format: FileFormat
    flags: list[str] = Field(default_factory=list)
    weights: WeightsInfo | None = None


class Hashing(_Model):
    """Algorithms used: file digests are always SHA-256 (what OMS and HF LFS use)."""

    file: Literal["sha256"] = "sha256"
    tensor: TensorHash | None
    header: TensorHash  # header and GGUF KV digests: the tensor hash, else SHA-256
    weights: Literal["sha256"] = "sha256"


class Ignored(_Model):
    patterns: list[str]
    paths: list[str]


class Tool(_Model):
    name: Literal["modelsign"] = "modelsign"
    version: str


class Manifest(_Model):
    """The manifest of one model package (schema version 1)."""

    kind: Literal["modelsign.manifest"] = MANIFEST_KIND
    version: Literal[1] = MANIFEST_VERSION
    name: str
    single_file: bool
    tool: Tool
    hashing: Hashing
    allow_symlinks: bool
    ignored: Ignored
    files: list[FileEntry]
    weights_digest: str | None
    quantization: ModelQuantization
    licence: Licence
    provenance: Provenance
    findings: list[Finding]

    @model_validator(mode="before")
    @classmethod
    def _json_safe_numbers(cls, data: Any) -> Any:
        # Every size, offset, length, shape, count and metadata value must have
        # an exact RFC 8785 form: refused here, not when diff, sbom, inspect or
        # verify canonicalises the manifest (or a range past 2**53 reaches I/O).
        where = out_of_domain(data)
        if where is not None:
            raise ValueError(where)
        return data

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON: the bytes that are digested and signed."""
        return canonical_dumps(self.model_dump(mode="json"))

    @property
    def tensor_count(self) -> int:
        """Tensors in all weight files."""
        return sum(f.weights.tensor_count for f in self.files if f.weights is not None)

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical bytes."""
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def file(self, path: str) -> FileEntry | None:
        for f in self.files:
            if f.path == path:
                return f
        return None


#: One digest-covered byte range of a weight file: (start, end, algorithm, expected);
#: algorithm None means the range is padding, expected to be all zero (True).
Part = tuple[int, int, TensorHash | None, "str | bool"]


def covering_parts(entry: FileEntry | None, size: int, hashing: Hashing) -> list[Part] | None:
    """The header, tensor and padding ranges of a signed weight file, if they cover every byte.

    Listed header first, then tensors, then padding (callers rely on that
    order). None when the manifest does not cover the whole file of ``size``
    bytes — then only the file digest can vouch for it. Verifying the parts
    proves the same bytes as the file digest, and the parts hash in parallel.
    """
    if entry is None or entry.weights is None or hashing.tensor is None or entry.size != size:
        return None
    w = entry.weights
    if w.format not in ("safetensors", "gguf"):  # archives: structure between the storages
        return None
    if any(t.digest is None for t in w.tensors):
        return None
    parts: list[Part] = [(0, w.header_size, hashing.header, w.header_digest)]
    parts += [(t.offset, t.offset + t.length, hashing.tensor, t.digest or "") for t in w.tensors]
    parts += [(a, b, None, True) for a, b in w.padding]
    end = 0
    for a, b, _alg, _want in sorted(parts, key=lambda p: (p[0], p[1])):
        if a != end:
            return None
        end = b
    return parts if end == size else None


def weights_digest(tensors: Sequence[TensorEntry]) -> str | None:
    """Digest of the sorted (name, dtype, shape, digest) of tensors.

    Independent of file boundaries, tensor order and header metadata, so the
    same weights re-sharded or re-serialized keep the same weights digest.
    """
    if any(t.digest is None for t in tensors):
        return None
    rows = sorted([t.name, t.dtype, list(t.shape), t.digest] for t in tensors)
    return hashlib.sha256(canonical_dumps(rows)).hexdigest()


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file."""
    p = os.fspath(path)
    try:
        with open_regular(p) as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(
            f"cannot read manifest: {exc.strerror}", code=Code.NOT_FOUND, path=p
        ) from exc
    return parse_manifest(data, p)


def looks_like_manifest(data: bytes) -> bool:
    """Whether ``data`` is JSON claiming to be a modelsign manifest (not validated)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("kind") == MANIFEST_KIND


def parse_manifest(data: bytes, where: str) -> Manifest:
    """Validate manifest JSON bytes (duplicate keys refused)."""

    obj = strict_loads(
        data,
        lambda k: ManifestError(
            f"duplicate JSON key {k!r}", code=Code.MANIFEST_INVALID, path=where
        ),
        lambda why: ManifestError(f"not valid JSON: {why}", code=Code.MANIFEST_INVALID, path=where),
    )
    return manifest_from_json(obj, where)


def manifest_from_json(obj: object, where: str) -> Manifest:
    """Validate an already parsed manifest (as a signed statement carries it)."""
    if not isinstance(obj, dict) or obj.get("kind") != MANIFEST_KIND:
        raise ManifestError("not a modelsign manifest", code=Code.MANIFEST_INVALID, path=where)
    if obj.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"unsupported manifest version {obj.get('version')!r}",
            code=Code.MANIFEST_VERSION,
            path=where,
        )
    try:
        with paused_gc():
            return Manifest.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ManifestError(
            f"manifest field {loc}: {msg}" if loc else f"manifest: {msg}",
            code=Code.MANIFEST_INVALID,
            path=where,
        ) from exc
