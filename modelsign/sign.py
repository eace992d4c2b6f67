"""Signing: manifest → OMS statement → signer → bundle written atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import _statcache
from ._atomic import write_atomic
from .discover import GIT_PATHS, ModelTree, discover, name_inside
from .errors import InputError, ModelsignError
from .findings import Finding
from .hashing import TensorHash
from .manifest import FileEntry, Manifest, manifest_for_tree
from .metadata.provenance import SourceRepo
from .signature.bundle import read_bundle, read_signature_file
from .signature.signers import Signer
from .signature.statement import build_statement, parse_statement

DEFAULT_SIGNATURE = "model.sig"
DEFAULT_PROVENANCE = "model.provenance.sig"  # see modelsign.provenance


@dataclass(frozen=True)
class SignResult:
    """What was signed and where the signature went."""

    manifest: Manifest
    signature: str
    statement: bytes


def default_signature_path(model: str | os.PathLike[str], name: str = DEFAULT_SIGNATURE) -> str:
    """``MODEL/model.sig`` for a folder, ``FILE.sig`` beside a single file.

    With ``name="model.provenance.sig"``: ``MODEL/model.provenance.sig`` or
    ``FILE.provenance.sig`` — each signature kind sits in the same place.
    """
    path = os.fspath(model)
    if os.path.isdir(path):
        return os.path.join(path, name)
    return path + name.removeprefix("model")


def sign(
    model: str | os.PathLike[str],
    *,
    signer: Signer,
    signature: str | os.PathLike[str] | None = None,
    force: bool = False,
    tensor_hash: TensorHash | None = "blake3",
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reuse: str | os.PathLike[str] | None = None,
) -> SignResult:
    """Sign ``model`` and write the signature bundle.

    The signature file itself is left out of what is signed and recorded in
    ``ignore_paths``; an existing signature is kept unless ``force``; a failure
    leaves nothing behind. With ``reuse`` (an earlier signature of this model
    made on this machine) only files whose size, mtime, inode or ctime changed
    since are read again.
    """
    sig_path = os.fspath(signature) if signature is not None else default_signature_path(model)
    if os.path.lexists(sig_path) and not force:
        raise InputError(
            "a signature already exists; pass --force to replace it",
            code="OUTPUT_EXISTS",
            path=sig_path,
        )
    exclude: list[str] = []
    if os.path.isdir(model):
        rel = name_inside(model, sig_path)
        if rel is not None:
            exclude.append(rel)
        # The release's provenance attestation sits beside the model's signature,
        # whichever is made first.
        exclude.append(DEFAULT_PROVENANCE)
    tree = discover(model, ignore=ignore, exclude=exclude, allow_symlinks=allow_symlinks)
    if tree.single_file and os.path.abspath(sig_path) == os.path.join(
        tree.root, tree.files[0].path
    ):
        raise InputError("the signature would overwrite the model", code="USAGE", path=sig_path)
    reusable = _reusable(tree, os.fspath(reuse), tensor_hash) if reuse is not None else None
    manifest = manifest_for_tree(
        tree,
        tensor_hash=tensor_hash,
        source=source,
        parents=parents,
        env=env,
        jobs=jobs,
        progress=progress,
        reuse=reusable,
    )
    # The signature is recorded even before it exists, so re-signing and the
    # OMS tool's verifier both leave it out.
    recorded = set(GIT_PATHS) | set(tree.ignored) | set(exclude)
    ignore_paths = [] if tree.single_file else sorted(recorded)
    statement = build_statement(manifest, ignore_paths=ignore_paths)
    bundle = signer.sign_statement(statement)
    write_atomic(sig_path, bundle, force=force)
    real = {f.path: f.real for f in tree.files}
    _statcache.save(
        sig_path,
        bundle,
        [(e.path, real[e.path], e.model_dump(mode="json")) for e in manifest.files],
    )
    return SignResult(manifest, sig_path, statement)


def _reusable(
    tree: ModelTree, old_signature: str, tensor_hash: TensorHash | None
) -> dict[str, tuple[FileEntry, list[Finding]]]:
    """Entries of the old signature whose files are provably untouched since it was made.

    A file qualifies when the local cache recorded its exact identity (device,
    inode, size, mtime, ctime) at that signing and the old signature holds the
    same entry. The old signature is only read for its manifest here; it is
    not trusted for anything else.
    """
    data = read_signature_file(old_signature)
    try:
        old = parse_statement(read_bundle(data).payload).manifest
    except ModelsignError as exc:
        raise InputError(
            f"cannot reuse this signature: {exc.message}", code="REUSE_INVALID", path=old_signature
        ) from exc
    if old is None or old.hashing.tensor != tensor_hash:
        return {}  # an OMS-only signature, or another tensor hash: nothing to reuse
    cached = _statcache.load(old_signature, data)
    out: dict[str, tuple[FileEntry, list[Finding]]] = {}
    for f in tree.files:
        rec = cached.get(f.path)
        entry = old.file(f.path)
        if rec is None or entry is None or rec.get("real") != f.real:
            continue
        if rec.get("entry") != entry.model_dump(mode="json"):
            continue
        if rec.get("identity") != _statcache.identity(f.real):
            continue
        out[f.path] = (entry, [x for x in old.findings if x.path == f.path])
    return out
