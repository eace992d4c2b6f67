"""Building a manifest: a discovered model → hash every file once → entries → model metadata.

The metadata readers (model card, licence, config, shard index) work on the
small files the hashing pipeline captured while it digested them, so nothing
is read twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence

from ..._version import __version__
from ...codes import Code
from ...errors import ManifestError
from ..discover import ModelTree
from ..findings import Finding
from ..formats.shards import check_safetensors_index
from ..hashing import FileDigests, TensorHash, hash_files, peek_file
from ..hashing.external import external_layouts
from ..metadata.card import parse_model_card
from ..metadata.licence import Licence, detect_licence
from ..metadata.provenance import (
    ParentRef,
    Provenance,
    SourceRepo,
    base_models_from_card,
    base_models_from_gguf,
    builder_from_env,
)
from ..metadata.quantization import model_quantization
from .entries import file_entry
from .schema import FileEntry, Hashing, Ignored, Manifest, Tool, weights_digest

_CARD_NAMES = ("README.md",)
_LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "COPYING")
_CONFIG_NAME = "config.json"
_INDEX_SUFFIX = ".safetensors.index.json"

#: Entries (and their findings) known to be current, by file name: taken as they are.
Reuse = Mapping[str, tuple[FileEntry, list[Finding]]]


def manifest_for_tree(
    tree: ModelTree,
    *,
    tensor_hash: TensorHash | None = "blake3",
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reuse: Reuse | None = None,
) -> Manifest:
    """Build the manifest of an already discovered model.

    ``reuse`` maps file names to entries (and their findings) known to be
    current — incremental re-signing — which are taken as they are instead of
    read again. Small metadata files (model card, licence, config, shard index)
    are always read, since the metadata readers need their content.
    """
    digests = hash_tree(tree, tensor_hash=tensor_hash, reuse=reuse, jobs=jobs, progress=progress)
    return manifest_from_digests(
        tree, digests, tensor_hash=tensor_hash, reuse=reuse, source=source, parents=parents, env=env
    )


def hash_tree(
    tree: ModelTree,
    *,
    tensor_hash: TensorHash | None,
    reuse: Reuse | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    shard_size: int | None = None,
) -> list[FileDigests]:
    """Read and digest every file of ``tree`` but those reused (metadata files always).

    ``shard_size``: the same read gives each file's OMS shard digests too.
    """
    reused = _reusable(reuse)
    todo = [f for f in tree.files if f.path not in reused]
    total = sum(f.size for f in todo)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    digests = hash_files(
        todo,
        tensor_hash=tensor_hash,
        capture=_captured_name,
        jobs=jobs,
        progress=step,
        shard_size=shard_size,
        layouts=external_layouts(tree.files, tree.root),
    )
    _hf_blob_check(tree, digests)
    return digests


def manifest_from_digests(
    tree: ModelTree,
    digests: Sequence[FileDigests],
    *,
    tensor_hash: TensorHash | None,
    reuse: Reuse | None = None,
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
) -> Manifest:
    """The manifest of ``tree`` from the digests :func:`hash_tree` took (and ``reuse``)."""
    findings: list[Finding] = []
    made: dict[str, FileEntry] = {}
    for d in digests:
        made[d.file.path], found = file_entry(d)
        findings += found
    for name, (entry, found) in _reusable(reuse).items():
        made[name] = entry
        findings += found
    entries = [made[f.path] for f in tree.files]
    # Reused entries were not read again: the metadata readers only see what was.
    by_path = {d.file.path: d for d in digests}
    findings += _index_findings(entries, by_path)

    card_path = next((n for n in _CARD_NAMES if n in by_path), None)
    card, card_findings = _card(by_path, card_path)
    licence, licence_findings = _licence(entries, by_path, card, card_path)
    config = _read_config(by_path.get(_CONFIG_NAME), findings)
    quant, quant_findings = model_quantization(
        {e.path: e.weights.quantization for e in entries if e.weights is not None},
        config,
        _CONFIG_NAME if config is not None else None,
    )
    provenance, prov_findings = _provenance(tree, source, card, card_path, entries, parents, env)
    findings += card_findings + licence_findings + quant_findings + prov_findings

    all_tensors = [t for e in entries if e.weights is not None for t in e.weights.tensors]
    return Manifest(
        name=tree.name,
        single_file=tree.single_file,
        tool=Tool(version=__version__),
        hashing=Hashing(tensor=tensor_hash, header=tensor_hash or "sha256"),
        allow_symlinks=tree.allow_symlinks,
        ignored=Ignored(patterns=sorted(set(tree.ignore_patterns)), paths=list(tree.ignored)),
        files=entries,
        weights_digest=weights_digest(all_tensors) if all_tensors else None,
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


def _captured_name(path: str) -> bool:
    return (
        path in _CARD_NAMES
        or path in _LICENCE_NAMES
        or path == _CONFIG_NAME
        or path.endswith(_INDEX_SUFFIX)
    )


def _reusable(reuse: Reuse | None) -> Reuse:
    """What may be reused: never a metadata file, whose content the readers need."""
    return {k: v for k, v in (reuse or {}).items() if not _captured_name(k)}


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
                code=Code.HF_BLOB_DIGEST_MISMATCH,
                path=d.file.path,
                expected=etag,
                actual=d.sha256,
            )


def _index_findings(
    entries: Sequence[FileEntry], by_path: Mapping[str, FileDigests]
) -> list[Finding]:
    """Sharded safetensors: every index must agree with its shards."""
    shard_tensors = {
        e.path: [t.name for t in e.weights.tensors]
        for e in entries
        if e.weights is not None and e.weights.format == "safetensors"
    }
    findings: list[Finding] = []
    for e in entries:
        read = by_path.get(e.path)
        if e.path.endswith(_INDEX_SUFFIX) and read is not None and read.captured is not None:
            findings += check_safetensors_index(e.path, read.captured, shard_tensors)
    return findings


def _card(
    by_path: Mapping[str, FileDigests], card_path: str | None
) -> tuple[dict[str, object], list[Finding]]:
    """The model card's front matter (empty when there is none, or it was too large to read)."""
    if card_path is None or by_path[card_path].captured is None:
        return {}, []
    return parse_model_card(by_path[card_path].captured or b"", card_path)


def _licence(
    entries: Sequence[FileEntry],
    by_path: Mapping[str, FileDigests],
    card: dict[str, object],
    card_path: str | None,
) -> tuple[Licence, list[Finding]]:
    """Every licence statement: the card's, the licence files', the GGUF files' metadata."""
    licence_files = {
        n: by_path[n].captured or b""
        for n in _LICENCE_NAMES
        if n in by_path and by_path[n].captured is not None
    }
    gguf_licences = {
        e.path: str(e.weights.metadata["general.license"])
        for e in entries
        if e.weights is not None
        and e.weights.format == "gguf"
        and "general.license" in e.weights.metadata
    }
    return detect_licence(card if card_path else None, card_path, licence_files, gguf_licences)


def _read_config(d: FileDigests | None, findings: list[Finding]) -> dict[str, object] | None:
    if d is None or d.captured is None:
        return None
    try:
        obj = json.loads(d.captured.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        findings.append(
            Finding(
                code=Code.CONFIG_INVALID,
                message=f"config.json is not valid JSON: {exc}",
                file=_CONFIG_NAME,
            )
        )
        return None
    if not isinstance(obj, dict):
        findings.append(
            Finding(
                code=Code.CONFIG_INVALID,
                message="config.json is not a JSON object",
                file=_CONFIG_NAME,
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
                code=Code.PROVENANCE_SOURCE_CONFLICT,
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
