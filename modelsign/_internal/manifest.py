"""Step 4 of the data flow: the manifest — what a model package is, byte for byte.

The manifest is a versioned pydantic schema serialized canonically (RFC 8785),
so the same model gives byte-identical manifests on every run and machine. It
holds no timestamp; the builder (CI) section is the only part that depends on
the environment, and only inside a CI job.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._version import __version__
from ..errors import InputError, ManifestError
from ._atomic import open_regular
from ._json import canonical_dumps, out_of_domain, paused_gc, strict_loads
from .discover import ModelTree, discover
from .findings import Finding
from .formats import FileFormat
from .formats.layout import MetadataValue
from .formats.shards import check_safetensors_index
from .hashing import FileDigests, TensorHash, hash_files, peek_file
from .metadata.card import parse_model_card
from .metadata.licence import Licence, detect_licence
from .metadata.provenance import (
    ParentRef,
    Provenance,
    SourceRepo,
    base_models_from_card,
    base_models_from_gguf,
    builder_from_env,
)
from .metadata.quantization import (
    FileQuantization,
    ModelQuantization,
    file_quantization,
    model_quantization,
)

MANIFEST_KIND: Final = "modelsign.manifest"
MANIFEST_VERSION: Final = 1

_CARD_NAMES = ("README.md",)
_LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "COPYING")
_CONFIG_NAME = "config.json"
_INDEX_SUFFIX = ".safetensors.index.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorEntry(_Model):
    """One tensor: where its bytes are and their digest (absent with ``--no-tensors``)."""

    name: str
    dtype: str
    shape: list[int]
    offset: int
    length: int
    digest: str | None = None


class WeightsInfo(_Model):
    """What a strictly parsed safetensors or GGUF file holds."""

    format: Literal["safetensors", "gguf"]
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


def _captured_name(path: str) -> bool:
    return (
        path in _CARD_NAMES
        or path in _LICENCE_NAMES
        or path == _CONFIG_NAME
        or path.endswith(_INDEX_SUFFIX)
    )


def weights_info(d: FileDigests) -> WeightsInfo:
    """The manifest's view of a parsed weight file from its digests."""
    layout = d.layout
    assert layout is not None and d.header_digest is not None
    digests = d.tensor_digests
    tensors = [
        TensorEntry(
            name=t.name,
            dtype=t.dtype,
            shape=list(t.shape),
            offset=t.start,
            length=t.nbytes,
            digest=digests[i] if digests is not None else None,
        )
        for i, t in enumerate(layout.tensors)
    ]
    chat_digest = None
    if layout.chat_template is not None:
        chat_digest = hashlib.sha256(layout.chat_template.encode("utf-8")).hexdigest()
    return WeightsInfo(
        format=layout.format,
        header_size=layout.header_size,
        header_digest=d.header_digest,
        tensor_count=len(tensors),
        tensors=tensors,
        weights_digest=weights_digest(tensors) if tensors else None,
        metadata=dict(sorted(layout.metadata.items())),
        quantization=file_quantization(layout),
        gguf_version=layout.version,
        alignment=layout.alignment,
        kv_digest=d.kv_digest,
        chat_template_digest=chat_digest,
        padding=[[a, b] for a, b in layout.padding],
    )


def file_entry(d: FileDigests) -> tuple[FileEntry, list[Finding]]:
    findings: list[Finding] = list(d.findings)
    flags: list[str] = []
    weights = None
    if d.layout is not None:
        weights = weights_info(d)
        findings += [
            f if f.path is not None else f.model_copy(update={"path": d.file.path})
            for f in d.layout.findings
        ]
        if d.layout.chat_template is not None:
            flags.append("chat-template")
    if d.format == "pickle":
        flags.append("unsafe-format")
        members = f" (pickle members: {', '.join(d.pickle_members)})" if d.pickle_members else ""
        findings.append(
            Finding(
                code="PICKLE_UNSAFE",
                message="pickle-based file: loading it can execute arbitrary code" + members,
                file=d.file.path,
            )
        )
    if d.file.path.endswith(".py"):
        flags.append("code")
        findings.append(
            Finding(
                code="CODE_FILE",
                message="Python file: executed by loaders when trust_remote_code is enabled",
                file=d.file.path,
            )
        )
    if d.file.symlink:
        flags.append("symlink")
    entry = FileEntry(
        path=d.file.path,
        size=d.file.size,
        sha256=d.sha256,
        format=d.format,
        flags=sorted(flags),
        weights=weights,
    )
    return entry, findings


def _hf_blob_check(tree: ModelTree, digests: Sequence[FileDigests]) -> None:
    """An LFS blob's name (its etag) is its SHA-256: a mismatch is a corrupted or altered cache.

    The name checked is the snapshot link's own target in ``blobs/``; in the
    2.x shared store that blob may link on to a file named by another hash.
    """
    if tree.hf is None:
        return
    for d in digests:
        if not d.file.symlink:
            continue
        etag = os.path.basename(os.readlink(os.path.join(tree.root, d.file.path)))
        is_lfs = len(etag) == 64 and all(c in "0123456789abcdef" for c in etag)
        if is_lfs and d.sha256 and etag != d.sha256:
            raise ManifestError(
                "Hugging Face cache blob content does not match its name (SHA-256 etag)",
                code="HF_BLOB_DIGEST_MISMATCH",
                path=d.file.path,
                expected=etag,
                actual=d.sha256,
            )


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file."""
    p = os.fspath(path)
    try:
        with open_regular(p) as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read manifest: {exc.strerror}", code="NOT_FOUND", path=p) from exc
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
        lambda k: ManifestError(f"duplicate JSON key {k!r}", code="MANIFEST_INVALID", path=where),
        lambda why: ManifestError(f"not valid JSON: {why}", code="MANIFEST_INVALID", path=where),
    )
    return manifest_from_json(obj, where)


def manifest_from_json(obj: object, where: str) -> Manifest:
    """Validate an already parsed manifest (as a signed statement carries it)."""
    if not isinstance(obj, dict) or obj.get("kind") != MANIFEST_KIND:
        raise ManifestError("not a modelsign manifest", code="MANIFEST_INVALID", path=where)
    if obj.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"unsupported manifest version {obj.get('version')!r}",
            code="MANIFEST_VERSION",
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
            code="MANIFEST_INVALID",
            path=where,
        ) from exc


def build_manifest(
    model: str | os.PathLike[str],
    *,
    tensor_hash: TensorHash | None = "blake3",
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    allow_symlinks: bool = False,
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Discover, strictly parse and digest ``model``; return its manifest.

    ``tensor_hash=None`` skips tensor digests (``--no-tensors``): files are
    still parsed strictly and fully digested. ``progress(done, total)`` is
    called with byte counts from the hashing threads.
    """
    tree = discover(model, ignore=ignore, exclude=exclude, allow_symlinks=allow_symlinks)
    return manifest_for_tree(
        tree,
        tensor_hash=tensor_hash,
        source=source,
        parents=parents,
        env=env,
        jobs=jobs,
        progress=progress,
    )


def manifest_for_tree(
    tree: ModelTree,
    *,
    tensor_hash: TensorHash | None = "blake3",
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reuse: Mapping[str, tuple[FileEntry, list[Finding]]] | None = None,
) -> Manifest:
    """Build the manifest of an already discovered model.

    ``reuse`` maps file names to entries (and their findings) known to be
    current — incremental re-signing — which are taken as they are instead of
    read again. Small metadata files (model card, licence, config, shard index)
    are always read, since the metadata readers need their content.
    """
    reuse = {k: v for k, v in (reuse or {}).items() if not _captured_name(k)}
    todo = [f for f in tree.files if f.path not in reuse]
    total = sum(f.size for f in todo)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    digests = hash_files(
        todo, tensor_hash=tensor_hash, capture=_captured_name, jobs=jobs, progress=step
    )
    _hf_blob_check(tree, digests)

    findings: list[Finding] = []
    made: dict[str, FileEntry] = {}
    for d in digests:
        entry, found = file_entry(d)
        made[d.file.path] = entry
        findings += found
    for name, (entry, found) in reuse.items():
        made[name] = entry
        findings += found
    entries = [made[f.path] for f in tree.files]
    by_path = {d.file.path: d for d in digests}

    # Sharded safetensors: every index must agree with its shards.
    shard_tensors = {
        e.path: [t.name for t in e.weights.tensors]
        for e in entries
        if e.weights is not None and e.weights.format == "safetensors"
    }
    for e in entries:
        read = by_path.get(e.path)  # reused entries were not read again
        if e.path.endswith(_INDEX_SUFFIX) and read is not None and read.captured is not None:
            findings += check_safetensors_index(e.path, read.captured, shard_tensors)

    card: dict[str, object] = {}
    card_path = next((n for n in _CARD_NAMES if n in by_path), None)
    if card_path is not None and by_path[card_path].captured is not None:
        card, card_findings = parse_model_card(by_path[card_path].captured or b"", card_path)
        findings += card_findings
    licence_files = {
        n: by_path[n].captured or b""
        for n in _LICENCE_NAMES
        if n in by_path and by_path[n].captured is not None
    }
    gguf_entries = [e for e in entries if e.weights is not None and e.weights.format == "gguf"]
    gguf_licences = {
        e.path: str(e.weights.metadata["general.license"])
        for e in gguf_entries
        if e.weights is not None and "general.license" in e.weights.metadata
    }
    licence, licence_findings = detect_licence(
        card if card_path else None, card_path, licence_files, gguf_licences
    )
    findings += licence_findings

    config = _read_config(by_path.get(_CONFIG_NAME), findings)
    quant, quant_findings = model_quantization(
        {e.path: e.weights.quantization for e in entries if e.weights is not None},
        config,
        _CONFIG_NAME if config is not None else None,
    )
    findings += quant_findings

    provenance, prov_findings = _provenance(tree, source, card, card_path, entries, parents, env)
    findings += prov_findings

    all_tensors = [t for e in entries if e.weights is not None for t in e.weights.tensors]
    model_weights = weights_digest(all_tensors) if all_tensors else None

    return Manifest(
        name=tree.name,
        single_file=tree.single_file,
        tool=Tool(version=__version__),
        hashing=Hashing(tensor=tensor_hash, header=tensor_hash or "sha256"),
        allow_symlinks=tree.allow_symlinks,
        ignored=Ignored(patterns=sorted(set(tree.ignore_patterns)), paths=list(tree.ignored)),
        files=entries,
        weights_digest=model_weights,
        quantization=quant,
        licence=licence,
        provenance=provenance,
        findings=sorted(findings, key=lambda f: (f.path or "", f.code, f.tensor or "", f.message)),
    )


def metadata_manifest(
    tree: ModelTree, *, source: SourceRepo | None = None, env: Mapping[str, str] | None = None
) -> Manifest:
    """What a model is — formats, tensors, quantization, licence, provenance — from headers.

    Weights are not read: a file's SHA-256 is known only when it is small (see
    :func:`~modelsign._internal.hashing.peek_file`), so this manifest judges a model (a
    policy's content rules, an inventory) and is never signed or verified.
    """
    # Metadata files are read whole by manifest_for_tree anyway: peeking them would be wasted.
    reuse = {f.path: file_entry(peek_file(f)) for f in tree.files if not _captured_name(f.path)}
    return manifest_for_tree(
        tree, tensor_hash=None, source=source, env={} if env is None else env, reuse=reuse, jobs=1
    )


def _read_config(d: FileDigests | None, findings: list[Finding]) -> dict[str, object] | None:
    if d is None or d.captured is None:
        return None
    try:
        obj = json.loads(d.captured.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        findings.append(
            Finding(
                code="CONFIG_INVALID",
                message=f"config.json is not valid JSON: {exc}",
                file=_CONFIG_NAME,
            )
        )
        return None
    if not isinstance(obj, dict):
        findings.append(
            Finding(
                code="CONFIG_INVALID", message="config.json is not a JSON object", file=_CONFIG_NAME
            )
        )
        return None
    return obj


def _provenance(
    tree: ModelTree,
    source: SourceRepo | None,
    card: dict[str, object],
    card_path: str | None,
    entries: Sequence[FileEntry],
    parents: Sequence[Manifest],
    env: Mapping[str, str] | None,
) -> tuple[Provenance, list[Finding]]:
    findings: list[Finding] = []
    cache_source = None
    if tree.hf is not None:
        cache_source = SourceRepo(
            repository=tree.hf.repo_id, revision=tree.hf.revision, origin="hf-cache"
        )
    if (
        source is not None
        and cache_source is not None
        and (
            (source.repository, source.revision) != (cache_source.repository, cache_source.revision)
        )
    ):
        findings.append(
            Finding(
                code="PROVENANCE_SOURCE_CONFLICT",
                message=(
                    f"--source {source.repository}@{source.revision} differs from the cache "
                    f"snapshot {cache_source.repository}@{cache_source.revision}"
                ),
            )
        )
    base = base_models_from_card(card, card_path) if card_path else []
    for e in entries:
        if e.weights is not None and e.weights.format == "gguf":
            base += base_models_from_gguf(e.weights.metadata, e.path)
    # Provenance sorts its base models and parents itself.
    return (
        Provenance(
            source=source or cache_source,
            base_models=base,
            builder=builder_from_env(os.environ if env is None else env),
            parents=[
                ParentRef(digest=dg, name=n) for dg, n in {(p.digest(), p.name) for p in parents}
            ],
        ),
        findings,
    )
